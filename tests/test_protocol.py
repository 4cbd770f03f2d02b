"""The widget protocol is defined once (src/nbplayground/widgets/protocol.py) and everything matches it.

The committed TypeScript is exactly what the schema generates; the engine's real events and results, the
kernel's real messages and the widget's real traits validate against it (with pydantic and, through the
derived JSON Schema, with jsonschema); bad trait values are refused in one line that names the field.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

import anywidget
import jsonschema
import pytest
import traitlets

import nbplayground as nbp
from nbplayground.core import plan, retry
from nbplayground.core.types import EVENT_TYPES, KINDS, Event, RunResult, Usage
from nbplayground.widgets import Playground, _protocol_ts, protocol
from support.oai_server import Behaviour, OpenAIServer

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL_TS = ROOT / "js" / "lib" / "protocol.ts"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return protocol.json_schema()


def check(schema: dict[str, Any], name: str, value: Any) -> None:
    """``value`` is a valid ``name`` for pydantic and, through the JSON Schema, for jsonschema."""
    value = json.loads(json.dumps(value))  # what crosses the wire
    protocol.validate(name, value)
    jsonschema.Draft202012Validator({**schema, "$ref": f"#/$defs/{name}"}).validate(value)


def rejected(schema: dict[str, Any], name: str, value: Any) -> str:
    with pytest.raises(ValueError) as info:
        protocol.validate(name, value)
    assert not jsonschema.Draft202012Validator({**schema, "$ref": f"#/$defs/{name}"}).is_valid(value)
    return str(info.value)


# -- one definition ------------------------------------------------------------------------------------
def test_the_committed_typescript_is_what_the_schema_generates(tmp_path):
    out = tmp_path / "protocol.ts"
    subprocess.run([sys.executable, "-m", "nbplayground.widgets.protocol", "--ts", "--out", str(out)],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    assert out.read_text(encoding="utf-8") == PROTOCOL_TS.read_text(encoding="utf-8"), (
        "js/lib/protocol.ts is stale: run `python -m nbplayground.widgets.protocol --ts`"
    )
    assert _protocol_ts.render() == out.read_text(encoding="utf-8")
    text = PROTOCOL_TS.read_text(encoding="utf-8")
    assert text.startswith("// Generated from") and "do not edit" in text.splitlines()[1]
    for name in protocol.TYPES:
        assert f"export interface {name} " in text or f"export type {name} = " in text
    # the front end's types.ts adds only front-end types: the protocol comes from the generated file
    types_ts = (ROOT / "js" / "lib" / "types.ts").read_text(encoding="utf-8")
    assert 'export * from "./protocol";' in types_ts and "export interface Target " not in types_ts


def test_the_schema_command_prints_the_schema(schema):
    proc = subprocess.run([sys.executable, "-m", "nbplayground.widgets.protocol", "--schema"],
                          check=True, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert json.loads(proc.stdout) == schema
    jsonschema.Draft202012Validator.check_schema(schema)
    assert set(protocol.TYPES) <= set(schema["$defs"])


def test_the_vocabularies_are_the_cores():
    assert protocol.ROLES == plan.ROLES
    assert protocol.EVENT_TYPES == EVENT_TYPES
    assert get_args(protocol.TargetKind) == (plan.AUTO_KIND, *KINDS)
    event_types = {t for m in get_args(get_args(protocol.StreamEvent)[0])
                   for t in get_args(m.model_fields["type"].annotation)}  # fmt: skip
    assert event_types == set(EVENT_TYPES)  # one model per event type, none missing
    assert protocol.Traits.model_fields["targets"].metadata[-1].max_length == plan.MAX_TARGETS
    assert "export const MAX_TARGETS = 4;" in PROTOCOL_TS.read_text(encoding="utf-8")


def test_the_traits_are_exactly_the_widgets_synced_traits():
    ours = set(Playground.class_trait_names(sync=True)) - set(anywidget.AnyWidget.class_trait_names(sync=True))
    assert set(protocol.Traits.model_fields) == ours


# -- the engine's events and results ---------------------------------------------------------------------
def get_weather(city: str) -> str:
    """Weather.

    Args:
        city: City name.
    """
    return f"sunny in {city}"


def test_every_event_the_engine_emits_and_every_result_validates(schema, monkeypatch):
    monkeypatch.setattr(retry, "BACKOFF_BASE", 0.01)
    handles = [
        nbp.stream("Weather in Paris?", model="mock/tools", tools=[get_weather], history=False),
        nbp.stream("hi", models=["mock/echo", {"model": "mock/lorem", "params": {"max_tokens": 5}}], history=False),
        nbp.stream("Ada, 36", model="mock/json", history=False,
                   response_format={"type": "object", "properties": {"name": {"type": "string"}}}),
        nbp.stream("a cat", model="mock/image", kind="image", history=False),
    ]  # fmt: skip
    events: list[Event] = []
    results: list[RunResult] = []
    for h in handles:
        events += list(h)
        results += h.results()
    with OpenAIServer(tokens=6) as srv:
        nbp.configure(models={"local": {"model": "openai/m", "api_base": srv.url}})
        srv.script = [Behaviour(status=429, retry_after=0.01), Behaviour(text="after a 429")]
        h = nbp.stream("hi", model="local", history=False)
        events += list(h)
        results += h.results()
        srv.script = [Behaviour(status=400, error_message="bad temperature")]
        h = nbp.stream("hi", model="local", history=False)
        events += list(h)
        results += h.results()
    stopping = nbp.stream("x", model="mock/lorem", params={"max_tokens": 3000, "mock_delay_ms": 2}, history=False)
    stopping.stop()
    events += list(stopping)
    results += stopping.results()
    assert {e.type for e in events} == set(EVENT_TYPES)  # every type, from real runs
    assert {r.status for r in results} == {"ok", "error", "stopped"}
    assert any(r.media for r in results) and any(r.data is not None for r in results)
    for ev in events:
        check(schema, "StreamEvent", ev.to_dict())
    for r in results:
        check(schema, "RunResult", r.to_dict())
        check(schema, "RunResult", r.to_dict(include_media_data=True))


def test_a_hand_made_retry_event_validates_and_a_bad_one_does_not(schema):
    ev = Event("retry", 1, "r1", attempt=2, reason="RateLimitError", wait=0.5)
    check(schema, "StreamEvent", ev.to_dict())
    assert "attempt" in rejected(schema, "StreamEvent", Event("retry", 0, "r1", attempt=1, reason="X").to_dict())
    assert rejected(schema, "StreamEvent", {**ev.to_dict(), "colour": 1}).startswith("StreamEvent.retry.colour")
    check(schema, "StreamEvent", Event("usage", 0, "r1", usage=Usage(3, None)).to_dict())
    assert "model" in rejected(schema, "StreamEvent", {"type": "start", "target": 0, "run_id": "r"})
    assert rejected(schema, "StreamEvent", {"type": "chunk", "target": 0, "run_id": "r"})


# -- the widget: kernel messages, commands, traits ---------------------------------------------------------
class Front:
    """Records what the kernel sends a view (as JSON, like the comm) and sends commands like a view."""

    def __init__(self, pg: Playground) -> None:
        self.pg, self.sent = pg, []
        pg.send = lambda msg, buffers=None: self.sent.append(json.loads(json.dumps(msg)))  # type: ignore[method-assign]
        self.command({"type": "ready"})

    def command(self, msg: dict[str, Any]) -> None:
        self.pg._handle_custom_msg(msg, [])


def traits(pg: Playground) -> dict[str, Any]:
    return json.loads(json.dumps({name: getattr(pg, name) for name in protocol.Traits.model_fields}))


def test_the_kernels_messages_and_the_widgets_traits_validate(schema):
    pg = Playground("Weather in {{city}}?", variables={"city": "Oslo"}, tools=[get_weather],
                    models=["mock/tools", "mock/image", {"model": "mock/lorem", "params": {"max_tokens": 20}}])  # fmt: skip
    front = Front(pg)
    check(schema, "Traits", traits(pg))
    pg.run()
    assert pg.wait(20)
    front.command({"type": "save_version", "name": "demo/weather", "labels": ["prod"], "conversation": False})
    front.command({"type": "nonsense"})
    kinds = {m["type"] for m in front.sent}
    assert {"run_started", "events", "run_finished", "saved", "error"} <= kinds
    for msg in front.sent:
        check(schema, "KernelMsg", msg)
    streamed = {ev["type"] for m in front.sent if m["type"] == "events" for ev in m["events"]}
    assert {"start", "delta", "tool_call", "tool_result", "done"} <= streamed
    state = traits(pg)
    assert [o["status"] for o in state["outputs"]] == ["ok", "ok", "ok"] and state["history"]["items"]
    assert any(m.get("data_b64") for m in state["outputs"][1]["media"])
    check(schema, "Traits", state)
    pg.restore(pg.results[0].id)
    check(schema, "Traits", traits(pg))


COMMANDS: dict[str, dict[str, Any]] = {
    "ready": {}, "run": {}, "clear_and_run": {}, "stop": {}, "history": {"scope": "all", "offset": 0},
    "restore": {"run_id": "0" * 32}, "save_version": {"name": "demo/x", "labels": [], "conversation": True},
    "load_version": {"ref": "demo/x"},
}  # fmt: skip


def test_every_command_in_the_schema_is_one_the_kernel_handles(schema):
    types = set(schema["$defs"]["Command"]["discriminator"]["mapping"])
    assert types == set(COMMANDS)
    pg = Playground("hi", model="mock/echo")
    front = Front(pg)
    for kind, fields in COMMANDS.items():
        check(schema, "Command", {"type": kind, **fields})
        front.command({"type": kind, **fields})
        pg.wait(10)
    errors = [m["message"] for m in front.sent if m["type"] == "error"]
    assert not [e for e in errors if "Unknown widget command" in e]
    assert rejected(schema, "Command", {"type": "history", "scope": "mine", "offset": 0}).startswith(
        "Command.history.scope"
    )


# -- bad trait values: one line that names the field -------------------------------------------------------
@pytest.mark.parametrize(
    ("trait", "value", "message"),
    [
        ("messages", [{"role": "wizard", "content": "x"}], "Playground.messages[0].role: Input should be 'system'"),
        ("messages", [{"role": "user"}], "Playground.messages[0].content: Field required."),
        ("messages", [{"role": "user", "content": "x", "colour": "red"}], "Playground.messages[0].colour: Extra"),
        ("targets", [{"model": "mock/echo"}] * 5, "Playground.targets: List should have at most 4 items"),
        ("targets", [], "Playground.targets: List should have at least 1 item"),
        ("targets", [{"model": "mock/echo", "params": [0.5]}], "Playground.targets[0].params: Input should be a valid"),
        ("targets", [{"model": "m", "params": {"temperature": "hot"}}], "Playground.targets[0].params.temperature:"),
        ("targets", [{"model": "m", "kind": "video"}], "Playground.targets[0].kind: Input should be 'auto'"),
        ("variables", {"x": object()}, "Playground.variables.x: a variable's value is text or JSON"),
        ("tool_mode", "sometimes", "Playground.tool_mode: Input should be 'auto' or 'manual', got 'sometimes'."),
        ("status", "done", "Playground.status: Input should be 'idle'"),
    ],
)
def test_a_bad_trait_value_is_refused_in_one_line_naming_the_field(trait, value, message):
    pg = Playground("hi", model="mock/echo")
    before = getattr(pg, trait)
    with pytest.raises(traitlets.TraitError) as info:
        setattr(pg, trait, value)
    text = str(info.value)
    assert text.startswith(message) and "\n" not in text
    assert getattr(pg, trait) == before  # refused: nothing changed


def test_targets_get_their_defaults_and_variables_become_text():
    pg = Playground("hi", model="mock/echo")
    pg.targets = [{"model": "mock/echo"}, {"model": "mock/lorem", "params": {"max_tokens": 3, "mock_delay_ms": 1}}]
    assert pg.targets == [
        {"model": "mock/echo", "params": {}, "response_format": None, "tools": True, "kind": "auto"},
        {"model": "mock/lorem", "params": {"max_tokens": 3, "mock_delay_ms": 1}, "response_format": None,
         "tools": True, "kind": "auto"},
    ]  # fmt: skip
    assert pg.targets[0]["params"] is not pg.targets[1]["params"]
    pg.variables = {"n": 3, "items": [1, 2], "name": "Ada"}
    assert pg.variables == {"n": "3", "items": "[1, 2]", "name": "Ada"}
    with pytest.raises(traitlets.TraitError, match=r"Playground\.(base_)?messages\[0\]\.tool_calls"):
        Playground([{"role": "user", "content": "x", "tool_calls": [{"id": "1"}]}], model="mock/echo")
