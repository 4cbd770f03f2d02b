"""The public Python API end to end on the offline mock/ models, with the real DuckDB history."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

import nbplayground as nbp
from nbplayground.core import errors as E


def test_import_is_cheap():
    code = (
        "import sys, nbplayground as nbp; "
        "heavy = [m for m in ('litellm', 'pandas', 'duckdb', 'pydantic', 'httpx', 'openai', 'IPython', "
        "'ipywidgets', 'anywidget', 'tornado', 'jupyter_server') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.check_output([sys.executable, "-c", code], text=True).strip()
    assert out == "[]"


def test_run_echo_with_variables_and_stats():
    r = nbp.run(
        "Say hi to {{name}}", model="mock/echo", variables={"name": "Ada"}, params={"temperature": 0.2}
    )
    assert r.status == "ok" and r.error is None
    assert r.text == "Say hi to Ada"
    assert r.tokens_in == 4 and r.tokens_out == 4
    assert r.cost_usd == pytest.approx(4 * 1e-6 + 4 * 2e-6)
    assert r.latency_ms >= r.ttft_ms > 0
    assert len(r.id) == 32


def test_braces_stay_verbatim_and_values_are_not_rerendered():
    r = nbp.run('Keep {"a": 1} and f"{x}" but fill {{v}}', model="mock/echo", variables={"v": "{{secret}}"})
    assert r.text == 'Keep {"a": 1} and f"{x}" but fill {{secret}}'


def test_missing_variables_raise_before_sending_and_list_all():
    with pytest.raises(E.MissingVariablesError) as info:
        nbp.run("{{a}} {{b.c}} {{d}}", model="mock/echo", variables={"d": 1})
    assert info.value.missing == ["a", "b.c"]
    assert "Available variables: d" in str(info.value)
    assert len(nbp.history()) == 0


def test_system_and_messages_thread():
    msgs = [
        {"role": "system", "content": "be terse"},
        {"role": "user", "content": "first {{n}}"},
        {"role": "assistant", "content": "ok {{n}}"},  # assistant text is never templated
        {"role": "user", "content": "second {{n}}"},
    ]
    r = nbp.run(messages=msgs, model="mock/echo", variables={"n": 2})
    assert r.text == "second 2"
    assert r.messages[2]["content"] == "ok {{n}}"
    r2 = nbp.run("hello", system="You are terse.", model="mock/echo")
    assert r2.messages[0] == {"role": "system", "content": "You are terse."}


def test_stream_events_then_stop_keeps_partial_text():
    h = nbp.stream("go", model="mock/lorem", params={"max_tokens": 500, "mock_delay_ms": 10})
    seen = []
    for ev in h:
        seen.append(ev)
        if sum(e.type == "delta" for e in seen) == 5:
            t0 = time.perf_counter()
            h.stop()
    r = h.result()
    assert time.perf_counter() - t0 < 0.25
    assert r.status == "stopped"
    assert 5 <= len(r.text.split()) < 500
    assert seen[-1].type == "done" and seen[-1].result is r
    stored = nbp.get_run(r.id)
    assert stored.status == "stopped" and stored.text == r.text


def test_every_event_is_tagged_and_serialisable():
    h = nbp.stream("a b c", model="mock/echo")
    events = list(h)
    assert {e.type for e in events} >= {"start", "delta", "usage", "done"}
    for e in events:
        d = e.to_dict()
        json.dumps(d)
        assert d["target"] == 0 and d["run_id"] == h.run_ids[0]


def test_compare_concurrent_targets_share_group():
    t0 = time.perf_counter()
    out = nbp.compare(
        "x",
        models=[
            {"model": "mock/lorem", "params": {"max_tokens": 20, "mock_delay_ms": 20}},
            {"model": "mock/lorem", "params": {"max_tokens": 20, "mock_delay_ms": 20}},
            "mock/echo",
        ],
    )
    elapsed = time.perf_counter() - t0
    assert elapsed < 0.8 * 2 * 20 * 0.020 + 0.3  # concurrent, not 2 x 400 ms in sequence
    assert [r.status for r in out] == ["ok"] * 3
    assert [r.target_index for r in out] == [0, 1, 2]
    assert len({r.group_id for r in out}) == 1
    df = nbp.history(limit=10)
    assert set(df["group_id"]) == {out.group_id}
    assert "mock/lorem" in out._repr_html_()


def test_compare_rejects_more_than_four():
    with pytest.raises(E.BadParameterError, match="1 to 4"):
        nbp.compare("x", models=["mock/echo"] * 5)


def test_replay_with_changed_params():
    r = nbp.run("one two three", model="mock/lorem", params={"max_tokens": 3})
    r2 = nbp.replay(r.id, params={"max_tokens": 5})
    assert r2.parent_id == r.id and r2.status == "ok"
    assert len(r2.text.split()) == 5
    r3 = nbp.replay(r.id[:10], model="mock/echo")
    assert r3.text == "one two three" and r3.model == "mock/echo"


def test_history_filters_and_sql():
    nbp.run("a", model="mock/echo")
    nbp.run("b", model="mock/lorem", params={"max_tokens": 2})
    nbp.run("c", model="mock/echo", surface="magic")
    df = nbp.history()
    assert list(df["text"]) == ["c", "lorem ipsum", "a"]  # newest first
    assert len(nbp.history(model="mock/echo")) == 2
    assert len(nbp.history(surface="magic")) == 1
    assert len(nbp.history(limit=1, offset=1)) == 1
    agg = nbp.sql("select model, count(*) as n from runs group by 1 order by 1")
    assert dict(zip(agg["model"], agg["n"], strict=True)) == {"mock/echo": 2, "mock/lorem": 1}


def test_tools_auto_runs_python_functions():
    calls = []

    def lookup_order(order_id: int, verbose: bool = False) -> dict:
        """Look up an order.

        Args:
            order_id: The order number.
            verbose: Include line items.
        """
        calls.append(order_id)
        return {"order": order_id, "status": "shipped"}

    h = nbp.stream("Where is my order?", model="mock/tools", tools=[lookup_order])
    types = [e.type for e in h]
    r = h.result()
    assert r.status == "ok", r.error
    assert calls and isinstance(calls[0], int)
    assert "tool_call" in types and "tool_result" in types
    assert r.tool_calls[0].result == {"order": calls[0], "status": "shipped"}
    assert "shipped" in r.text


def test_tool_exception_becomes_error_result_not_crash():
    def broken(city: str) -> str:
        """Always fails."""
        raise RuntimeError("weather service down")

    r = nbp.run("weather?", model="mock/tools", tools=[broken])
    assert r.status == "ok"
    assert r.tool_calls[0].error == "RuntimeError: weather service down"
    assert "weather service down" in r.text


def test_tools_manual_mode_stops_at_call_and_thread_continues():
    def get_time(tz: str) -> str:
        """Current time in a timezone."""
        raise AssertionError("manual mode must not run tools")

    r = nbp.run("What time is it?", model="mock/tools", tools=[get_time], tool_mode="manual")
    assert r.status == "ok" and r.finish_reason == "tool_calls"
    tc = r.tool_calls[0]
    assert tc.name == "get_time" and "tz" in tc.parsed_arguments()
    thread = [
        *r.messages,
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": tc.id, "type": "function", "function": {"name": tc.name, "arguments": tc.arguments}}]},
        {"role": "tool", "tool_call_id": tc.id, "content": "12:00 UTC"},
    ]  # fmt: skip
    r2 = nbp.run(messages=thread, model="mock/tools", tools=[get_time], tool_mode="manual")
    assert "12:00 UTC" in r2.text


def test_structured_output_pydantic_and_schema():
    from pydantic import BaseModel

    class Person(BaseModel):
        name: str
        age: int

    r = nbp.run("Extract: Ada, 36", model="mock/json", response_format=Person)
    assert r.status == "ok" and isinstance(r.data, Person)
    schema = {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}},
              "required": ["tags"]}  # fmt: skip
    r2 = nbp.run("tags please", model="mock/json", response_format=schema)
    assert isinstance(r2.data["tags"], list)
    stored = nbp.get_run(r.id)
    assert stored.data == {"name": r.data.name, "age": r.data.age}


def test_invalid_structured_output_keeps_raw_text():
    from pydantic import BaseModel

    class Person(BaseModel):
        name: str

    r = nbp.run("not json at all", model="mock/echo", response_format=Person)
    assert r.status == "error" and r.error_type == "StructuredOutputError"
    assert "Person" in r.error and r.text == "not json at all"


def test_json_python_refuses_is_a_structured_output_error_not_a_crash():
    # json.loads raises a plain ValueError (no .msg/.pos) for an integer over Python's 4300-digit limit
    digits = "1" * 5000
    r = nbp.run(digits, model="mock/echo", response_format={"type": "integer"})
    assert r.status == "error" and r.error_type == "StructuredOutputError", r.error
    assert "4300" in r.error and r.text == digits


def test_media_kinds_image_speech_transcription(tmp_path):
    img = nbp.run("a lighthouse at dusk", model="mock/image", kind="image")
    assert img.status == "ok" and img.image.mime == "image/png"
    assert img.image.data.startswith(b"\x89PNG") and img.image.revised_prompt
    speech = nbp.run(model="mock/tts", kind="speech", input="hello {{who}}", variables={"who": "world"},
                     params={"voice": "alloy"})  # fmt: skip
    assert speech.audio.mime == "audio/wav" and speech.audio.params["voice"] == "alloy"
    assert '<img src="data:image/png;base64,' in img._repr_html_()
    assert '<audio controls src="data:audio/wav;base64,' in speech._repr_html_()
    wav = tmp_path / "a.wav"
    wav.write_bytes(speech.audio.data)
    text = nbp.run(model="mock/stt", kind="transcription", input=str(wav))
    assert text.text == "hello world"
    stored = nbp.get_run(img.id)
    assert stored.media[0].mime == "image/png" and stored.media[0].path


def test_registry_prompt_runs_with_label():
    nbp.prompts.save("support/greeting", content="Hello {{name}}, v1", model="mock/echo", labels=["prod"])
    nbp.prompts.save("support/greeting", content="Hi {{name}}, v2", model="mock/echo")
    r = nbp.run(prompt="support/greeting@prod", variables={"name": "Ada"})
    assert r.text == "Hello Ada, v1" and r.prompt_ref == "support/greeting@1"
    r2 = nbp.run(prompt="support/greeting", variables={"name": "Bo"})
    assert r2.text == "Hi Bo, v2" and r2.prompt_ref == "support/greeting@2"
    d = nbp.prompts.diff("support/greeting@1", "support/greeting@2")
    assert "-Hello {{name}}, v1" in d.text and "+Hi {{name}}, v2" in d.text
    assert nbp.history(limit=1)["prompt_ref"][0] == "support/greeting@2"


def test_providers_report_key_status_never_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-providers-0123456789")
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    df = nbp.providers()
    status = dict(zip(df["provider"], df["key_status"], strict=True))
    assert status["mock"] == "not needed" and status["openai"] == "set" and status["anthropic"] == "missing"
    assert "sk-test-providers" not in df.to_string() + df.to_json()


def test_configure_rejects_inline_keys():
    with pytest.raises(E.ConfigError, match="api_key_env"):
        nbp.configure(models={"x": {"model": "openai/gpt-4o-mini", "api_key": "sk-nope"}})
