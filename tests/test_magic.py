"""``%%prompt`` through a real IPython kernel: what a notebook user sees on IOPub, and what lands in history."""

from __future__ import annotations

import base64
import datetime as dt
import html as html_lib
import json
import re
import textwrap

import nbformat
import pytest
from nbclient import NotebookClient

from nbplayground.magic import parse_params
from support.htmlcheck import in_no_math_container, problems
from support.kernel import Kernel
from support.oai_server import Behaviour, OpenAIServer


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    home = tmp_path_factory.mktemp("magic") / "home"
    k = Kernel({"NBPLAYGROUND_HOME": str(home), "OPENAI_API_KEY": ""})
    ex = k.run("%load_ext nbplayground\nimport nbplayground as nbp")
    assert ex.error is None, ex.error
    yield k
    k.shutdown()


def sent_at(msg) -> dt.datetime:
    """When the kernel sent a message (its own clock, not the test's)."""
    date = msg["header"]["date"]
    return date if isinstance(date, dt.datetime) else dt.datetime.fromisoformat(date)


def last_run(kernel, n: int = 1) -> list[dict]:
    return kernel.value(
        f"nbp.history(limit={n})[['id', 'model', 'status', 'text', 'thread_id']].to_dict('records')"
    )


def test_stream_updates_the_cell_several_times_at_most_20_per_second(kernel):
    ex = kernel.run("%%prompt mock/lorem -p max_tokens=300 -p mock_delay_ms=4\nWrite a lot.")
    assert ex.error is None, ex.error
    updates = ex.updates
    # streamed: the display changed several times before the final answer, each with more text
    partials = [u["content"]["data"]["text/plain"] for u in updates[:-1]]
    assert len(partials) >= 5
    assert all(p.endswith("▌") for p in partials)
    assert [len(p) for p in partials] == sorted(len(p) for p in partials)
    assert len(partials[-1]) > len(partials[0])
    # coalesced: never faster than 20 a second on the kernel's own clock (one per 50 ms). A message is
    # stamped when IOPub sends it, so on a loaded machine one late message shortens the next gap (seen:
    # 117 ms then 21 ms): any 3 gaps in a row absorb that jitter; without coalescing they take ~12 ms.
    times = [sent_at(u) for u in updates[:-1]]
    spans = [(times[i + 3] - times[i]).total_seconds() for i in range(len(times) - 3)]
    assert min(spans) >= 3 * 0.05 - 0.06, spans
    rate = (len(times) - 1) / (times[-1] - times[0]).total_seconds()
    assert rate <= 21
    # 300 words arrive in far fewer messages than tokens
    assert len(updates) < 300 / 5
    final = ex.final
    assert final["data"]["text/plain"].split("\n")[0].count(" ") == 299
    assert "▌" not in final["data"]["text/html"] and "text/markdown" not in final["data"]
    meta = final["metadata"]["nbplayground"]
    assert meta["model"] == "mock/lorem" and meta["status"] == "ok" and meta["tokens_out"] == 300
    assert meta["latency_ms"] > 0 and len(meta["run_id"]) >= 8
    # the footer line: model · tokens · cost · latency · run id
    footer = final["data"]["text/plain"].splitlines()[-1]
    assert footer.startswith("[mock/lorem · ") and "→300 tok" in footer and "$" in footer and " ms" in footer


def test_a_retry_is_said_while_streaming(kernel):
    with OpenAIServer(tokens=4) as srv:
        srv.script = [Behaviour(status=429, retry_after=0.5), Behaviour(text="the second try answers")]
        kernel.run(f"nbp.configure(models={{'flaky2': {{'model': 'openai/m', 'api_base': '{srv.url}'}}}})")
        ex = kernel.run("%%prompt flaky2\nhi")
        assert ex.error is None, ex.error
    partials = [u["content"]["data"]["text/html"] for u in ex.updates[:-1]]
    assert any("flaky2 · streaming · attempt 2 after RateLimitError" in p for p in partials), partials
    assert ex.final["data"]["text/plain"].startswith("the second try answers")


def test_no_stream_sends_only_the_final_answer(kernel):
    ex = kernel.run("%%prompt mock/lorem --no-stream -p max_tokens=100 -p mock_delay_ms=2\nhi")
    assert len(ex.updates) == 1
    assert "▌" not in ex.final["data"]["text/plain"]


def test_brace_heavy_bodies_reach_the_model_unchanged(kernel):
    body = textwrap.dedent(
        """\
        Keep this JSON as is: {"a": 1, "b": {"c": [1, 2, {"d": null}]}}
        def f(x): return {k: v for k, v in x.items()}  # {x} and {{ }} and {{}} stay
        const t = `${name}`; \\{{not_a_var}} and {{ not a name }} and {x}}
        """
    )
    kernel.run(f"body = {body!r}")
    ex = kernel.run("%%prompt mock/echo -o echoed\n" + body)
    assert ex.error is None, ex.error
    echoed = kernel.value("echoed")
    expected = body.replace("\\{{not_a_var}}", "{{not_a_var}}").rstrip("\n")  # a backslash escapes
    assert echoed == expected
    assert '{"a": 1, "b": {"c": [1, 2, {"d": null}]}}' in echoed
    assert "{k: v for k, v in x.items()}" in echoed and "`${name}`" in echoed and "{{ }} and {{}}" in echoed


def test_variables_and_dot_paths_come_from_the_namespace(kernel):
    kernel.run(
        "import pandas as pd\n"
        "article = 'the tides'\n"
        'cfg = \'{"tone": "dry"}\'\n'
        "user = {'name': 'Ada'}\n"
        "row = pd.DataFrame({'city': ['Paris']}).iloc[0]\n"
        "class P:\n    title = 'Dr'\np = P()"
    )
    ex = kernel.run(
        "%%prompt mock/echo -o out\nOn {{article}}, {{cfg.tone}}, for {{p.title}} {{user.name}} in {{row.city}}"
    )
    assert ex.error is None, ex.error
    assert kernel.value("out") == "On the tides, dry, for Dr Ada in Paris"


def test_missing_variables_are_listed_in_one_short_error(kernel):
    before = kernel.value("len(nbp.history(limit=1000))")
    ex = kernel.run("%%prompt mock/echo\nSummarise {{nothing_here}} by {{author.name}}")
    assert ex.error is None  # a user error is one line, never a Python traceback
    err = ex.usage_error
    assert "nothing_here" in err and "author.name" in err
    assert "Defined in the notebook:" in err and "article" in err
    assert kernel.value("len(nbp.history(limit=1000))") == before  # nothing was called


def test_bad_options_and_params_are_one_line_with_usage(kernel):
    for line, words in [
        ("mock/echo --bogus", ["--bogus", "usage: %%prompt"]),
        ("mock/echo -p temperature=hot", ["temperature", "number"]),
        ("mock/echo -p novalue", ["KEY=VALUE"]),
        ("mock/lorm", ["mock/lorem"]),
        ("mock/echo --clear", ["--chat"]),
    ]:
        ex = kernel.run(f"%%prompt {line}\nhi")
        err = ex.usage_error
        assert err is not None and ex.error is None, line
        assert "\n" not in err, err
        for w in words:
            assert w in err, (line, err)


def test_help_lists_every_option(kernel):
    for line in ("%%prompt --help\nx", "%prompt --help"):
        out = kernel.run(line).stdout
        for option in (
            "--chat",
            "--clear",
            "--schema",
            "--tool-mode",
            "--compare",
            "--no-history",
            "%config",
        ):
            assert option in out, (line, option)


def test_typed_params():
    assert parse_params(["temperature=0.2", "max_tokens=5", "stream=false", "stop=[\"x\"]", "seed=None",
                         "response_format={\"type\": \"json_object\"}", "user=ada"]) == {
        "temperature": 0.2, "max_tokens": 5, "stream": False, "stop": ["x"], "seed": None,
        "response_format": {"type": "json_object"}, "user": "ada",
    }  # fmt: skip


def test_default_model_from_config_magic(kernel):
    kernel.run("%config Prompt.model = 'mock/echo'")
    ex = kernel.run("%%prompt -o d\ndefault model here")
    assert ex.error is None and kernel.value("d") == "default model here"
    assert ex.final["metadata"]["nbplayground"]["model"] == "mock/echo"
    kernel.run("%config Prompt.model = ''")


def test_system_and_params_reach_the_request(kernel):
    ex = kernel.run('%%prompt mock/lorem -p max_tokens=3 -p temperature=0.2 --system "You are terse."\nhi')
    run_id = ex.final["metadata"]["nbplayground"]["run_id"]
    run = kernel.value(f"(lambda r: (r.messages, r.params))(nbp.get_run({run_id!r}))")
    messages, params = run
    assert messages[0] == {"role": "system", "content": "You are terse."}
    assert params == {"max_tokens": 3, "temperature": 0.2}


def test_chat_threads_survive_a_kernel_restart_and_clear_resets(kernel):
    kernel.run("%%prompt mock/echo --chat trip\nPlan a day in Lisbon")
    kernel.run("%%prompt mock/echo --chat trip\nNow make it rainy")
    kernel.restart()
    assert kernel.run("%load_ext nbplayground\nimport nbplayground as nbp").error is None
    ex = kernel.run("%%prompt mock/echo --chat trip\nAnd cheaper")
    assert ex.error is None, ex.error
    run_id = ex.final["metadata"]["nbplayground"]["run_id"]
    assert ex.final["metadata"]["nbplayground"]["thread_id"] == "trip"
    sent = kernel.value(f"nbp.get_run({run_id!r}).messages")
    assert [m["content"] for m in sent] == [
        "Plan a day in Lisbon",
        "Plan a day in Lisbon",
        "Now make it rainy",
        "Now make it rainy",
        "And cheaper",
    ]
    shown = kernel.run("%prompt_chat trip").final["data"]["text/html"]
    assert shown.count("<b>user</b>") == 3 and shown.count("<b>assistant</b>") == 3
    # Clear & Run: the thread restarts from this cell
    ex = kernel.run("%%prompt mock/echo --chat trip --clear\nStart over")
    run_id = ex.final["metadata"]["nbplayground"]["run_id"]
    assert [m["content"] for m in kernel.value(f"nbp.get_run({run_id!r}).messages")] == ["Start over"]
    shown = kernel.run("%prompt_chat trip").final["data"]["text/html"]
    assert shown.count("<b>user</b>") == 1 and "Lisbon" not in shown


def test_compare_streams_columns_and_one_failing_model_hides_nothing(kernel):
    kernel.run(
        "from nbplayground.core import retry; retry.BACKOFF_BASE = 0.01\n"
        "nbp.configure(models={'broken': {'model': 'openai/x', 'api_base': 'http://127.0.0.1:9/v1'}})"
    )
    ex = kernel.run(
        "%%prompt --compare mock/echo,broken,mock/lorem -p max_tokens=60 -p mock_delay_ms=5 -o both\n"
        "Compare these"
    )
    assert ex.error is None, ex.error
    assert len(ex.updates) >= 3  # the columns streamed
    streaming = ex.updates[0]["content"]["data"]["text/html"]
    assert all(f"<b>{m}</b>" in streaming for m in ("mock/echo", "broken", "mock/lorem")) and "streaming" in streaming
    final = ex.final
    html = final["data"]["text/html"]
    assert "Compare these" in html and "UnreachableError" in html and "lorem ipsum" in html.lower()
    runs = final["metadata"]["nbplayground"]["runs"]
    assert [r["status"] for r in runs] == ["ok", "error", "ok"]
    assert len({r["group_id"] for r in runs}) == 1
    for r in runs:  # per-column stats
        assert r["run_id"] and r["model"] in ("mock/echo", "broken", "mock/lorem")
    assert kernel.value("both[0]") == "Compare these"
    assert len(kernel.value("both[2]").split()) == 60


def test_failed_run_is_one_readable_line_with_run_id(kernel):
    ex = kernel.run("%%prompt broken\nhello")
    assert ex.error is None  # the cell itself does not raise: the answer is the error line
    plain = ex.final["data"]["text/plain"]
    run_id = ex.final["metadata"]["nbplayground"]["run_id"]
    assert f"(run {run_id[:8]})" in plain and "UnreachableError" in plain
    assert "Traceback" not in plain and 'File "' not in plain
    assert last_run(kernel)[0]["status"] == "error"


def test_interrupt_stops_quickly_keeps_partial_and_records_stopped(kernel):
    msg_id = kernel.send("%%prompt mock/lorem -p max_tokens=4000 -p mock_delay_ms=5\nA very long answer")
    ex = kernel.collect(msg_id, until=lambda ex: len(ex.updates) >= 4)
    kernel.interrupt()
    kernel.collect(msg_id, into=ex, timeout=30)
    assert ex.error is None  # the interrupt is handled: the partial answer is the output
    final = ex.final
    meta = final["metadata"]["nbplayground"]
    assert meta["status"] == "stopped"
    partial = final["data"]["text/plain"].split("\n")[0]
    assert 3 < len(partial.split()) < 4000
    assert "stopped" in final["data"]["text/html"]
    run = last_run(kernel)[0]
    assert run["id"] == meta["run_id"] and run["status"] == "stopped"
    assert run["text"] == partial


def test_structured_output_from_a_pydantic_model_and_json(kernel):
    kernel.run("from pydantic import BaseModel\nclass Person(BaseModel):\n    name: str\n    age: int")
    ex = kernel.run("%%prompt mock/json --schema Person -o person\nAda Lovelace, 36")
    assert ex.error is None, ex.error
    data = ex.final["data"]
    assert set(data["application/json"]) == {"name", "age"}
    assert "<pre>{" in data["text/html"]
    assert kernel.value("type(person).__name__") == "Person"  # -o gives the validated pydantic object
    person = kernel.value("person.model_dump()")
    assert isinstance(person["age"], int) and isinstance(person["name"], str)
    schema = json.dumps({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]})
    ex = kernel.run(f"%%prompt mock/json --schema '{schema}' -o flag\nIs it ok?")
    assert isinstance(kernel.value("flag")["ok"], bool)


def test_auto_tools_show_each_call_and_result_inline(kernel):
    kernel.run(
        "def get_weather(city: str) -> str:\n"
        "    '''Weather for a city.\n\n    Args:\n        city: City name.\n    '''\n"
        "    return f'21 C and sunny in {city}'"
    )
    ex = kernel.run("%%prompt mock/tools --tools get_weather -o w\nWeather in Paris?")
    assert ex.error is None, ex.error
    md = ex.final["data"]["text/html"]
    assert "tool</span> <code>get_weather(" in md and "21 C and sunny in" in md
    assert kernel.value("w").startswith("The get_weather tool returned: 21 C and sunny in")


def test_manual_tools_ask_then_take_the_answer_from_the_next_cell(kernel):
    ex = kernel.run("%%prompt mock/tools --tools get_weather --tool-mode manual --chat wx\nWeather in Oslo?")
    md = ex.final["data"]["text/html"]
    assert "the model asks for <code>get_weather(" in md
    call_id = md.split("(call <code>")[1].split("</code>")[0]
    assert f"%%prompt --chat wx --tool-result {call_id}" in md
    ex = kernel.run(
        f"%%prompt mock/tools --tools get_weather --chat wx --tool-result {call_id} -o answer\n-3 C, snow"
    )
    assert ex.error is None, ex.error
    assert kernel.value("answer") == "The get_weather tool returned: -3 C, snow"
    # the next manual call can be answered without naming its id; a wrong id lists the pending ones
    kernel.run("%%prompt mock/tools --tools get_weather --tool-mode manual --chat wx\nAnd in Rome?")
    assert "call_nope" in kernel.run("%%prompt --chat wx --tool-result call_nope\n1").usage_error
    ex = kernel.run("%%prompt --chat wx -o rome --tool-result\n25 C")  # the thread keeps its model
    assert kernel.value("rome") == "The get_weather tool returned: 25 C"
    assert "not waiting" in kernel.run("%%prompt mock/tools --chat wx --tool-result\n1").usage_error
    assert "--chat" in kernel.run("%%prompt mock/tools --tool-result call_x\n1").usage_error


def test_image_and_speech_are_real_png_and_wav(kernel):
    ex = kernel.run("%%prompt mock/image --image\na lighthouse at dusk")
    png = base64.b64decode(ex.final["data"]["image/png"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 100
    ex = kernel.run("%%prompt mock/tts --speech -o clip\nhello from the magic")
    wav = base64.b64decode(ex.final["data"]["audio/wav"])
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"
    assert "<audio" in ex.final["data"]["text/html"]
    ex = kernel.run("%%prompt mock/stt --transcribe -o heard\nclip")
    assert kernel.value("heard") == "hello from the magic"


def test_formats_and_no_history(kernel):
    ex = kernel.run("%%prompt mock/echo --format text\nplain please")
    assert set(ex.final["data"]) == {"text/plain"}
    ex = kernel.run("%%prompt mock/echo --format json\nas json")
    assert ex.final["data"]["application/json"]["text"] == "as json"
    ex = kernel.run("%%prompt mock/echo --format html\n<b>x</b>")
    assert "&lt;b&gt;x&lt;/b&gt;" in ex.final["data"]["text/html"]
    before = last_run(kernel)[0]["id"]
    ex = kernel.run("%%prompt mock/echo --no-history\nforget me")
    assert "forget me" in ex.final["data"]["text/plain"]
    assert last_run(kernel)[0]["id"] == before


def test_save_and_run_registry_prompts(kernel):
    kernel.run("article = 'the tides'")
    ex = kernel.run('%%prompt mock/echo --save demo/hello --system "Be kind."\nHello {{article}}!')
    assert "saved as demo/hello@1" in ex.stdout, ex.usage_error
    ex = kernel.run("%prompt --prompt demo/hello@1 -o reg")  # the line form: no body
    assert kernel.value("reg") == "Hello the tides!"
    ex = kernel.run("%%prompt --prompt demo/hello -o reg2\nA follow-up question")
    assert kernel.value("reg2") == "A follow-up question"


def test_line_magics_history_models_replay(kernel):
    ex = kernel.run("%prompt_history 3")
    table = ex.final["data"]["text/plain"]
    assert "mock/" in table and "status" in table
    rows = last_run(kernel, 3)
    assert len(rows) == 3
    ex = kernel.run("%prompt_models")
    plain = ex.final["data"]["text/plain"]
    assert "mock" in plain and "openai" in plain and "OPENAI_API_KEY" in plain
    ex = kernel.run("%%prompt mock/echo\nreplay me")
    run_id = ex.final["metadata"]["nbplayground"]["run_id"]
    ex = kernel.run(f"%prompt_replay {run_id} -m mock/lorem -p max_tokens=4")
    meta = ex.final["metadata"]["nbplayground"]
    assert meta["model"] == "mock/lorem" and meta["tokens_out"] == 4
    assert kernel.value(f"nbp.get_run({meta['run_id']!r}).parent_id") == run_id
    assert "nope" in kernel.run("%prompt_replay nope").usage_error
    assert "usage: %prompt_history" in kernel.run("%prompt_history lots").usage_error


def test_saved_and_reopened_notebook_still_shows_the_final_text(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext nbplayground"),
        nbformat.v4.new_code_cell("%%prompt mock/lorem -p max_tokens=80 -p mock_delay_ms=3\nTell me more."),
        nbformat.v4.new_code_cell("%%prompt --compare mock/echo,mock/lorem -p max_tokens=5\nSide by side"),
    ]
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()  # fmt: skip
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, path)
    reopened = nbformat.read(path, as_version=4)
    (single,) = reopened.cells[1].outputs
    text = single["data"]["text/plain"]
    assert len(text.split("\n")[0].split()) == 80 and "▌" not in text
    assert "text/html" in single["data"] and single["metadata"]["nbplayground"]["status"] == "ok"
    (both,) = reopened.cells[2].outputs
    assert "Side by side" in both["data"]["text/html"] and "streaming" not in both["data"]["text/plain"]
    assert "== mock/lorem ==" in both["data"]["text/plain"]
    assert "api_key" not in path.read_text()


def test_debug_shows_the_traceback_and_secrets_never_reach_outputs(kernel):
    ex = kernel.run("%%prompt mock/echo --debug\nHi {{nobody_at_all}}")
    assert ex.error is not None and ex.error["ename"] == "MissingVariablesError"
    ex = kernel.run("%%prompt mock/echo -p api_key=sk-test-SECRET123 -o said\nhello")
    assert ex.error is None and ex.usage_error is None
    outputs = [m["content"] for m in ex.messages if m["msg_type"] != "execute_input"]  # not the typed cell
    assert "SECRET123" not in json.dumps(outputs, default=str)
    run_id = ex.final["metadata"]["nbplayground"]["run_id"]
    stored = kernel.value(f"repr(nbp.sql(\"select * from runs where id = '{run_id}'\").to_dict('records'))")
    assert "hello" in stored and "SECRET123" not in stored


def outputs_text(ex) -> str:
    """Everything a cell showed: streams, display bundles and error tracebacks."""
    parts = [m["content"].get("text", "") for m in ex.of("stream")]
    parts += [json.dumps(d["data"], default=str) for d in ex.displays]
    parts += ["\n".join(m["content"]["traceback"]) for m in ex.of("error")]
    return "\n".join(parts)


@pytest.mark.parametrize(
    "code, words",
    [
        ("%%prompt mock/echo -p\nhi", ["-p", "expected one argument", "KEY=VALUE"]),
        ("%%prompt mock/echo --compare\nhi", ["--compare", "expected one argument", "M1,M2"]),
        ("%%prompt mock/echo --format xml\nhi", ["'xml'", "'markdown'", "'text'", "'json'", "'html'"]),
        ("%%prompt mock/image --image --speech\nhi", ["--speech", "not allowed with", "--image"]),
        ("%prompt_replay 'a", ["closing quotation", "usage: %prompt_replay RUN_ID"]),
        ("%%prompt mock/echo --system 'unclosed\nhi", ["closing quotation", "usage: %%prompt"]),
        ("%prompt_history 999999999999", ["999999999999", "1 to 1000", "usage: %prompt_history"]),
        ("%prompt_history -5", ["-5", "1 to 1000", "usage: %prompt_history"]),
        ("%prompt_history 0", ["1 to 1000"]),
        ("%prompt_history 99999999999999999999999", ["1 to 1000"]),
        ("%prompt_history 3 4", ["unrecognized arguments: 4"]),
    ],
)
def test_option_mistakes_are_one_line_usage_errors_never_tracebacks(kernel, code, words):
    before = kernel.value("len(nbp.history(limit=1000))")
    ex = kernel.run(code)
    err = ex.usage_error
    assert ex.error is None and err is not None, outputs_text(ex)
    assert "\n" not in err and "Traceback" not in outputs_text(ex)
    for w in words:
        assert w in err, (w, err)
    assert not ex.displays  # nothing ran, nothing was shown
    assert kernel.value("len(nbp.history(limit=1000))") == before


def test_output_variable_of_a_failed_run_is_none_and_said_in_one_line(kernel):
    kernel.run("ans = 'stale'")
    ex = kernel.run("%%prompt openai/gpt-4o-mini -o ans\nhi")  # the kernel has no OPENAI_API_KEY
    assert ex.error is None and ex.usage_error is None
    assert ex.final["metadata"]["nbplayground"]["status"] == "error"
    assert kernel.value("ans") is None
    assert ex.stdout == "ans = None: the run failed (MissingKeyError)\n"
    # a compare: only the failed model's entry is None, and the line names it
    ex = kernel.run("%%prompt --compare mock/echo,openai/gpt-4o-mini,mock/echo -o both\nhi")
    assert kernel.value("both") == ["hi", None, "hi"]
    assert ex.stdout == "both[1] = None: openai/gpt-4o-mini failed (MissingKeyError)\n"
    # a run that worked says nothing more
    assert kernel.run("%%prompt mock/echo -o ans\nfine").stdout == ""
    assert kernel.value("ans") == "fine"


def test_no_history_runs_say_not_stored_instead_of_a_run_id(kernel):
    before = last_run(kernel)[0]["id"]
    ex = kernel.run("%%prompt mock/echo --no-history\nkeep this out of history")
    data = ex.final["data"]
    footer = data["text/plain"].splitlines()[-1]
    assert footer.startswith("[mock/echo · ") and footer.endswith("· not stored]") and "run " not in footer
    assert "not stored" in data["text/html"] and "· run " not in data["text/html"]
    assert not ex.final["metadata"]["nbplayground"]["run_id"]  # no id that could not be looked up
    # a failed run that was not stored: its error line names no run either
    ex = kernel.run("%%prompt openai/gpt-4o-mini --no-history\nhi")
    plain = ex.final["data"]["text/plain"]
    assert "MissingKeyError" in plain and "(run " not in plain and "run " not in plain.splitlines()[-1]
    # compare columns too
    ex = kernel.run("%%prompt --compare mock/echo,mock/lorem --no-history -p max_tokens=3\nhi")
    shown = ex.final["data"]["text/plain"]
    assert shown.count("· not stored]") == 2 and "· run " not in shown
    assert last_run(kernel)[0]["id"] == before  # and indeed nothing was stored
    ex = kernel.run("%%prompt mock/echo\nstored")  # a stored run keeps its id in the footer
    run_id = ex.final["metadata"]["nbplayground"]["run_id"]
    assert ex.final["data"]["text/plain"].endswith(f"· run {run_id[:8]}]")


def test_history_lists_one_line_per_run_with_whole_ids(kernel):
    long = "First line of a long answer with <b>tags</b> and $5 and $7\n\n" + "more words " * 80
    kernel.run(f"long_text = {long!r}")
    kernel.run("%%prompt mock/echo\n{{long_text}}")
    kernel.run("%%prompt openai/gpt-4o-mini\nno key")
    kernel.run("%%prompt mock/echo\nshort")
    runs = last_run(kernel, 3)
    ex = kernel.run("%prompt_history 3")
    assert ex.error is None, ex.error
    data = ex.final["data"]
    # text: a header and exactly one line per run, newest first, each starting with its whole short id
    lines = data["text/plain"].splitlines()
    assert len(lines) == 4 and lines[0].split()[:2] == ["id", "when"]
    assert [line.split()[0] for line in lines[1:]] == [r["id"][:8] for r in runs]
    assert lines[1].endswith("short") and "error" in lines[2] and "No API key for openai" in lines[2]
    assert "First line of a long answer" in lines[3] and lines[3].endswith("…") and len(lines[3]) < 200
    # HTML: escaped, in the no-math container, ids in cells that never wrap, answers cut to a preview
    html = data["text/html"]
    assert in_no_math_container(html) and problems(html) == []
    assert "table-layout:auto" in html
    for r in runs:
        whole = rf'<td style="[^"]*white-space:nowrap;overflow-wrap:normal[^"]*">{r["id"][:8]}</td>'
        assert re.search(whole, html), r["id"]
    assert "&lt;b&gt;tags&lt;/b&gt;" in html and "<b>tags" not in html
    cells = [html_lib.unescape(c) for c in re.findall(r'title="[^"]*">([^<]*)</td></tr>', html)]
    assert len(cells) == 3 and all(len(c) <= 130 for c in cells) and cells[2].endswith("…")
    # assigned, it keeps the runs as a DataFrame
    kernel.run("h = %prompt_history 2")
    assert kernel.value("list(h.frame['id'])") == [r["id"] for r in runs[:2]]


def test_missing_key_error_is_shown_as_an_error_block(kernel):
    ex = kernel.run("%%prompt openai/gpt-4o-mini\nhi")
    assert ex.error is None and ex.usage_error is None
    html = ex.final["data"]["text/html"]
    # its own block, red and set apart from the answer (like an error output), not bold body text
    block = re.search(r'<div style="([^"]*)">(MissingKeyError: [^<]*)</div>', html)
    assert block is not None, html
    style, said = block.groups()
    assert re.search(r"(^|;)color:#[0-9a-f]{6}", style) and "border-left:" in style and "background:" in style
    assert said.startswith("MissingKeyError: No API key for openai") and "OPENAI_API_KEY" in said
    assert "<b>MissingKeyError" not in html and "<p><b>" not in html
