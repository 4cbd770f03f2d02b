"""One way into the engine: a frozen :class:`RunSpec` becomes :class:`RunRequest` objects through :func:`plan`.

Every surface (``nbp.run``, ``%%prompt``, the Playground, the REST API, replay, the coming experiments)
describes what to run as a ``RunSpec`` and calls ``plan(spec)``, which renders the template once, resolves
each model once (the :class:`~nbplayground.core.providers.ResolvedModel` travels on the request, so the
engine does not resolve again), validates parameters once and raises every input error before anything is
sent. Nothing changes a request after planning.

Shared and per target
---------------------
A compare sends one conversation to 1-4 models, so the messages, earlier turns, variables, input, tools
(the functions), tool mode, policy and origin are shared. A :class:`TargetSpec` holds what may differ: the
model, its params (a surface merges shared params into each target, the target's own winning), the response
format, the kind (``"auto"``: the model's own) and whether it gets the tools. Tools and a response format
reach chat targets only; an image or speech target without an ``input`` reads the last user message.

Registry prompts are looked up by the surface (``core`` never imports ``storage``): it puts the saved
messages, model, params and ``prompt_ref`` into the spec, once.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, NamedTuple, cast

from nbplayground.core import errors as E
from nbplayground.core import templating
from nbplayground.core.types import KINDS, RunRequest, new_id

if TYPE_CHECKING:
    from nbplayground.core.providers import ResolvedModel

#: Every message role a template or thread may hold.
ROLES: Final[tuple[str, ...]] = ("system", "user", "assistant", "tool", "developer")
#: A compare runs at most this many targets.
MAX_TARGETS: Final = 4
TOOL_MODES: Final[tuple[str, ...]] = ("auto", "manual")
#: A target kind that means "what the model does" (chat, image, speech or transcription, from its mode).
AUTO_KIND: Final = "auto"
#: Kinds whose input is text: given none, they read the last user message.
TEXT_INPUT_KINDS: Final = ("image", "speech")

__all__ = [
    "AUTO_KIND", "MAX_TARGETS", "ROLES", "Origin", "PlannedTarget", "Planner", "Policy", "Provenance", "Rendered",
    "RunSpec", "TargetSpec", "check_roles",
    "compose", "freeze", "media_input", "plan", "schema_of", "thaw",
]  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Immutable values
# --------------------------------------------------------------------------------------------------
def freeze(value: Any) -> Any:
    """A read-only copy of JSON-like data: mappings become ``MappingProxyType``, lists and tuples tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """A plain, mutable copy of :func:`freeze`'s output (dicts and lists), for what is sent and stored."""
    if isinstance(value, MappingProxyType):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


def _mapping(value: Any, what: str, field_name: str) -> Mapping[str, Any]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        raise E.BadParameterError(f"{what} must be a dict, got {type(value).__name__}.", field=field_name)
    return cast("Mapping[str, Any]", freeze(value))


# --------------------------------------------------------------------------------------------------
# The spec
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TargetSpec:
    """One model of a run (a compare has 1-4), and what may differ between them.

    ``model`` None means the configured default model. ``kind`` is ``chat``, ``image``, ``speech``,
    ``transcription`` or ``auto`` (the model's own kind). ``tools`` says whether the spec's tools go to this
    target. ``response_format`` is a pydantic model class or a JSON schema dict.
    """

    model: str | None = None
    params: Mapping[str, Any] = field(default_factory=_empty)
    response_format: Any = None
    kind: str = "chat"
    tools: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", _mapping(self.params, "params", "params"))
        if isinstance(self.response_format, Mapping):
            object.__setattr__(self, "response_format", freeze(self.response_format))


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a run comes from: stored with it, never sent to the model."""

    surface: str = "python"
    thread_id: str | None = None
    parent_id: str | None = None
    group_id: str | None = None  # None: a compare gets a new one
    prompt_ref: str | None = None  # the registry version the template came from
    row_key: str | None = None  # DataFrame runs: the row's index value


@dataclass(frozen=True, slots=True)
class Policy:
    """How a run is carried out: retries and streaming."""

    max_attempts: int = 4
    retry_after_output: bool = False
    stream: bool = True  # False: one whole answer, no token events (batch rows)


@dataclass(frozen=True, slots=True)
class Provenance:
    """What an earlier run was made of, for a run that sends its stored messages again (replay).

    Nothing is rendered again: the spec's ``thread`` holds the stored messages and its ``input`` the stored
    input, and these are recorded as the new run's variables and template.
    """

    variables: Mapping[str, Any] = field(default_factory=_empty)
    template: Sequence[Mapping[str, Any]] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "variables", MappingProxyType(dict(self.variables or {})))
        if self.template is not None:
            object.__setattr__(self, "template", freeze(list(self.template)))


@dataclass(frozen=True, slots=True)
class RunSpec:
    """Everything a run is, before it is planned: frozen, so no surface can patch it afterwards.

    ``messages`` is the template (``{{placeholders}}`` filled from ``variables``); ``thread`` holds earlier
    turns, already rendered and sent before it (a new system message replaces the thread's). ``input`` is a
    media kind's input (text is a template too). Messages, thread and params are copied read-only;
    ``variables`` is a read-only copy of the mapping whose values are the caller's own objects.
    """

    messages: Sequence[Mapping[str, Any]] = ()
    thread: Sequence[Mapping[str, Any]] = ()
    variables: Mapping[str, Any] = field(default_factory=_empty)
    targets: Sequence[TargetSpec] = (TargetSpec(),)
    tools: Sequence[Any] = ()
    tool_mode: str = "auto"
    max_tool_rounds: int = 5
    input: Any = None
    origin: Origin = Origin()
    policy: Policy = Policy()
    provenance: Provenance | None = None

    def __post_init__(self) -> None:
        for name in ("messages", "thread"):
            value = getattr(self, name)
            if not isinstance(value, list | tuple) or not all(isinstance(m, Mapping) for m in value):
                raise E.BadParameterError(f"{name} must be a list of {{'role': ..., 'content': ...}} dicts.",
                                          field=name)  # fmt: skip
            object.__setattr__(self, name, freeze(value))
        variables = self.variables if self.variables is not None else {}
        if not isinstance(variables, Mapping):
            raise E.BadParameterError(
                f"variables must be a dict, got {type(variables).__name__}.", field="variables"
            )
        object.__setattr__(self, "variables", MappingProxyType(dict(variables)))
        targets = tuple(self.targets)
        if not all(isinstance(t, TargetSpec) for t in targets):
            raise E.BadParameterError("targets must be TargetSpec objects.", field="targets")
        object.__setattr__(self, "targets", targets)
        object.__setattr__(self, "tools", tuple(self.tools or ()))

    def template(self) -> list[dict[str, Any]]:
        """The template messages as plain dicts (a copy)."""
        return cast("list[dict[str, Any]]", thaw(self.messages))


# --------------------------------------------------------------------------------------------------
# Shared rules
# --------------------------------------------------------------------------------------------------
def check_roles(messages: Sequence[Mapping[str, Any]], where: str = "messages") -> None:
    """Raise unless every message has one of :data:`ROLES`."""
    for i, m in enumerate(messages):
        role = m.get("role")
        if role not in ROLES:
            raise E.BadParameterError(
                f"Message role must be {', '.join(ROLES[:-1])} or {ROLES[-1]}; got {role!r}.",
                field=f"{where}[{i}].role",
            )


def compose(
    text: str | None,
    *,
    system: str | None = None,
    messages: list[dict[str, Any]] | None = None,
    saved: Sequence[Mapping[str, Any]] = (),
    required: bool = True,
) -> list[dict[str, Any]]:
    """The template of a run written with keywords: ``saved`` (a registry prompt's messages), then
    ``messages``, a ``system`` message set first (replacing one), then ``text`` as the last user message.

    Raises when nothing is there and ``required``, or when ``text`` is not text or only whitespace.
    """
    out = [dict(m) for m in saved]
    if messages is not None:
        if not isinstance(messages, list) or not all(isinstance(m, Mapping) for m in messages):
            raise E.BadParameterError(
                "messages must be a list of {'role': ..., 'content': ...} dicts.", field="messages"
            )
        check_roles(messages)
        out.extend(dict(m) for m in messages)
    if system is not None:
        if out and out[0].get("role") == "system":
            out[0] = {**out[0], "content": system}
        else:
            out.insert(0, {"role": "system", "content": system})
    if text is not None:
        if not isinstance(text, str):
            raise E.BadParameterError(
                f"The prompt must be text (a str), got {type(text).__name__} {str(text)[:40]!r}; pass str(...) "
                "if you mean it.",
                field="text",
            )
        if not text.strip() and not out:
            raise E.BadParameterError(
                "The prompt is empty: write something to send, or pass messages=[...].", field="text"
            )
        out.append({"role": "user", "content": text})
    if not out and required:
        raise E.BadParameterError(
            "Nothing to run: pass a prompt text, messages=[...] or prompt='ns/slug'.", field="messages"
        )
    return out


def schema_of(response_format: Any) -> dict[str, Any] | None:
    """The JSON schema of a response format: a dict as is, a pydantic model class's schema, or None."""
    if response_format is None:
        return None
    if isinstance(response_format, MappingProxyType):
        return cast("dict[str, Any]", thaw(response_format))
    if isinstance(response_format, dict):
        return response_format
    if hasattr(response_format, "model_json_schema"):
        return cast("dict[str, Any]", response_format.model_json_schema())
    raise E.BadParameterError(
        f"response_format must be a pydantic model class or a JSON schema dict, got {type(response_format).__name__}.",
        field="response_format",
    )


def media_input(messages: Sequence[Mapping[str, Any]]) -> str:
    """What an image or speech model is given when no input is: the text of the last user message."""
    for m in reversed(messages):
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list | tuple):
                return " ".join(
                    str(p.get("text", "")) for p in content if isinstance(p, Mapping) and p.get("type") == "text"
                )
            return ""
    return ""


def _has_content(message: Mapping[str, Any]) -> bool:
    content = message.get("content")
    if isinstance(content, str):
        return bool(content.strip())
    return bool(content) or bool(message.get("tool_calls"))


def _check_sendable(messages: list[dict[str, Any]]) -> None:
    """A chat run needs at least one message with something in it."""
    if not messages:
        raise E.BadParameterError(
            "Nothing to run: pass a prompt text, messages=[...] or prompt='ns/slug'.", field="messages"
        )
    if not any(_has_content(m) for m in messages):
        raise E.BadParameterError(
            "The prompt is empty after filling its placeholders: check the variables' values (a model would "
            "get nothing to answer).",
            field="variables",
        )


def _after(thread: list[dict[str, Any]], rendered: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A conversation continued: earlier turns, then the new messages; a new system message replaces the old."""
    if not thread:
        return rendered
    new_system = [m for m in rendered if m.get("role") == "system"]
    if not new_system:
        return thread + rendered
    earlier = [m for m in thread if m.get("role") != "system"]
    return new_system[-1:] + earlier + [m for m in rendered if m.get("role") != "system"]


_said_default: list[bool] = []


def _say_default_once(model: str) -> None:
    """The first run without a model in a process says which model ran, and how to choose one."""
    if _said_default:
        return
    _said_default.append(True)
    warnings.warn(
        f"nbplayground: no model was given, so the built-in offline model {model} ran. Choose a default with "
        "nbp.configure(default_model='openai/gpt-4o-mini'), default_model in config.toml, or "
        "%config Prompt.model = '...' for %%prompt.",
        UserWarning,
        stacklevel=5,
    )


def _default_model() -> str:
    from nbplayground import config

    settings = config.settings()
    if not settings.default_model_chosen:
        _say_default_once(settings.default_model)
    return settings.default_model


# --------------------------------------------------------------------------------------------------
# plan()
# --------------------------------------------------------------------------------------------------
def _check_spec(spec: RunSpec) -> None:
    """The checks of a spec that need no rendering and no model: 1-4 targets, their kinds, the tool mode."""
    targets = spec.targets
    if not 1 <= len(targets) <= MAX_TARGETS:
        raise E.BadParameterError(f"Compare 1 to {MAX_TARGETS} models at once, got {len(targets)}.", field="models")
    for t in targets:
        if t.kind not in KINDS and t.kind != AUTO_KIND:
            raise E.BadParameterError(
                f"kind must be one of {', '.join(KINDS)} or {AUTO_KIND!r}; got {t.kind!r}.", field="kind"
            )
    if spec.tool_mode not in TOOL_MODES:
        raise E.BadParameterError(
            f"tool_mode must be 'auto' or 'manual'; got {spec.tool_mode!r}.", field="tool_mode"
        )


def plan(spec: RunSpec) -> list[RunRequest]:
    """The requests of a spec, one per target, every input error raised first (nothing is sent here).

    Renders the template once, resolves each model once and validates its parameters once; a compare gets
    one ``group_id``. Each request carries its :class:`ResolvedModel` and its split parameters.
    """
    from nbplayground.core import providers, templating
    from nbplayground.core.tools import normalize_tools

    targets = spec.targets
    _check_spec(spec)
    template = spec.template()
    check_roles(template)
    resolved: dict[str, Any] = {}  # what each placeholder took ({"cfg.prompt": ...}), never whole objects
    if spec.provenance is not None and template:
        raise E.BadParameterError(
            "A run with provenance sends its stored messages: put them in thread, not messages.", field="messages"
        )
    rendered = templating.render_messages(template, spec.variables, resolved=resolved) if template else []
    rendered = _after(cast("list[dict[str, Any]]", thaw(spec.thread)), rendered)
    chat_first = any(t.kind == "chat" for t in targets)
    if chat_first:  # before any model is resolved, as a chat run always did
        _check_sendable(rendered)
    value = spec.input
    if isinstance(value, str) and spec.provenance is None:
        value = templating.render(value, spec.variables, resolved=resolved)
    tool_schemas, functions = normalize_tools(spec.tools)
    origin, policy = spec.origin, spec.policy
    group_id = origin.group_id if origin.group_id is not None or len(targets) == 1 else new_id()
    if spec.provenance is not None:
        variables = dict(spec.provenance.variables)
        stored_template = spec.provenance.template
        template_messages = cast("list[dict[str, Any]]", thaw(stored_template)) if stored_template else None
    else:
        variables, template_messages = resolved, template or None
    requests = []
    for index, t in enumerate(targets):
        name = t.model or _default_model()
        rm = providers.resolve(name)  # an unknown model fails here, before anything is sent
        kind = providers.kind_for(rm) if t.kind == AUTO_KIND else t.kind
        if kind == "chat" and not chat_first:
            _check_sendable(rendered)
        params = cast("dict[str, Any]", thaw(t.params))
        send, options = providers.split_params(rm, params)  # a bad parameter: likewise
        chat = kind == "chat"
        response_format = t.response_format if chat else None
        schema_of(response_format)  # a response format that is no schema: likewise
        target_input = value
        if target_input is None and kind in TEXT_INPUT_KINDS:
            target_input = media_input(rendered)
        requests.append(
            RunRequest(
                model=name, messages=[dict(m) for m in rendered], params=params, variables=dict(variables),
                tools=tool_schemas if chat and t.tools else None,
                tool_functions=functions if chat and t.tools else {},
                tool_mode=cast("Any", spec.tool_mode), max_tool_rounds=spec.max_tool_rounds,
                response_format=thaw(response_format), kind=cast("Any", kind), input=target_input,
                template_messages=template_messages, prompt_ref=origin.prompt_ref, surface=origin.surface,
                thread_id=origin.thread_id, parent_id=origin.parent_id, group_id=group_id, target_index=index,
                retry_after_output=policy.retry_after_output, max_attempts=policy.max_attempts,
                row_key=origin.row_key, stream=policy.stream, resolved=rm, split=(send, options),
            )
        )  # fmt: skip
    return requests


# --------------------------------------------------------------------------------------------------
# One spec, many rows
# --------------------------------------------------------------------------------------------------
class Rendered(NamedTuple):
    """One row's rendering of a spec: its messages, its input and what each placeholder took."""

    messages: list[dict[str, Any]]
    input: Any
    variables: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PlannedTarget:
    """A target planned once: its model resolved, its kind known, its parameters split and checked."""

    model: str
    resolved: ResolvedModel
    kind: str
    params: dict[str, Any]  # plain, copied into each request
    split: tuple[dict[str, Any], dict[str, Any]]
    response_format: Any  # plain (thawed) once, shared by every row's request
    tools: bool


class Planner:
    """A spec planned once for many rows (a DataFrame batch), then rendered row by row.

    Everything that does not depend on a row's variables is done here, once: the targets, kind and tool
    mode are checked, the roles of the template, each model resolved, its parameters split and its
    response format checked, the tools normalized. :meth:`render` fills the template with one row's
    variables and :meth:`requests` makes that row's requests: the cheap step per row. Per row it gives
    what :func:`plan` gives for the same spec with that row's variables, ``row_key`` set; the rows share
    one group (``spec.origin.group_id``, or a new one for a compare), the template list and the tools.
    A spec with ``provenance`` (a replay) has no rows: plan it with :func:`plan`.
    """

    __slots__ = ("_fixed", "_functions", "_template", "_tool_schemas", "group_id", "spec", "targets")

    def __init__(self, spec: RunSpec) -> None:
        from nbplayground.core import providers
        from nbplayground.core.tools import normalize_tools

        if spec.provenance is not None:
            raise E.BadParameterError("A run with provenance is planned with plan(), not row by row.",
                                      field="provenance")  # fmt: skip
        _check_spec(spec)
        self.spec = spec
        self._template = spec.template()
        check_roles(self._template)
        self._tool_schemas, self._functions = normalize_tools(spec.tools)
        targets = []
        for t in spec.targets:
            name = t.model or _default_model()
            rm = providers.resolve(name)  # once per batch, not per row
            kind = providers.kind_for(rm) if t.kind == AUTO_KIND else t.kind
            params = cast("dict[str, Any]", thaw(t.params))
            split = providers.split_params(rm, params)
            response_format = t.response_format if kind == "chat" else None
            schema_of(response_format)
            targets.append(PlannedTarget(name, rm, kind, params, split, thaw(response_format), t.tools))
        self.targets: tuple[PlannedTarget, ...] = tuple(targets)
        origin = spec.origin
        self.group_id = origin.group_id if origin.group_id is not None or len(targets) == 1 else new_id()
        self._fixed = self._fields()

    def _fields(self) -> tuple[dict[str, Any], ...]:
        """Per target, the request fields every row shares (made once: building a request is the cost per row)."""
        spec, origin, policy = self.spec, self.spec.origin, self.spec.policy
        return tuple(
            {"model": t.model, "tools": self._tool_schemas if t.kind == "chat" and t.tools else None,
             "tool_functions": self._functions if t.kind == "chat" and t.tools else {},
             "tool_mode": spec.tool_mode, "max_tool_rounds": spec.max_tool_rounds,
             "response_format": t.response_format, "kind": t.kind, "template_messages": self._template or None,
             "prompt_ref": origin.prompt_ref, "surface": origin.surface, "thread_id": origin.thread_id,
             "parent_id": origin.parent_id, "group_id": self.group_id, "target_index": index,
             "retry_after_output": policy.retry_after_output, "max_attempts": policy.max_attempts,
             "stream": policy.stream, "resolved": t.resolved, "split": t.split}
            for index, t in enumerate(self.targets)
        )  # fmt: skip

    @property
    def tool_schemas(self) -> list[dict[str, Any]] | None:
        """The tools' JSON schemas (normalized once), or None without tools."""
        return self._tool_schemas

    def regrouped(self, group_id: str) -> Planner:
        """The same plan under another group (a batch names its group after what was planned): nothing is
        resolved or checked again."""
        other = copy.copy(self)
        other.spec = replace(self.spec, origin=replace(self.spec.origin, group_id=group_id))
        other.group_id = group_id
        other._fixed = other._fields()
        return other

    @property
    def template(self) -> list[dict[str, Any]] | None:
        """The template messages every row's requests record (one shared list), or None without any."""
        return self._template or None

    def render(self, variables: Mapping[str, Any]) -> Rendered:
        """A row's messages (after the spec's thread) and input, rendered from ``variables``.

        Raises :class:`MissingVariablesError` or :class:`TemplateError` as :func:`plan` would; nothing is sent.
        """
        resolved: dict[str, Any] = {}
        template = self._template
        messages = templating.render_messages(template, variables, resolved=resolved) if template else []
        if self.spec.thread:
            messages = _after(cast("list[dict[str, Any]]", thaw(self.spec.thread)), messages)
        value = self.spec.input
        if isinstance(value, str):
            value = templating.render(value, variables, resolved=resolved)
        return Rendered(messages, value, resolved)

    def requests(
        self, rendered: Rendered, *, row_key: str | None = None, parent_id: str | None = None
    ) -> list[RunRequest]:
        """The requests of one rendered row, one per target (a chat target with nothing to send raises);
        ``parent_id`` links this row's runs to another run (a judge's verdict to the answer it judges)."""
        out = []
        single = len(self._fixed) == 1
        for t, fixed in zip(self.targets, self._fixed, strict=True):
            if t.kind == "chat":
                _check_sendable(rendered.messages)
            target_input = rendered.input
            if target_input is None and t.kind in TEXT_INPUT_KINDS:
                target_input = media_input(rendered.messages)
            messages = rendered.messages if single else [dict(m) for m in rendered.messages]
            if parent_id is not None:
                fixed = {**fixed, "parent_id": parent_id}
            out.append(RunRequest(messages=messages, params=dict(t.params), variables=rendered.variables,
                                  input=target_input, row_key=row_key, **fixed))  # fmt: skip
        return out
