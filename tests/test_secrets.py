"""Secrets never land: not in the DuckDB file, media, pending files, notebook outputs, logs or errors.

Also: what the one secrets module recognises, variables stored as placeholder values, registry prompts
that reach for `os.environ`, provider errors carrying tokens, and every kind of run.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

import nbplayground as nbp
from nbplayground.core import secrets, templating
from nbplayground.storage import history
from support.kernel import Kernel
from support.oai_server import Behaviour, OpenAIServer

ENV_KEY = "sk-nbp-ENVSECRET-0123456789abcdef"
CUSTOM_KEY = "acme-CUSTOMSECRET-0123456789"
CALL_KEY = "sk-nbp-CALLSECRET-9876543210"
SECRETS = (ENV_KEY, CUSTOM_KEY, CALL_KEY)


def _files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def _assert_clean(blob: bytes | str, where: str) -> None:
    data = blob if isinstance(blob, bytes) else blob.encode()
    for secret in SECRETS:
        assert secret.encode() not in data, f"{secret} leaked into {where}"


def test_secrets_never_land_anywhere(nbp_home, monkeypatch, caplog, capfd, tmp_path):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    monkeypatch.setenv("ACME_KEY", CUSTOM_KEY)
    with OpenAIServer(tokens=5) as srv:
        (nbp_home / "config.toml").write_text(
            f'[models.acme]\nmodel = "openai/acme-ft"\napi_base = "{srv.url}"\napi_key_env = "ACME_KEY"\n'
        )
        nbp.configure(models={"envkey": {"model": "openai/gpt-4o-mini", "api_base": srv.url,
                                         "api_key_env": "OPENAI_API_KEY"}})  # fmt: skip
        results = []
        results.append(nbp.run("hello", model="acme"))
        results.append(nbp.run("hello", model="envkey", params={"temperature": 0}))
        results.append(nbp.run("hello", model="acme", params={"api_key": CALL_KEY, "max_tokens": 3}))
        # providers that echo the key back in an error (OpenAI does: "Incorrect API key provided: sk-...")
        for key, model in ((CUSTOM_KEY, "acme"), (ENV_KEY, "envkey")):
            srv.script = [Behaviour(status=401, error_message=f"Incorrect API key provided: {key}.")]
            results.append(nbp.run("hello", model=model))
        srv.script = [Behaviour(status=400, error_message=f"bad request from key {CALL_KEY}")]
        results.append(nbp.run("hello", model="acme", params={"api_key": CALL_KEY}))
        # every kind, through litellm against the same server, and through mock
        results.append(nbp.run(model="acme", kind="image", input="a cat", params={"api_key": CALL_KEY}))
        results.append(nbp.run(model="acme", kind="speech", input="hi there"))
        audio = tmp_path / "a.wav"
        audio.write_bytes(b"RIFF0000WAVEfmt ")
        results.append(nbp.run(model="acme", kind="transcription", input=str(audio)))
        results.append(nbp.run("img", model="mock/image", kind="image", params={"api_key": CALL_KEY}))
        speech = nbp.run(model="mock/tts", kind="speech", input="hello")
        results.append(speech)
        results.append(nbp.run(model="mock/stt", kind="transcription", input=speech.audio.data))
        compare = nbp.compare("x", models=["acme", "envkey"], params={"api_key": CALL_KEY})
        results.extend(compare)
        # the key did reach the server where it should
        assert any(h.get("authorization") == f"Bearer {CUSTOM_KEY}" for h in srv.headers)
        assert any(h.get("authorization") == f"Bearer {CALL_KEY}" for h in srv.headers)

    assert [r.status for r in results[:3]] == ["ok", "ok", "ok"]
    assert results[3].error_type == "AuthError" and "***" in results[3].error
    assert all(r.status == "ok" for r in results[6:]), [(r.model, r.kind, r.error) for r in results[6:]]
    for r in results:
        _assert_clean(json.dumps(r.to_dict(), default=str), f"result {r.model}/{r.kind}")
        _assert_clean(repr(r) + str(r) + r._repr_html_(), "result repr")
    assert history.flush()
    for path in _files_under(nbp_home):
        _assert_clean(path.read_bytes(), str(path))
    stored = nbp.sql("select * from runs")
    assert len(stored) == len(results)
    _assert_clean(stored.to_json(date_format="iso"), "sql output")
    _assert_clean("\n".join(rec.getMessage() for rec in caplog.records), "logs")
    out, err = capfd.readouterr()
    _assert_clean(out + err, "stdout/stderr")


def test_secrets_stay_out_of_notebook_outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("NBPLAYGROUND_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    with OpenAIServer(tokens=3) as srv:
        srv.script = [
            Behaviour(tokens=3),
            Behaviour(status=401, error_message=f"Incorrect API key provided: {ENV_KEY}"),
        ]
        nb = nbformat.v4.new_notebook()
        nb.cells = [
            nbformat.v4.new_code_cell(
                "import nbplayground as nbp\n"
                f"nbp.configure(models={{'m': {{'model': 'openai/gpt-4o-mini', 'api_base': '{srv.url}', "
                "'api_key_env': 'OPENAI_API_KEY'}})\n"
                "ok = nbp.run('hi', model='m')\nok"
            ),
            nbformat.v4.new_code_cell("bad = nbp.run('hi', model='m')\nbad"),
            nbformat.v4.new_code_cell("print(bad.error); bad.to_dict()"),
            nbformat.v4.new_code_cell("nbp.history()"),
            nbformat.v4.new_code_cell("nbp.providers()"),
        ]
        NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    text = nbformat.writes(nb)
    assert "Incorrect API key provided: ***" in text
    _assert_clean(text, "notebook outputs")


# ---------------------------------------------------------------------------------------------------
# One secrets module: what it recognises, and what it leaves alone
# ---------------------------------------------------------------------------------------------------
GHP = "ghp_" + "R2d2C3po" * 5  # a GitHub token (40 chars after the prefix)
SK_LIVE = "sk_live_" + "51HxYzAbCdEf" * 2
OPAQUE = "opaque-CFGSECRET-4242"  # no pattern knows this one: only where it sits says it is a key


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("key sk-proj-Ab12Cd34Ef56Gh78Ij90Kl end", "key sk-*** end"),
        ("sk-ant-api03-" + "x9" * 40, "sk-***"),
        (f"token {GHP}.", "token ghp_***."),
        ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "github_pat_***"),
        (f"charge with {SK_LIVE}", "charge with sk_***"),
        ("rk_live_abcdef0123456789", "rk_live_***"),
        ("xoxb-1234567890-abcdefghij", "xoxb-***"),
        ("id AKIAIOSFODNN7EXAMPLE here", "id AKIA*** here"),
        ("maps AIzaSyA1234567890abcdefghijklmnopqrstu", "maps AIza***"),
        ("hf_" + "abcdefghij" * 4, "hf_***"),
        ("gsk_" + "a1" * 12, "gsk_***"),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "eyJ***"),
        ("Authorization: Bearer abc.def-ghi_jkl123456", "Authorization: Bearer ***"),
        ("password=hunter2hunter2", "password=***"),
        ('{"openai_key": "acme12345678"}', '{"openai_key": "***"}'),
        ("API_KEY='abc123def456'", "API_KEY='***'"),
        ("postgres://bob:s3cretpw@db.example.com/x", "postgres://bob:***@db.example.com/x"),
    ],
)  # fmt: skip
def test_redact_recognises_every_kind_of_key_and_keeps_its_prefix(text, shown):
    assert secrets.redact(text) == shown


@pytest.mark.parametrize(
    "text",
    ["the bearer of bad news", "bearer certificates", "Key: Photosynthesis", "max_tokens: 12345678",
     "task-0123456789abcdef", "sk-learn is great", "tokens_in=1234567890", "https://example.com/a:b@c",
     "Cost $0.000012 for 340 tokens", "A long answer about keys, tokens and secrets."],
)  # fmt: skip
def test_redact_leaves_words_counts_and_urls_alone(text):
    assert secrets.redact(text) is text


@pytest.mark.parametrize(
    ("name", "secret"),
    [("api_key", True), ("openai_key", True), ("X-Api-Key", True), ("accessToken", True), ("password", True),
     ("Authorization", True), ("client_secret", True), ("session_cookie", True), ("GITHUB_PAT", True),
     ("HF_TOKEN", True), ("max_tokens", False), ("tokens_in", False), ("keywords", False), ("api_key_env", False),
     ("monkey", False), ("KEYBOARD_LAYOUT", False), ("TOKENIZERS_PARALLELISM", False), ("PWD", False),
     ("token_count", False), ("cfg.prompt", False)],
)  # fmt: skip
def test_key_like_names_but_not_counts(name, secret):
    assert secrets.is_secret_name(name) is secret


def test_known_values_are_redacted_whatever_they_look_like(monkeypatch):
    monkeypatch.setenv("ACME_SERVICE_TOKEN", OPAQUE)
    monkeypatch.setenv("KEYBOARD_LAYOUT", "us-international")  # a key-ish name that is not one
    secrets.remember_secret("remembered-value-77")
    text = f"{OPAQUE} / remembered-value-77 / us-international"
    assert secrets.redact(text) == "*** / *** / us-international"
    monkeypatch.delenv("ACME_SERVICE_TOKEN")
    assert OPAQUE in secrets.redact(text)  # the snapshot follows the environment


def test_redact_json_never_breaks_the_json():
    red = secrets.redactor().with_values(['quo"te-secret1'])
    data = {"a": "\x1bearer abcdefghijkl12345", "b": 'secret: "abc12345678"', "c": 'x quo"te-secret1 y',
            "d": ["ghp_" + "A1" * 18, {"password": "hunter2hunter2"}]}  # fmt: skip
    out = red.redact_json(json.dumps(data, ensure_ascii=False))
    assert out is not None
    back = json.loads(out)
    assert back["c"] == "x *** y" and back["d"][0] == "ghp_***" and back["d"][1] == {"password": "***"}
    assert "abc12345678" not in out


def test_scrub_drops_key_fields_and_reports_their_values():
    found: list[str] = []
    value = {"cfg": {"prompt": "hi", "openai_key": OPAQUE}, "note": GHP, "headers": {"x": 1}, "max_tokens": 5}
    out = secrets.redactor().scrub(value, drop=frozenset({"headers"}), found=found)
    assert out == {"cfg": {"prompt": "hi"}, "note": "ghp_***", "max_tokens": 5}
    assert found == [OPAQUE]


# ---------------------------------------------------------------------------------------------------
# Variables holding keys, registry prompts naming `os`, provider errors, every kind
# ---------------------------------------------------------------------------------------------------
PLANTED = (OPAQUE, GHP, SK_LIVE, "opaque-NAMEDSECRET-77")


def _assert_planted_clean(blob: bytes | str, where: str) -> None:
    data = blob if isinstance(blob, bytes) else blob.encode()
    for secret in PLANTED:
        assert secret.encode() not in data, f"{secret} leaked into {where}"


def _assert_store_clean(home: Path, spoken: bool = False) -> None:
    assert history.flush()
    _assert_planted_clean(nbp.sql("select * from runs").to_json(date_format="iso"), "sql output")
    history.reset_for_tests()  # close everything: DuckDB checkpoints the WAL into the file
    files = _files_under(home)
    assert files
    for path in files:
        if spoken and path.suffix == ".wav":
            continue  # speech asked to say a key says it: the audio is the answer (the mock's WAV holds its text)
        _assert_planted_clean(path.read_bytes(), str(path))


def test_variables_holding_keys_are_stored_as_placeholder_values_without_keys(nbp_home):
    cfg = {"prompt": "Summarise the memo", "openai_key": OPAQUE, "audience": "kids"}
    r1 = nbp.run("{{cfg.prompt}} for {{cfg.audience}}", model="mock/echo", variables={"cfg": cfg})
    # a plain string variable holding a key, echoed back by the model
    r2 = nbp.run("Check this one: {{tok}}", model="mock/echo", variables={"tok": GHP})
    # a variable whose *name* says it is a key: its opaque value is redacted everywhere in the run
    named = {"api_key": "opaque-NAMEDSECRET-77"}
    r3 = nbp.run("Call with {{api_key}} please", model="mock/echo", variables=named)
    # the whole dict inserted into the prompt
    r4 = nbp.run("Config: {{cfg}}", model="mock/echo", variables={"cfg": cfg})
    # the DataFrame surface: a column holding a dict, used through one field
    df = pd.DataFrame({"row": [{"q": q, "stripe_key": SK_LIVE} for q in ("first", "second")]})
    out = df.prompt.run("answer", prompt="Q: {{row.q}}", model="mock/echo", progress=False)
    assert list(out["answer"]) == ["Q: first", "Q: second"]
    assert [r.status for r in (r1, r2, r3, r4)] == ["ok"] * 4
    assert r1.variables == {"cfg.prompt": "Summarise the memo", "cfg.audience": "kids"}

    stored = {r.id: nbp.get_run(r.id) for r in (r1, r2, r3, r4)}
    assert stored[r1.id].variables == {"cfg.prompt": "Summarise the memo", "cfg.audience": "kids"}
    assert stored[r2.id].variables == {"tok": "ghp_***"}
    assert stored[r2.id].text == "Check this one: ghp_***"
    assert stored[r3.id].variables == {}
    assert stored[r3.id].text == "Call with *** please"
    assert stored[r3.id].messages[-1]["content"] == "Call with *** please"
    assert stored[r4.id].variables == {"cfg": {"prompt": "Summarise the memo", "audience": "kids"}}
    frame_vars = nbp.sql("select variables from runs where surface = 'dataframe'")["variables"]
    assert sorted(frame_vars) == [json.dumps({"row.q": "first"}), json.dumps({"row.q": "second"})]
    _assert_store_clean(nbp_home)


def test_stored_variables_render_the_template_again_and_replay_works(nbp_home):
    cfg = {"prompt": "Name a colour", "items": ["red", "blue"], "openai_key": OPAQUE}
    template = "{{cfg.prompt}}: {{cfg.items[1]}} or {{cfg.items.0}}"
    r = nbp.run(template, model="mock/echo", variables={"cfg": cfg})
    stored = nbp.get_run(r.id)
    assert stored.variables == {"cfg.prompt": "Name a colour", "cfg.items[1]": "blue", "cfg.items.0": "red"}
    again = templating.render_messages(stored.template["messages"], stored.variables)
    assert again == stored.messages == [{"role": "user", "content": "Name a colour: blue or red"}]
    assert templating.render_messages(stored.template["messages"], templating.nest(stored.variables)) == again
    replayed = nbp.replay(r.id)
    assert replayed.status == "ok" and replayed.text == r.text == "Name a colour: blue or red"
    assert replayed.parent_id == r.id and nbp.get_run(replayed.id).variables == stored.variables
    # "open in playground": the stored values come back as objects by root name, nothing is missing
    from nbplayground.widgets.playground import Playground

    pg = Playground.from_run(r.id)
    assert json.loads(pg.variables["cfg"]) == {"prompt": "Name a colour", "items": {"1": "blue", "0": "red"}}
    assert pg.missing == [] and pg._rendered() == stored.messages
    _assert_store_clean(nbp_home)


def test_provider_errors_with_tokens_are_redacted_on_both_transports(nbp_home, monkeypatch):
    monkeypatch.setenv("ACME_KEY", CUSTOM_KEY)
    with OpenAIServer(tokens=3) as srv:
        nbp.configure(models={
            "native": {"model": "openai/acme", "api_base": srv.url, "api_key_env": "ACME_KEY"},
            "viallm": {"model": "openai/acme", "api_base": srv.url, "api_key_env": "ACME_KEY", "transport": "litellm"},
        })  # fmt: skip
        results = []
        for model in ("native", "viallm"):
            for status in (400, 401, 403):
                said = f"upstream said: use {GHP} or {SK_LIVE} ({status})"
                srv.script = [Behaviour(status=status, error_message=said)]
                results.append(nbp.run("hi", model=model))
    for r in results:
        assert r.status == "error", (r.model, r.text)
        assert "ghp_***" in r.error or "sk_***" in r.error or "***" in r.error, r.error
        _assert_planted_clean(json.dumps(r.to_dict(), default=str), f"result of {r.model}")
    _assert_store_clean(nbp_home)


def test_keys_in_every_kind_of_run_stay_out_of_the_store(nbp_home, tmp_path):
    prompt = f"a poster reading {GHP} and {SK_LIVE}"
    image = nbp.run(prompt, model="mock/image", kind="image")
    assert image.status == "ok" and GHP in (image.image.revised_prompt or "")  # the mock echoes the prompt
    speech = nbp.run(model="mock/tts", kind="speech", input="say {{tok}} twice", variables={"tok": GHP})
    heard = nbp.run(model="mock/stt", kind="transcription", input=speech.audio.data)
    assert heard.status == "ok" and GHP in heard.text  # the mock reads the text back out of its WAV
    chat = nbp.compare("{{k}}", models=["mock/echo", "mock/json"], variables={"k": SK_LIVE})
    assert all(r.status == "ok" for r in chat)
    assert nbp.get_run(heard.id).text.count("ghp_***") == 1
    revised = nbp.get_run(image.id).media[0].revised_prompt
    assert revised == "A mock image of: a poster reading ghp_*** and sk_***"
    _assert_store_clean(nbp_home, spoken=True)


SAVED_WITH_OS = "Summarise {{text}} for {{meta.audience}}.<!-- {{os.environ}} -->"


def test_a_registry_prompt_naming_os_is_refused_in_a_notebook_and_stores_nothing(tmp_path):
    home = tmp_path / "home"
    k = Kernel({"NBPLAYGROUND_HOME": str(home), "NBP_PLANTED_PLAIN": "plain-env-value-31337",
                "ACME_SERVICE_TOKEN": OPAQUE})  # fmt: skip
    try:
        ex = k.run(
            "%load_ext nbplayground\nimport os\nimport nbplayground as nbp\n"
            f"nbp.prompts.save('team/summary', content={SAVED_WITH_OS!r}, model='mock/echo')\n"
            "nbp.prompts.save('team/env', content='Env: {{env}}', model='mock/echo')\n"
            "nbp.prompts.save('team/obj', content='Say {{box.word}}', model='mock/echo')\n"
            "text = 'the memo'; meta = {'audience': 'kids'}; env = os.environ\n"
            "class Box:\n    word = 'boxed'\nbox = Box()"
        )
        assert ex.error is None, ex.error
        refused = k.run("%prompt --prompt team/summary")
        assert refused.usage_error is not None
        assert "os.environ" in refused.usage_error and "not plain data" in refused.usage_error
        assert "--vars os" in refused.usage_error
        env = k.run("%prompt --prompt team/env")
        assert env.usage_error is not None and "--vars env" in env.usage_error  # a mapping, not a dict
        # objects other than plain data need the user's say-so, and then work
        assert "--vars box" in (k.run("%prompt --prompt team/obj").usage_error or "")
        named = k.run("%prompt --prompt team/obj --vars box")
        assert named.error is None and named.usage_error is None
        assert "Say boxed" in named.text()
        # plain data from the notebook still fills a saved prompt; the cell's own placeholders read anything
        plain = k.run("nbp.prompts.save('team/plain', content='Summarise {{text}} for {{meta.audience}}', "
                      "model='mock/echo')\n")  # fmt: skip
        assert plain.error is None
        ran = k.run("%prompt --prompt team/plain")
        assert ran.usage_error is None and "Summarise the memo for kids" in ran.text()
        own = k.run("%%prompt mock/echo\n{{os.sep}} is mine to use")
        assert own.usage_error is None and "/ is mine to use" in own.text()
        query = "select coalesce(prompt_ref, '') as prompt_ref, variables from runs order by created_at"
        rows = k.value(f"nbp.sql({query!r}).to_dict('records')")
    finally:
        k.shutdown()
    assert [r["prompt_ref"] for r in rows] == ["team/obj@1", "team/plain@1", ""]
    assert json.loads(rows[1]["variables"]) == {"text": "the memo", "meta.audience": "kids"}
    for path in _files_under(home):
        raw = path.read_bytes()
        assert b"plain-env-value-31337" not in raw and OPAQUE.encode() not in raw, path


def test_a_key_pasted_into_a_saved_prompt_never_lands(nbp_home, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    saved = nbp.prompts.save("team/leaky", messages=[{"role": "system", "content": f"Use key {ENV_KEY} here"},
                                                     {"role": "user", "content": "token ghp_" + "a" * 36}],
                             description=f"key is {CALL_KEY}")  # fmt: skip
    assert ENV_KEY not in json.dumps(saved.messages) and "ghp_***" in saved.messages[1]["content"]
    stored = nbp.sql("select messages, description from prompts where name = 'team/leaky'")
    _assert_clean(stored.to_json(), "prompts table")
    assert "ghp_" + "a" * 36 not in stored.to_json()
