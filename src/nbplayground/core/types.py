"""The data shapes every surface shares: requests, provider chunks, events and results.

These are plain dataclasses (no pydantic) so that importing them is cheap. Everything that
crosses a process boundary (widget comm, SSE, history) goes through ``to_dict()``.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from nbplayground.core.providers import ResolvedModel

Status = Literal["ok", "error", "stopped"]
Kind = Literal["chat", "image", "speech", "transcription"]
ToolMode = Literal["auto", "manual"]
EventType = Literal["start", "delta", "tool_call", "tool_result", "usage", "retry", "done", "error"]

#: Every event type, in the order a run can emit them; the SSE API names its events exactly these.
EVENT_TYPES: tuple[str, ...] = ("start", "delta", "tool_call", "tool_result", "usage", "retry", "done", "error")

KINDS: tuple[str, ...] = ("chat", "image", "speech", "transcription")


def new_id() -> str:
    """A sortable-enough unique run id (uuid4 hex, 32 chars)."""
    return uuid.uuid4().hex


def utcnow() -> datetime:
    """Timezone-aware now in UTC."""
    return datetime.now(UTC)


@dataclass(slots=True)
class ToolCall:
    """One tool call the model asked for, and (in auto mode) what the tool returned."""

    id: str
    name: str
    arguments: str = ""
    result: Any = None
    error: str | None = None

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as a dict; raises ``ValueError`` when the model sent invalid JSON."""
        import json

        if not self.arguments:
            return {}
        value = json.loads(self.arguments)
        if not isinstance(value, dict):
            raise ValueError(f"tool arguments must be a JSON object, got {type(value).__name__}")
        return value

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id,
            "name": self.name,
            "arguments": self.arguments,
            "result": _jsonable(self.result),
            "error": self.error,
        }


@dataclass(slots=True)
class Media:
    """A generated image or sound, or the audio given to a transcription.

    ``data`` holds the bytes; ``path`` is set once the store has written them to the media folder.
    """

    mime: str
    data: bytes = b""
    params: dict[str, Any] = field(default_factory=dict)
    revised_prompt: str | None = None
    path: str | None = None

    def to_dict(self, include_data: bool = False) -> dict[str, Any]:
        """JSON-ready form; bytes only on request (base64)."""
        out: dict[str, Any] = {
            "mime": self.mime,
            "size": len(self.data),
            "params": self.params,
            "revised_prompt": self.revised_prompt,
            "path": self.path,
        }
        if include_data:
            out["data_b64"] = base64.b64encode(self.data).decode("ascii")
        return out

    def __repr__(self) -> str:
        where = f", path={self.path!r}" if self.path else ""
        return f"Media({self.mime}, {len(self.data)} bytes{where})"

    def _repr_png_(self) -> bytes | None:
        return self.data if self.mime == "image/png" and self.data else None

    def _repr_html_(self) -> str:
        from nbplayground.core import render

        return render.page(render.media(self))


@dataclass(slots=True)
class Usage:
    """Token counts reported by the provider (None when it reported none)."""

    tokens_in: int | None = None
    tokens_out: int | None = None


@dataclass(slots=True)
class ToolCallDelta:
    """A piece of a streamed tool call; pieces with the same ``index`` belong together."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(slots=True)
class ProviderChunk:
    """What a provider stream yields: any mix of text, tool-call pieces, usage and a finish reason."""

    text: str = ""
    tool_calls: list[ToolCallDelta] | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    reasoning: str = ""  # the model's reasoning (reasoning_content, thinking), shown apart from the answer


@dataclass(slots=True)
class ProviderCall:
    """A fully resolved call handed to a provider transport. Holds secrets: never stored or logged."""

    model: str  # the model name the provider understands (no nbplayground alias)
    provider: str  # "mock", "openai", "anthropic", ...
    messages: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)
    tools: list[dict[str, Any]] | None = None
    response_format: dict[str, Any] | None = None  # a JSON schema (already converted from pydantic)
    kind: Kind = "chat"
    input: Any = None  # text for speech, bytes/path for transcription
    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout: float | None = None  # seconds without progress before the call fails
    total_timeout: float | None = None  # seconds for the whole call, if bounded
    options: dict[str, Any] = field(default_factory=dict, repr=False)  # api_version, organization: never stored
    litellm_model: str | None = None  # "provider/model" string for litellm
    transport: str = "auto"  # "mock" | "native" | "litellm"
    stream: bool = True  # False: ask for one whole answer (batch runs)

    def __repr__(self) -> str:  # never show the key
        return f"ProviderCall(model={self.model!r}, provider={self.provider!r}, kind={self.kind!r})"


@dataclass(slots=True)
class MediaOutput:
    """What a media provider returns for image / speech / transcription kinds."""

    media: Media | None = None
    text: str = ""
    usage: Usage | None = None


@dataclass(slots=True)
class Target:
    """One model to run (a compare has 1-4), with its own parameters."""

    model: str
    params: dict[str, Any] = field(default_factory=dict)
    index: int = 0


class Limiter(Protocol):
    """A concurrency gate every attempt passes through (DataFrame runs share an AIMD limiter)."""

    async def acquire(self) -> None:
        """Wait for a slot."""

    def release(self, ok: bool, rate_limited: bool = False) -> None:
        """Give the slot back; ``rate_limited`` when the provider answered 429."""


@dataclass(slots=True)
class RunRequest:
    """Everything needed to run one target: what the template became, and where it came from."""

    model: str
    messages: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    tools: list[dict[str, Any]] | None = None
    tool_functions: dict[str, Any] = field(default_factory=dict, repr=False)
    tool_mode: ToolMode = "auto"
    max_tool_rounds: int = 5
    response_format: Any = None  # pydantic model class or JSON schema dict
    kind: Kind = "chat"
    input: Any = None
    template_messages: list[dict[str, Any]] | None = None
    prompt_ref: str | None = None
    surface: str = "python"
    thread_id: str | None = None
    parent_id: str | None = None
    group_id: str | None = None
    target_index: int = 0
    retry_after_output: bool = False
    max_attempts: int = 4
    run_id: str = field(default_factory=new_id)
    row_key: str | None = None  # DataFrame runs: the row's index value
    stream: bool = True  # False for batch rows: one whole answer per request, no token events
    #: the model, resolved once by ``plan()`` (or once for a whole batch); None: the engine resolves it
    resolved: ResolvedModel | None = field(default=None, repr=False)
    #: ``plan()``'s split of ``params``: (what is sent and stored, per-call options never stored)
    split: tuple[dict[str, Any], dict[str, Any]] | None = field(default=None, repr=False)
    limiter: Limiter | None = field(default=None, repr=False)  # DataFrame runs: shared AIMD limiter


@dataclass(slots=True)
class RunResult:
    """The outcome of one run: what came back, what it cost, and how it ended."""

    id: str
    model: str
    status: Status = "ok"
    text: str = ""
    error: str | None = None
    error_type: str | None = None
    error_status: int | None = None  # the provider's HTTP status when the error came from one
    error_detail: str | None = None  # debugging only, never in the message (an unreadable body's start)
    data: Any = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    media: list[Media] = field(default_factory=list)
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    finish_reason: str | None = None
    reasoning: str | None = None  # the model's reasoning (reasoning_content, thinking), apart from its answer
    tokens_estimated: bool = False  # the provider reported no usage: tokens were counted here
    provider: str | None = None
    kind: Kind = "chat"
    surface: str = "python"
    messages: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    template: dict[str, Any] | None = None  # template messages, tools, response_format, tool_mode, input
    prompt_ref: str | None = None
    thread_id: str | None = None
    parent_id: str | None = None
    group_id: str | None = None
    target_index: int = 0
    attempts: int = 1
    row_key: str | None = None
    created_at: datetime = field(default_factory=utcnow)

    @property
    def ok(self) -> bool:
        """True when the run finished normally."""
        return self.status == "ok"

    @property
    def image(self) -> Media | None:
        """The first image produced, if any."""
        return next((m for m in self.media if m.mime.startswith("image/")), None)

    @property
    def audio(self) -> Media | None:
        """The first audio produced, if any."""
        return next((m for m in self.media if m.mime.startswith("audio/")), None)

    def to_dict(self, include_media_data: bool = False) -> dict[str, Any]:
        """JSON-ready form, the same shape the widget comm and SSE use."""
        out = {k: getattr(self, k) for k in _RESULT_SCALARS}
        out["created_at"] = self.created_at.isoformat()
        out["data"] = _jsonable(self.data)
        out["tool_calls"] = [t.to_dict() for t in self.tool_calls]
        out["media"] = [m.to_dict(include_media_data) for m in self.media]
        out["messages"] = self.messages
        out["params"] = self.params
        out["variables"] = _jsonable(self.variables)
        out["template"] = self.template
        return out

    def __repr__(self) -> str:
        head = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        extra = f", error={self.error!r}" if self.error else ""
        return (
            f"RunResult(id={self.id[:8]}, model={self.model!r}, status={self.status!r}, text={head!r}{extra})"
        )

    def __str__(self) -> str:
        return self.text if self.status == "ok" or self.text else f"[{self.status}] {self.error}"

    def _repr_html_(self) -> str:
        """Sanitized HTML (model text is untrusted): the same output as ``%%prompt``."""
        from nbplayground.core import display

        return str(display.bundle(self)[0]["text/html"])


_RESULT_SCALARS = (
    "id", "model", "status", "text", "error", "error_type", "error_status", "error_detail", "tokens_in",
    "tokens_out", "tokens_estimated", "cost_usd", "latency_ms", "ttft_ms", "finish_reason", "reasoning", "provider",
    "kind", "surface", "prompt_ref", "thread_id", "parent_id", "group_id", "target_index", "attempts", "row_key",
)  # fmt: skip


@dataclass(slots=True)
class Event:
    """One streaming event. ``target`` is the index of the model in a compare (0 for single runs).

    The vocabulary every surface shares (kernel output, widget comm, SSE): ``start`` (``model``), ``delta``
    (``text``), ``tool_call`` / ``tool_result`` (``tool_call``), ``usage``, ``retry`` (``attempt`` about to
    begin, ``reason`` = the error class, ``wait`` seconds; the current tool round's partial text is void),
    ``done`` (``result``) and ``error`` (``error``, ``result``; a ``done`` follows).
    """

    type: EventType
    target: int = 0
    run_id: str = ""
    text: str = ""
    tool_call: ToolCall | None = None
    usage: Usage | None = None
    result: RunResult | None = None
    error: str | None = None
    model: str = ""
    attempt: int = 0
    reason: str = ""
    wait: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the widget comm and SSE."""
        out: dict[str, Any] = {"type": self.type, "target": self.target, "run_id": self.run_id}
        kind = self.type
        if kind == "delta":
            out["text"] = self.text
        elif kind == "start":
            out["model"] = self.model
        elif kind in ("tool_call", "tool_result") and self.tool_call is not None:
            out["tool_call"] = self.tool_call.to_dict()
        elif kind == "usage" and self.usage is not None:
            out["usage"] = asdict(self.usage)
        elif kind == "retry":
            out["attempt"], out["reason"], out["wait"] = self.attempt, self.reason, self.wait
        elif kind == "done" and self.result is not None:
            out["result"] = self.result.to_dict()
        elif kind == "error":
            out["error"] = self.error
            if self.result is not None:
                out["result"] = self.result.to_dict()
        return out


def _jsonable(value: Any) -> Any:
    """Best-effort conversion to JSON-compatible values (pydantic models, dataclasses, bytes...)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, bytes):
        return {"bytes": len(value)}
    if hasattr(value, "to_dict") and callable(value.to_dict):
        try:
            return _jsonable(value.to_dict())
        except Exception:
            pass
    if isinstance(value, datetime):
        return value.isoformat()
    return repr(value)


jsonable = _jsonable
