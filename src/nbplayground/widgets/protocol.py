"""The Playground widget's protocol, defined once: traits, stream events, results, messages and commands.

Everything the kernel and the front end exchange is a model here (pydantic v2). From it come the JSON Schema
(:func:`json_schema`), the TypeScript types of the front end (``js/lib/protocol.ts``, written by
``python -m nbplayground.widgets.protocol --ts``) and the checks of the widget's traits (:func:`check_trait`).
``docs/widget-protocol.md`` says what each part is for.

Models forbid unknown keys, so a field added on one side and not here fails the protocol tests instead of
drifting. Target parameters are open (providers take more than the five the editor shows).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.json_schema import JsonSchemaMode

from nbplayground.core.plan import MAX_TARGETS
from nbplayground.core.types import EventType, Kind, Status, ToolMode

#: The roles of ``core.plan.ROLES`` (a test keeps the two equal).
Role = Literal["system", "user", "assistant", "tool", "developer"]
#: ``auto``: the kind the model implies (``mock/image``, ``openai/tts-1``...).
TargetKind = Literal["auto", "chat", "image", "speech", "transcription"]
PlaygroundStatus = Literal["idle", "running", "stopping"]
HistoryScope = Literal["widget", "all"]
KeyStatus = Literal["set", "missing", "not needed"]
ResultStatus = Status

ROLES: tuple[str, ...] = get_args(Role)
EVENT_TYPES: tuple[str, ...] = get_args(EventType)

#: Named literal types: the TypeScript file exports each under this name and uses it wherever it occurs.
ALIASES: dict[str, Any] = {
    "Role": Role, "EventType": EventType, "ResultStatus": ResultStatus, "ResultKind": Kind,
    "TargetKind": TargetKind, "ToolMode": ToolMode, "PlaygroundStatus": PlaygroundStatus,
    "HistoryScope": HistoryScope, "KeyStatus": KeyStatus,
}  # fmt: skip


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def _absent(description: str | None = None) -> Any:
    """An optional key: absent, or a value of the declared type (never null)."""
    return Field(default=None, description=description, json_schema_extra=_no_default)


# -- messages and targets (the editor) ----------------------------------------------------------------
class FunctionCall(_Closed):
    """The function an assistant message calls."""

    name: str
    arguments: str = Field(description="JSON text, as the model wrote it.")


class ToolCallSpec(_Closed):
    """A tool call inside an assistant message (OpenAI chat format)."""

    id: str
    type: Literal["function"]
    function: FunctionCall


class Message(_Closed):
    """One message of the editor."""

    role: Role
    content: str
    tool_call_id: str = _absent("A tool message: the call it answers.")
    tool_calls: list[ToolCallSpec] = _absent("An assistant message's calls.")
    name: str = _absent()


class TargetParams(BaseModel):
    """Sampling parameters of a target; other keys go to the provider as they are."""

    model_config = ConfigDict(extra="allow")

    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: list[str] | str | None = None
    seed: int | None = None


class Target(_Closed):
    """One model of a run (a compare has up to ``MAX_TARGETS``); the kernel fills in what is left out."""

    # as the front end receives it (the "serialization" schema), every field is there
    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)

    model: str = Field(description="`provider/model` or an alias; empty while being typed.")
    params: TargetParams = Field(default_factory=TargetParams)
    response_format: str | None = Field(default=None, description="JSON Schema text; null: free text.")
    tools: bool = Field(default=True, description="Pass the playground's tools to this target.")
    kind: TargetKind = "auto"


class ModelChoice(_Closed):
    """A model offered by the picker, with its key status (never the key)."""

    model: str
    provider: str
    key_status: KeyStatus


# -- results and events (the engine's, as the widget receives them) -----------------------------------
class ToolCallInfo(_Closed):
    """``ToolCall.to_dict()``."""

    id: str
    name: str
    arguments: str
    result: Any = Field(description="What the tool returned (auto mode), as JSON.")
    error: str | None


class MediaInfo(_Closed):
    """``Media.to_dict()``; ``data_b64`` only when the bytes travel with it."""

    mime: str
    size: int
    params: dict[str, Any]
    revised_prompt: str | None
    path: str | None
    data_b64: str = _absent()


class RunResult(_Closed):
    """``RunResult.to_dict()``; the widget leaves out ``messages`` (the editor shows them)."""

    id: str
    model: str
    status: ResultStatus
    text: str
    error: str | None
    error_type: str | None
    error_status: int | None
    error_detail: str | None
    tokens_in: int | None
    tokens_out: int | None
    tokens_estimated: bool
    cost_usd: float | None
    latency_ms: float | None
    ttft_ms: float | None
    finish_reason: str | None
    reasoning: str | None
    provider: str | None
    kind: Kind
    surface: str
    prompt_ref: str | None
    thread_id: str | None
    parent_id: str | None
    group_id: str | None
    target_index: int
    attempts: int
    row_key: str | None
    created_at: str = Field(description="ISO 8601, UTC.")
    data: Any = Field(description="The parsed structured output, or null.")
    tool_calls: list[ToolCallInfo]
    media: list[MediaInfo]
    params: dict[str, Any]
    variables: dict[str, Any]
    template: dict[str, Any] | None
    messages: list[dict[str, Any]] = _absent("The messages sent (the widget leaves them out).")


class TokenUsage(_Closed):
    """Token counts a provider reported for one tool round."""

    tokens_in: int | None
    tokens_out: int | None


class _Event(_Closed):
    type: EventType
    target: int = Field(description="The target's index (0 for a single run).")
    run_id: str


class StartEvent(_Event):
    """A target's run began."""

    type: Literal["start"]
    model: str


class DeltaEvent(_Event):
    """More answer text (consecutive deltas of a target may arrive merged)."""

    type: Literal["delta"]
    text: str


class ToolEvent(_Event):
    """The model asked for a tool (``tool_call``), or the tool answered (``tool_result``)."""

    type: Literal["tool_call", "tool_result"]
    tool_call: ToolCallInfo


class UsageEvent(_Event):
    """Token usage of the current tool round."""

    type: Literal["usage"]
    usage: TokenUsage


class RetryEvent(_Event):
    """An attempt failed and another begins after ``wait``; the current tool round's partial text is void."""

    type: Literal["retry"]
    attempt: int = Field(ge=2, description="The attempt about to start.")
    reason: str = Field(description="The error's class name, e.g. RateLimitError.")
    wait: float = Field(ge=0, description="Seconds before the attempt.")


class DoneEvent(_Event):
    """The target ended (always the last event of a target)."""

    type: Literal["done"]
    result: RunResult


class ErrorEvent(_Event):
    """The target failed; a ``done`` with the same result follows."""

    type: Literal["error"]
    error: str
    result: RunResult = _absent()


StreamEvent = Annotated[
    StartEvent | DeltaEvent | ToolEvent | UsageEvent | RetryEvent | DoneEvent | ErrorEvent,
    Field(discriminator="type"),
]


# -- the history panel --------------------------------------------------------------------------------
class HistoryItem(_Closed):
    """One stored run in the history panel (its text cut to 200 characters)."""

    id: str
    group_id: str | None
    created_at: str
    model: str
    status: ResultStatus
    text: str
    tokens_in: float | None
    tokens_out: float | None
    cost_usd: float | None
    latency_ms: float | None


class HistoryPage(_Closed):
    """A page of the history panel."""

    scope: HistoryScope
    offset: int = Field(ge=0)
    total: int = Field(ge=0)
    items: list[HistoryItem]


# -- traits (kernel <-> front end) ---------------------------------------------------------------------
class Traits(_Closed):
    """The widget's synced state; a view re-rendered later, or a saved notebook, needs nothing else."""

    messages: list[Message]
    base_messages: list[Message] = Field(description="The editor's messages when the conversation began.")
    variables: dict[str, str] = Field(description="Values as typed; text that parses as JSON is used as JSON.")
    variable_names: list[str] = Field(description="Root names of the messages' placeholders, in order.")
    missing: list[str]
    targets: list[Target] = Field(min_length=1, max_length=MAX_TARGETS)
    models: list[ModelChoice]
    tool_names: list[str]
    tool_mode: ToolMode
    status: PlaygroundStatus
    error: str = Field(description="The last validation error; empty when none.")
    outputs: list[RunResult | None] = Field(description="Per target, the last finished run.")
    previous: list[str | None] = Field(description="Per target, the text of the run before (for the diff).")
    history: HistoryPage
    prompt_ref: str
    prompt_labels: list[str]


# -- kernel -> front end (widget.send) -----------------------------------------------------------------
class RunTarget(_Closed):
    """A target of a run that began."""

    index: int
    model: str
    run_id: str


class RunStartedMsg(_Closed):
    """A run began."""

    type: Literal["run_started"]
    run: int = Field(description="The kernel's request number.")
    targets: list[RunTarget]


class EventsMsg(_Closed):
    """A batch of stream events (sent every ~50 ms while streaming)."""

    type: Literal["events"]
    run: int
    events: list[StreamEvent]


class SnapshotMsg(_Closed):
    """The answer to ``ready`` during a run: each target's text so far."""

    type: Literal["snapshot"]
    run: int
    texts: list[str]


class RunFinishedMsg(_Closed):
    """Every target ended; the ``outputs``, ``messages`` and ``history`` traits are already updated."""

    type: Literal["run_finished"]
    run: int


class SavedMsg(_Closed):
    """A ``save_version`` command succeeded."""

    type: Literal["saved"]
    ref: str


class ErrorMsg(_Closed):
    """A command failed (the message is also in the ``error`` trait)."""

    type: Literal["error"]
    message: str


KernelMsg = Annotated[
    RunStartedMsg | EventsMsg | SnapshotMsg | RunFinishedMsg | SavedMsg | ErrorMsg, Field(discriminator="type")
]


# -- front end -> kernel (model.send) ------------------------------------------------------------------
class ReadyCommand(_Closed):
    """This view can receive stream messages."""

    type: Literal["ready"]


class RunCommand(_Closed):
    """Run ``messages`` on every target (``clear_and_run``: drop the conversation first)."""

    type: Literal["run", "clear_and_run"]


class StopCommand(_Closed):
    """Stop every target."""

    type: Literal["stop"]


class HistoryCommand(_Closed):
    """Refresh the ``history`` trait."""

    type: Literal["history"]
    scope: HistoryScope
    offset: int = Field(ge=0)


class RestoreCommand(_Closed):
    """Load a stored run (and its compare group) into the editor."""

    type: Literal["restore"]
    run_id: str


class SaveVersionCommand(_Closed):
    """Save the prompt (or the whole conversation) to the registry."""

    type: Literal["save_version"]
    name: str
    labels: list[str]
    conversation: bool


class LoadVersionCommand(_Closed):
    """Load a registry version into the editor."""

    type: Literal["load_version"]
    ref: str


Command = Annotated[
    ReadyCommand | RunCommand | StopCommand | HistoryCommand | RestoreCommand | SaveVersionCommand
    | LoadVersionCommand,
    Field(discriminator="type"),
]

#: The protocol's named types, in the order the JSON Schema and the TypeScript file give them.
TYPES: dict[str, Any] = {
    "Message": Message, "Target": Target, "ModelChoice": ModelChoice, "ToolCallInfo": ToolCallInfo,
    "MediaInfo": MediaInfo, "RunResult": RunResult, "StreamEvent": StreamEvent, "HistoryItem": HistoryItem,
    "HistoryPage": HistoryPage, "Traits": Traits, "KernelMsg": KernelMsg, "Command": Command,
}  # fmt: skip


@cache
def adapter(name: str) -> TypeAdapter[Any]:
    """The validator of a named protocol type (see :data:`TYPES`)."""
    return TypeAdapter(TYPES[name])


def json_schema(mode: JsonSchemaMode = "validation") -> dict[str, Any]:
    """The JSON Schema of the whole protocol: every named type under ``$defs``.

    ``validation``: what the kernel accepts; ``serialization``: what the front end receives (defaults filled).
    """
    keyed, defs = TypeAdapter.json_schemas([(name, mode, adapter(name)) for name in TYPES])
    out: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "nbplayground widget protocol",
        "$defs": dict(defs.get("$defs", {})),
    }
    for name in TYPES:  # unions have no def of their own: name them too
        schema = keyed[(name, mode)]
        if schema.get("$ref") != f"#/$defs/{name}":
            out["$defs"][name] = schema
    return out


def validate(name: str, value: Any) -> None:
    """Check ``value`` against the named protocol type; raises ``ValueError`` with a one-line message."""
    try:
        adapter(name).validate_python(value, strict=True)
    except ValidationError as exc:
        raise ValueError(_one_line(name, exc)) from None


@cache
def _trait_adapter(trait: str) -> TypeAdapter[Any]:
    field = Traits.model_fields[trait]
    # pydantic's own stubs differ between releases on what an annotation may be: it is a type form here
    annotation: Any = field.annotation
    return TypeAdapter(Annotated[annotation, *field.metadata] if field.metadata else annotation)


def check_trait(trait: str, value: Any) -> Any:
    """Validate a trait's new value; returns the value to keep (targets get their defaults filled in).

    Raises ``ValueError`` with one line naming the field, e.g. ``messages[0].role: ...``.
    """
    if trait == "variables" and isinstance(value, dict):
        value = {k: v if isinstance(v, str) else _json_text(trait, k, v) for k, v in value.items()}
    try:
        _trait_adapter(trait).validate_python(value, strict=True)
    except ValidationError as exc:
        raise ValueError(_one_line(trait, exc)) from None
    if trait == "targets":
        value = [{**tg, **{k: v for k, v in _target_defaults().items() if k not in tg}} for tg in value]
    return value


def _target_defaults() -> dict[str, Any]:
    """What a target left out means (the defaults of :class:`Target`), as fresh values."""
    return {"params": {}, "response_format": None, "tools": True, "kind": "auto"}


def _json_text(trait: str, key: Any, value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"{trait}.{key}: a variable's value is text or JSON-serializable, got {type(value).__name__}."
        ) from None


def _one_line(name: str, exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    path = name + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
    got = "" if first["type"] in ("missing", "too_long", "too_short") else f", got {_short(first['input'])}"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{path}: {first['msg']}{got}{more}."


def _short(value: Any) -> str:
    text = repr(value).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


if __name__ == "__main__":  # pragma: no cover - exercised through the tests' calls of the same functions
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--ts", action="store_true", help="write js/lib/protocol.ts")
    group.add_argument("--schema", action="store_true", help="print the JSON Schema")
    parser.add_argument("--out", help="where to write the TypeScript (default: js/lib/protocol.ts)")
    args = parser.parse_args()
    if args.schema:
        print(json.dumps(json_schema(), indent=2))
    else:
        from nbplayground.widgets import _protocol_ts

        print(_protocol_ts.write(args.out))
