"""The Playground editor's data: messages, targets and variables as the traits hold them, the turns a run
adds to the conversation, and the :class:`RunSpec` the editor describes. Plain functions, no widget state."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from nbplayground.core import errors as E
from nbplayground.core.plan import ROLES, Origin, RunSpec, TargetSpec, schema_of
from nbplayground.core.types import Event, RunResult

#: Media up to this size travels in the ``results`` trait (base64); larger media is shown by reference.
MAX_INLINE_MEDIA = 2_000_000
#: The message keys the editor keeps (what a template and the JSON round trip carry).
_MESSAGE_KEYS = ("role", "content", "tool_call_id", "tool_calls", "name")


def target_entry(spec: Any, params: dict[str, Any] | None) -> dict[str, Any]:
    """A ``targets`` entry from a model name or ``{"model", "params", "response_format", "tools"}``."""
    if isinstance(spec, str):
        spec = {"model": spec}
    if not isinstance(spec, dict) or not spec.get("model"):
        raise E.BadParameterError(
            f"A target is a model name or {{'model': ..., 'params': ...}}, got {spec!r}."
        )
    rf = spec.get("response_format")
    if rf is not None and not isinstance(rf, str):
        rf = json.dumps(schema_of(rf))
    return {
        "model": spec["model"],
        "params": {**(params or {}), **(spec.get("params") or {})},
        "response_format": rf,
        "tools": bool(spec.get("tools", True)),
        "kind": spec.get("kind", "auto"),
    }


def editor_messages(messages: Any, system: str | None) -> list[dict[str, Any]]:
    """The ``messages`` trait from a string, a message list or nothing (one empty user turn)."""
    if messages is None:
        out: list[dict[str, Any]] = [{"role": "user", "content": ""}]
    elif isinstance(messages, str):
        out = [{"role": "user", "content": messages}]
    else:
        out = [dict(m) for m in messages]
    if system is not None:
        out = [{"role": "system", "content": system}, *[m for m in out if m.get("role") != "system"]]
    for m in out:
        if m.get("role") not in ROLES:
            raise E.BadParameterError(f"A message role is one of {', '.join(ROLES)}, got {m.get('role')!r}.")
        m["content"] = "" if m.get("content") is None else m["content"]
    return out


def variable_value(raw: Any) -> Any:
    """Editor values are text; text that parses as a JSON object or array is used as JSON."""
    if isinstance(raw, str) and raw.strip()[:1] in ("{", "["):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def placeholder_roots(messages: list[dict[str, Any]]) -> list[str]:
    """The variable names the system and user messages use, in order of first use."""
    from nbplayground.core.templating import placeholders, root

    names: dict[str, None] = {}
    for m in messages:
        if m.get("role") in ("system", "user") and isinstance(m.get("content"), str):
            for path in placeholders(m["content"]):
                names.setdefault(root(path), None)
    return list(names)


def message_text(m: dict[str, Any]) -> str:
    """A message's content as stripped text ('' for none)."""
    return str(m.get("content") or "").strip()


def message_key(m: dict[str, Any]) -> str:
    """A comparable form of a message as the editor holds it (what survives the JSON round trip)."""
    keep = {k: v for k, v in m.items() if k in _MESSAGE_KEYS}
    return json.dumps(keep, sort_keys=True, default=str)


def template(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The editor's messages with only the keys a template carries."""
    return [{k: v for k, v in m.items() if k in _MESSAGE_KEYS} for m in messages]


def prompt_messages(
    messages: list[dict[str, Any]], base_count: int, first_answer: str | None
) -> list[dict[str, Any]]:
    """The prompt as written: the editor's messages before the first answer a run appended.

    ``base_count`` is how many messages the editor held when the conversation began, ``first_answer`` the
    :func:`message_key` of the answer the first run appended (None before any). Messages edited after the
    run are kept as edited. The answer is found where the run put it (even if its text was edited), else
    wherever it moved; when it is gone, the editor is taken as it is.
    """
    msgs = template(messages)
    if first_answer is None:
        return msgs
    keys = [message_key(m) for m in msgs]
    n = base_count
    if n < len(msgs) and (keys[n] == first_answer or msgs[n].get("role") == "assistant"):
        return msgs[:n]
    if first_answer in keys:
        return msgs[: keys.index(first_answer)]
    return msgs


def conversation(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The whole editor, without trailing empty slots (an unanswered tool call, an unwritten user turn)."""
    msgs = template(messages)
    while msgs and msgs[-1]["role"] in ("user", "tool") and not message_text(msgs[-1]):
        msgs.pop()
    return msgs


def to_send(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The editor's messages as the run's template: every tool call answered, an empty trailing user turn
    left out (a slot not yet filled), and a conversation that ends where a model can go on."""
    msgs = template(messages)
    for m in msgs:
        if m["role"] == "tool" and not str(m.get("content") or "").strip():
            raise E.BadParameterError(
                f"Answer the tool call {m.get('tool_call_id')!r}: type its result in the tool message."
            )
    while msgs and msgs[-1]["role"] == "user" and not str(msgs[-1].get("content") or "").strip():
        msgs.pop()
    if not msgs:
        raise E.BadParameterError("Nothing to run: write a message first.")
    if msgs[-1]["role"] == "assistant" and not msgs[-1].get("tool_calls"):
        raise E.BadParameterError("Add a user message to continue the conversation, or use Clear & Run.")
    return msgs


def run_spec(
    messages: list[dict[str, Any]],
    variables: dict[str, Any],
    targets: list[dict[str, Any]],
    tools: list[Callable[..., Any]],
    tool_mode: str,
    thread_id: str,
    prompt_ref: str,
) -> RunSpec:
    """The run the editor describes: its messages (system and user ones are templates), variables, targets."""
    sent = to_send(messages)
    specs = []
    for i, target in enumerate(targets):
        rf = target.get("response_format")
        if isinstance(rf, str) and rf.strip():
            try:
                rf = json.loads(rf)
            except ValueError:
                raise E.BadParameterError(f"Target {i + 1}: response_format is not valid JSON.") from None
        else:
            rf = None
        params = {k: v for k, v in (target.get("params") or {}).items() if v not in (None, "")}
        specs.append(TargetSpec(target.get("model") or None, params, rf, target.get("kind") or "auto",
                                bool(target.get("tools", True))))  # fmt: skip
    return RunSpec(
        messages=sent, variables={k: variable_value(v) for k, v in variables.items() if str(v) != ""},
        targets=specs, tools=tools, tool_mode=tool_mode,
        origin=Origin(surface="widget", thread_id=thread_id, prompt_ref=prompt_ref or None),
    )  # fmt: skip


def result_state(r: RunResult) -> dict[str, Any]:
    """A finished run as the ``outputs`` trait holds it (small media inline, no messages)."""
    out = r.to_dict()
    out["media"] = [m.to_dict(include_data=len(m.data) <= MAX_INLINE_MEDIA) for m in r.media]
    out.pop("messages", None)  # the editor already shows the conversation
    return out


def event_dict(ev: Event) -> dict[str, Any]:
    """An event as the widget's stream messages carry it."""
    out = ev.to_dict()
    result = out.get("result")
    if isinstance(result, dict):
        result.pop("messages", None)  # sent once in the traits, not in every done event
    return out


def turn_messages(r: RunResult, tool_mode: str) -> list[dict[str, Any]]:
    """The messages a finished run adds to the conversation: its answer, and slots for manual tool results."""
    from nbplayground.storage.threads import assistant_message

    msg = assistant_message(r)
    if r.data is not None and not r.text:
        msg["content"] = json.dumps(r.data)
    out = [{k: v for k, v in msg.items() if v is not None or k == "content"}]
    out[0]["content"] = out[0].get("content") or ""
    for call in out[0].get("tool_calls") or []:
        out.append({"role": "tool", "tool_call_id": call["id"], "content": ""})
    return out


def model_choices() -> list[dict[str, Any]]:
    """Models for the picker: mock, custom and known provider models, with key status (no litellm import)."""
    from nbplayground.core import catalog

    try:
        found = catalog.providers()
    except Exception:
        return []
    return [{"model": m, "provider": p.provider, "key_status": p.key_status} for p in found for m in p.models[:200]]
