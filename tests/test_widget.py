"""The Playground widget model without a browser: traits, commands, streamed messages, fallback output."""

from __future__ import annotations

import json
import time

import pytest

from nbplayground.core import errors as E
from nbplayground.widgets import Playground
from nbplayground.widgets._stream import coalesce


class Front:
    """Stands in for the front end: records what the kernel sends, sends commands like a view would."""

    def __init__(self, pg: Playground, ready: bool = True) -> None:
        self.pg = pg
        self.sent: list[dict] = []
        self.times: list[float] = []
        pg.send = self._record  # type: ignore[method-assign]
        if ready:
            self.command("ready")

    def _record(self, msg, buffers=None):
        self.sent.append(json.loads(json.dumps(msg)))  # must be JSON, like the comm
        self.times.append(time.monotonic())

    def command(self, kind: str, **fields) -> None:
        self.pg._handle_custom_msg({"type": kind, **fields}, [])

    def of(self, kind: str) -> list[dict]:
        return [m for m in self.sent if m["type"] == kind]

    def events(self) -> list[dict]:
        return [ev for m in self.of("events") for ev in m["events"]]

    def streamed_text(self, target: int = 0) -> str:
        return "".join(ev["text"] for ev in self.events() if ev["type"] == "delta" and ev["target"] == target)


def lorem(n: int, delay_ms: float = 0) -> dict:
    return {"model": "mock/lorem", "params": {"max_tokens": n, "mock_delay_ms": delay_ms}}


def test_variables_are_found_live_and_missing_ones_flagged():
    pg = Playground("Hi {{name}}, about {{topic.title}} and {{name}}", variables={"name": "Ada"})
    assert pg.variable_names == ["name", "topic"]
    assert pg.missing == ["topic"]
    pg.variables = {**pg.variables, "topic": '{"title": "tides"}'}
    assert pg.missing == []
    pg.messages = [{"role": "system", "content": "Be {{tone}}"}, *pg.messages]
    assert pg.variable_names == ["tone", "name", "topic"] and pg.missing == ["tone"]


def test_run_streams_batched_deltas_then_writes_the_final_state_once():
    pg = Playground("Write", models=[lorem(400, 2)])
    front = Front(pg)
    pg.run()
    assert pg.status == "running"
    assert pg.wait(30)
    (result,) = pg.results
    assert result.status == "ok" and len(result.text.split()) == 400
    # the stream carried every piece exactly once: total bytes are linear in the answer
    assert front.streamed_text() == result.text
    messages = front.of("events")
    # ~0.8 s of streaming in batches of >= 50 ms, not 400 messages
    assert 3 <= len(messages) <= 30
    gaps = [b - a for a, b in zip(front.times, front.times[1:], strict=False)]
    assert sorted(gaps)[len(gaps) // 2] >= 0.03
    assert [m["type"] for m in front.sent][-1] == "run_finished"
    assert front.of("run_started")[0]["targets"][0]["model"] == "mock/lorem"
    # final state: outputs trait, the answer appended as an assistant turn, status idle, history refreshed
    assert pg.outputs[0]["text"] == result.text and pg.outputs[0]["status"] == "ok"
    assert "messages" not in pg.outputs[0]
    assert pg.messages[-1] == {"role": "assistant", "content": result.text}
    assert pg.status == "idle" and pg.history["items"][0]["id"] == result.id
    assert result.surface == "widget" and result.thread_id == pg.id


def test_coalesce_merges_consecutive_deltas_per_target_only():
    ev = [
        {"type": "delta", "target": 0, "run_id": "a", "text": "a"},
        {"type": "delta", "target": 0, "run_id": "a", "text": "b"},
        {"type": "delta", "target": 1, "run_id": "b", "text": "x"},
        {"type": "delta", "target": 0, "run_id": "a", "text": "c"},
        {"type": "tool_call", "target": 0, "run_id": "a"},
        {"type": "delta", "target": 0, "run_id": "a", "text": "d"},
    ]
    out = coalesce(ev)
    assert [(e["type"], e.get("text")) for e in out] == [
        ("delta", "ab"), ("delta", "x"), ("delta", "c"), ("tool_call", None), ("delta", "d")
    ]  # fmt: skip
    assert ev[0]["text"] == "a"  # inputs untouched


def test_run_continues_the_thread_and_clear_and_run_resets_it():
    pg = Playground("Plan a day in {{city}}", variables={"city": "Lisbon"}, model="mock/echo")
    Front(pg)
    pg.run()
    pg.wait(10)
    assert [m["role"] for m in pg.messages] == ["user", "assistant"]
    with pytest.raises(E.NBPlaygroundError, match="user message"):
        pg.run()  # nothing new to answer
    pg.messages = [*pg.messages, {"role": "user", "content": "Now in {{city}} when it rains"}]
    pg.run()
    pg.wait(10)
    (r,) = pg.results
    assert [m["content"] for m in r.messages] == [
        "Plan a day in Lisbon", "Plan a day in Lisbon", "Now in Lisbon when it rains"
    ]  # fmt: skip
    assert pg.previous == ["Plan a day in Lisbon"]
    pg.clear_and_run()
    pg.wait(10)
    assert [m["role"] for m in pg.messages] == ["user", "assistant"]
    assert [m["content"] for m in pg.results[0].messages] == ["Plan a day in Lisbon"]


def test_assistant_answers_are_never_templated_again():
    pg = Playground("Say {{x}}", variables={"x": "{{secret}} literally"}, model="mock/echo")
    pg.run()
    pg.wait(10)
    pg.messages = [*pg.messages, {"role": "user", "content": "again"}]
    pg.run()
    pg.wait(10)
    assert pg.results[0].messages[1]["content"] == "Say {{secret}} literally"


def test_compare_three_targets_with_one_failing_keeps_the_others():
    pg = Playground("Compare", models=["mock/echo", "mock/json", lorem(8)])
    pg.targets = [*pg.targets[:1], {**pg.targets[1], "response_format": "{not json"}, pg.targets[2]]
    front = Front(pg)
    front.command("run")
    assert "Target 2: response_format is not valid JSON" in pg.error
    assert front.of("error") and pg.status == "idle"
    pg.targets = [pg.targets[0], {"model": "mock/nope", "params": {}}, pg.targets[2]]
    front.command("run")
    assert "mock/nope" in pg.error and "Did you mean" in pg.error
    pg.targets = [pg.targets[0], {"model": "openai/x", "params": {"api_base": "http://127.0.0.1:9/v1"}},
                  pg.targets[2]]  # fmt: skip
    front.command("run")
    assert pg.error == ""
    assert pg.wait(60)
    statuses = [o["status"] for o in pg.outputs]
    assert statuses == ["ok", "error", "ok"]
    assert len({r.group_id for r in pg.results}) == 1
    # the per-call endpoint is not kept (the error names its host, never the option's value or the URL)
    assert "127.0.0.1:9/v1" not in json.dumps(pg.outputs)
    assert all("api_base" not in (o.get("params") or {}) for o in pg.outputs)


def test_stop_keeps_partial_text_and_records_stopped():
    pg = Playground("long", models=[lorem(5000, 2), lorem(5000, 2)])
    front = Front(pg)
    front.command("run")
    deadline = time.monotonic() + 10
    while len(front.streamed_text(0).split()) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    t0 = time.monotonic()
    front.command("stop")
    assert pg.wait(10)
    assert time.monotonic() - t0 < 2  # generous: the latency itself is measured in benchmarks/
    for out in pg.outputs:
        assert out["status"] == "stopped" and 0 < len(out["text"].split()) < 5000
    from nbplayground.storage import history

    stored = history.get_run(pg.results[0].id)
    assert stored.status == "stopped" and stored.text == pg.outputs[0]["text"]
    assert pg.messages[-1]["role"] == "user"  # a stopped answer does not join the conversation


def test_missing_variables_block_the_run_with_a_named_error():
    pg = Playground("Hi {{who}} from {{where.city}}", model="mock/echo")
    front = Front(pg)
    front.command("run")
    assert "who" in pg.error and "where.city" in pg.error
    assert pg.status == "idle" and not front.of("run_started")


def test_view_attaching_mid_run_gets_a_snapshot_and_no_stream_before_ready():
    pg = Playground("x", models=[lorem(3000, 2)])
    front = Front(pg, ready=False)
    pg.run()
    time.sleep(0.3)
    assert front.sent == []  # no view yet: nothing is streamed into the void
    front.command("ready")
    (snap,) = front.of("snapshot")
    assert len(snap["texts"][0]) > 0
    pg.stop()
    pg.wait(10)
    assert front.of("run_finished")
    assert pg.outputs[0]["text"].startswith(snap["texts"][0])


def tool_weather(city: str) -> str:
    """Weather for a city.

    Args:
        city: City name.
    """
    return f"21 C in {city}"


def test_auto_tools_run_kernel_functions_and_show_calls():
    pg = Playground("Weather in Paris?", model="mock/tools", tools=[tool_weather])
    front = Front(pg)
    assert pg.tool_names == ["tool_weather"]
    pg.run()
    pg.wait(10)
    (r,) = pg.results
    assert r.text.startswith("The tool_weather tool returned: 21 C in")
    kinds = [ev["type"] for ev in front.events()]
    assert "tool_call" in kinds and "tool_result" in kinds
    assert pg.outputs[0]["tool_calls"][0]["result"].startswith("21 C in")


def test_manual_tool_call_is_answered_by_typing_into_the_tool_message():
    pg = Playground("Weather in Oslo?", model="mock/tools", tools=[tool_weather], tool_mode="manual")
    Front(pg)
    pg.run()
    pg.wait(10)
    assistant, tool = pg.messages[-2:]
    call_id = assistant["tool_calls"][0]["id"]
    assert tool == {"role": "tool", "tool_call_id": call_id, "content": ""}
    with pytest.raises(E.NBPlaygroundError, match="Answer the tool call"):
        pg.run()
    pg.messages = [*pg.messages[:-1], {**tool, "content": "-3 C, snow"}]
    pg.run()
    pg.wait(10)
    assert pg.results[0].text == "The tool_weather tool returned: -3 C, snow"


def test_structured_output_and_media_land_in_outputs():
    pg = Playground("Ada, 36", models=[{"model": "mock/json", "response_format": {
        "type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"]}}])  # fmt: skip
    pg.run()
    pg.wait(10)
    assert set(pg.outputs[0]["data"]) == {"name", "age"}
    assert json.loads(pg.messages[-1]["content"]) == pg.outputs[0]["data"]


def test_restore_from_history_and_from_run():
    pg = Playground("About {{topic}}", variables={"topic": "tides"},
                    models=["mock/echo", {"model": "mock/lorem", "params": {"max_tokens": 3}}])  # fmt: skip
    front = Front(pg)
    pg.run()
    pg.wait(10)
    run_id = pg.results[1].id
    pg.messages = [{"role": "user", "content": "something else"}]
    pg.variables = {}
    pg.targets = pg.targets[:1]
    front.command("restore", run_id=run_id)
    assert pg.messages == [{"role": "user", "content": "About {{topic}}"}]
    assert pg.variables == {"topic": "tides"}
    assert [tg["model"] for tg in pg.targets] == ["mock/echo", "mock/lorem"]
    assert pg.targets[1]["params"] == {"max_tokens": 3}
    assert [o["text"] for o in pg.outputs] == ["About tides", "lorem ipsum dolor"]
    other = Playground.from_run(run_id)
    assert other.messages == pg.messages and other.id != pg.id
    front.command("restore", run_id="nope")
    assert "nope" in pg.error
    with pytest.raises(E.RunNotFoundError) as missing:
        pg.restore("nope")
    assert missing.value.field == "run_id" and missing.value.http_status == 404


def test_history_panel_pages_and_scopes():
    pg = Playground("n", model="mock/echo")
    front = Front(pg)
    for i in range(3):
        pg.messages = [{"role": "user", "content": f"turn {i}"}]
        pg.clear_and_run() if i else pg.run()
        pg.wait(10)
    from nbplayground import api

    api.run("elsewhere", model="mock/echo")
    assert pg.history["total"] == 3 and pg.history["scope"] == "widget"
    front.command("history", scope="all", offset=0)
    assert pg.history["total"] == 4 and pg.history["items"][0]["text"] == "elsewhere"
    front.command("history", scope="widget", offset=2)
    assert len(pg.history["items"]) == 1 and pg.history["offset"] == 2


def test_save_and_load_versions():
    pg = Playground("Hello {{name}}", model="mock/echo", params={"temperature": 0.3})
    front = Front(pg)
    front.command("save_version", name="demo/hello", labels=["prod"])
    assert pg.prompt_ref == "demo/hello@1" and front.of("saved")[0]["ref"] == "demo/hello@1"
    pg.messages = [{"role": "user", "content": "changed"}]
    front.command("save_version", name="demo/hello", labels=[])
    front.command("load_version", ref="demo/hello@prod")
    assert pg.messages == [{"role": "user", "content": "Hello {{name}}"}]
    assert pg.targets[0]["params"] == {"temperature": 0.3} and pg.prompt_ref == "demo/hello@1"
    front.command("save_version", name="not a name")
    assert pg.error
    assert Playground(prompt="demo/hello@2").messages == [{"role": "user", "content": "changed"}]


def test_save_after_a_run_stores_the_prompt_written_and_the_conversation_only_when_asked():
    from nbplayground.storage import registry

    template = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Plan {{city}}"}]
    pg = Playground(template, variables={"city": "Oslo"}, model="mock/echo")
    front = Front(pg)
    pg.run()
    assert pg.wait(10)
    assert [m["role"] for m in pg.messages] == ["system", "user", "assistant"]
    front.command("save_version", name="demo/plan", labels=[])
    assert registry.get("demo/plan@1").messages == template  # the prompt, not the model's answer
    # the conversation only when asked, from the widget ...
    front.command("save_version", name="demo/plan", labels=[], conversation=True)
    assert pg.error == "" and pg.prompt_ref == "demo/plan@2"
    assert registry.get("demo/plan@2").messages == [*template, {"role": "assistant", "content": "Plan Oslo"}]
    # ... and from Python; a follow-up turn is conversation too, an edit of the prompt is kept
    pg.messages = [*pg.messages, {"role": "user", "content": "Shorter"}]
    pg.run()
    assert pg.wait(10)
    edited = [{**pg.messages[0], "content": "Be very brief."}, *pg.messages[1:]]
    pg.messages = edited
    assert registry.get(pg.save_version("demo/plan")).messages == [edited[0], template[1]]
    whole = registry.get(pg.save_version("demo/plan", conversation=True)).messages
    assert [m["role"] for m in whole] == ["system", "user", "assistant", "user", "assistant"]
    # Clear & Run starts again from the same prompt, as edited
    pg.clear_and_run()
    assert pg.wait(10)
    assert pg.results[0].messages[0]["content"] == "Be very brief."
    assert registry.get(pg.save_version("demo/plan")).messages == [edited[0], template[1]]
    # an answer edited by hand is still the answer; an editor rewritten by hand is saved as shown
    pg.messages = [*pg.messages[:2], {"role": "assistant", "content": "my own answer"}]
    assert registry.get(pg.save_version("demo/plan")).messages == [edited[0], template[1]]
    pg.messages = [{"role": "user", "content": "something else"}]
    assert registry.get(pg.save_version("demo/plan")).messages == pg.messages


def test_save_with_conversation_leaves_out_an_unanswered_tool_call():
    from nbplayground.storage import registry

    pg = Playground("Weather in Oslo?", model="mock/tools", tools=[tool_weather], tool_mode="manual")
    pg.run()
    assert pg.wait(10)
    assert [m["role"] for m in pg.messages] == ["user", "assistant", "tool"]
    prompt = [{"role": "user", "content": "Weather in Oslo?"}]
    assert registry.get(pg.save_version("demo/w")).messages == prompt
    saved = registry.get(pg.save_version("demo/w", conversation=True)).messages
    assert [m["role"] for m in saved] == ["user", "assistant"] and saved[1]["tool_calls"]


def test_labels_given_to_a_save_show_in_the_labels_field():
    pg = Playground("Hello", model="mock/echo")
    front = Front(pg)
    assert pg.prompt_labels == []
    front.command("save_version", name="demo/hi", labels=["prod", "beta"])
    assert pg.prompt_labels == ["prod", "beta"] and pg.prompt_ref == "demo/hi@1"
    pg.save_version("demo/hi", labels=["draft"])  # the Python API fills the same field
    assert pg.prompt_labels == ["draft"]
    front.command("save_version", name="demo/hi", labels="prod")
    assert "list" in pg.error and pg.prompt_labels == ["draft"]
    # a loaded version starts with an empty field: saving an edit of @prod does not move "prod" unasked
    front.command("load_version", ref="demo/hi@prod")
    assert pg.prompt_ref == "demo/hi@1" and pg.prompt_labels == []


def test_static_fallback_shows_the_last_results():
    pg = Playground("Fallback please", models=["mock/echo", "mock/lorem"])
    data, _ = pg.fallback_bundle()
    assert data["text/html"] == '<div class="nbp-fallback"></div>'
    assert "application/vnd.jupyter.widget-view+json" in pg._repr_mimebundle_()[0]
    pg.run()
    pg.wait(10)
    data, meta = pg.fallback_bundle()
    assert (
        data["text/html"].startswith('<div class="nbp-fallback">') and "Fallback please" in data["text/html"]
    )
    assert "== mock/lorem ==" in data["text/plain"]
    assert [r["status"] for r in meta["nbplayground"]["runs"]] == ["ok", "ok"]


def test_bad_construction_is_a_clear_error():
    with pytest.raises(E.NBPlaygroundError, match="1 to 4"):
        Playground("x", models=["mock/echo"] * 5)
    with pytest.raises(E.NBPlaygroundError, match="role"):
        Playground([{"role": "robot", "content": "x"}])
    with pytest.raises(E.NBPlaygroundError, match="tool_mode"):
        Playground("x", tool_mode="sometimes")
    pg = Playground("x", models=[lorem(200, 5)])
    pg.run()
    with pytest.raises(E.NBPlaygroundError, match="in progress"):
        pg.run()
    pg.stop()
    assert pg.wait(10)


def test_creating_a_playground_does_not_import_litellm():
    import subprocess
    import sys

    code = ("import sys; from nbplayground import Playground; Playground('x', model='mock/echo'); "
            "print('litellm' in sys.modules)")  # fmt: skip
    assert subprocess.check_output([sys.executable, "-c", code], text=True).strip() == "False"


def test_in_a_real_kernel_other_cells_run_while_the_widget_streams(tmp_path):
    from support.kernel import Kernel

    k = Kernel({"NBPLAYGROUND_HOME": str(tmp_path / "home")})
    try:
        ex = k.run(
            "import nbplayground as nbp\n"
            "pg = nbp.Playground('x', models=[{'model': 'mock/lorem', 'params': {'max_tokens': 3000, "
            "'mock_delay_ms': 2}}] * 3)\n"
            "pg._ready = True\n"
            "pg.run()\n"
            "pg"
        )
        assert ex.error is None, ex.error
        view = ex.displays[0]["data"]["application/vnd.jupyter.widget-view+json"]
        assert ex.displays[1]["data"]["text/html"] == '<div class="nbp-fallback"></div>'  # the static copy
        assert view["model_id"]
        t0 = time.monotonic()
        assert k.value("21 * 2") == 42  # the kernel answers while three targets stream
        assert time.monotonic() - t0 < 5
        assert k.value("pg.status") == "running"
        streamed = [m for m in k.run("import time; time.sleep(0.3)").messages if m["msg_type"] == "comm_msg"]
        assert streamed  # stream messages went out on IOPub meanwhile
        k.run("pg.stop(); pg.wait(10)")
        assert k.value("[o['status'] for o in pg.outputs]") == ["stopped"] * 3
    finally:
        k.shutdown()


def test_image_and_speech_targets_produce_media_cards():
    pg = Playground("a lighthouse at {{time}}", variables={"time": "dusk"},
                    models=["mock/image", {"model": "mock/tts", "params": {"voice": "nova"}}, "mock/echo"])  # fmt: skip
    pg.run()
    pg.wait(10)
    image, speech, text = pg.outputs
    assert image["kind"] == "image" and image["media"][0]["mime"] == "image/png"
    import base64

    assert base64.b64decode(image["media"][0]["data_b64"]).startswith(b"\x89PNG")
    assert image["media"][0]["revised_prompt"] == "A mock image of: a lighthouse at dusk"
    assert speech["media"][0]["mime"] == "audio/wav" and speech["media"][0]["params"]["voice"] == "nova"
    assert text["text"] == "a lighthouse at dusk"
    pg.targets = [{"model": "mock/stt", "params": {}}]
    with pytest.raises(E.NBPlaygroundError, match="transcribes audio"):
        pg.clear_and_run()


@pytest.fixture(scope="module")
def js_format(tmp_path_factory):
    """Call a function of js/lib/format.ts (bundled by esbuild) on JSON arguments in node."""
    import shutil
    import subprocess
    from pathlib import Path

    if shutil.which("node") is None:
        pytest.skip("Node.js is needed to run the widget's formatters")
    js = Path(__file__).resolve().parents[1] / "js"
    out = tmp_path_factory.mktemp("js") / "format.mjs"
    subprocess.run([str(js / "node_modules" / ".bin" / "esbuild"), str(js / "lib" / "format.ts"), "--bundle",
                    "--format=esm", f"--outfile={out}"], check=True, capture_output=True, timeout=120)  # fmt: skip
    runner = out.with_name("run.mjs")
    runner.write_text(
        "import * as f from './format.mjs';\n"
        "import { readFileSync } from 'node:fs';\n"
        "const calls = JSON.parse(readFileSync(0, 'utf8'));\n"
        "process.stdout.write(JSON.stringify(calls.map(([name, ...args]) => f[name](...args))));\n"
    )

    def call(*calls: list) -> list:
        proc = subprocess.run(["node", str(runner)], input=json.dumps(calls), capture_output=True, text=True,
                              timeout=60, check=True)  # fmt: skip
        return json.loads(proc.stdout)

    return call


def test_output_stats_show_only_what_is_known_and_never_the_status(js_format):
    known = {"tokens_in": 10, "tokens_out": 40, "cost_usd": 0.00009, "latency_ms": 1017.6, "ttft_ms": 25.2}
    assert js_format(
        ["formatStats", {**known, "status": "ok"}],
        ["formatStats", {}],  # nothing known yet (streaming): no "in – · out – tok"
        ["formatStats", {"tokens_out": 7, "latency_ms": 3}],
        ["formatStats", {**known, "estimated": True}],
        ["formatStats", {**known, "cost_usd": None}],  # unknown price: no money at all
        ["formatCost", 0],
        ["formatCost", None],
        ["formatCost", 1e-9],
        ["formatCost", 2.5],
        ["formatTokens", None, None],
    ) == [
        "in 10 · out 40 tok · $0.000090 · 1018 ms · TTFT 25 ms",
        "",
        "out 7 tok · 3 ms",
        "in ~10 · out ~40 tok · $0.000090 · 1018 ms · TTFT 25 ms",
        "in 10 · out 40 tok · 1018 ms · TTFT 25 ms",
        "$0",
        "",
        "<$0.000001",
        "$2.50",
        "",
    ]
