"""Secrets never land: not in the DuckDB file, media, pending files, notebook outputs, logs or errors."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import nbformat
from nbclient import NotebookClient

import nbplayground as nbp
from nbplayground.storage import history
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
