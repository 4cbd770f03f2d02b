"""The Python surface: ``nbp.run``, ``stream``, ``compare``, ``replay``, history and prompts.

Thin by design: its keyword arguments become a :class:`~nbplayground.core.plan.RunSpec` (a registry prompt
is looked up here, once), ``core.plan`` turns that into requests, the engine runs them and ``on_done`` hands
finished runs to the history store. Other surfaces build their own ``RunSpec`` with their ``surface`` name.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from nbplayground.core import errors as E
from nbplayground.core.engine import OnDone, RunHandle
from nbplayground.core.plan import Origin, Policy, Provenance, RunSpec, TargetSpec, compose, plan
from nbplayground.core.types import RunRequest, RunResult, Target

if TYPE_CHECKING:
    from nbplayground.storage.registry import Prompt


def _record(result: RunResult) -> None:
    from nbplayground.storage import history

    history.record(result)


def _saved_prompt(prompt: str | Prompt | None) -> Prompt | None:
    """A registry prompt: looked up by reference, or the one a surface looked up already."""
    if prompt is None or not isinstance(prompt, str):
        return prompt
    from nbplayground.storage import registry

    return registry.get(prompt)


def _targets(
    model: Any, models: Iterable[Any] | None, params: dict[str, Any], response_format: Any, kind: str
) -> tuple[TargetSpec, ...]:
    specs = list(models) if models is not None else [model]
    targets = []
    for spec in specs:
        if isinstance(spec, Target | TargetSpec):
            name, own = spec.model, spec.params
        elif isinstance(spec, Mapping):
            if "model" not in spec:
                raise E.BadParameterError(f"A target dict needs 'model': {dict(spec)!r}", field="models")
            name, own = spec["model"], spec.get("params") or {}
        elif spec is None or isinstance(spec, str):
            name, own = spec, {}
        else:
            raise E.BadParameterError(
                f"A model is a name or {{'model': ..., 'params': ...}}, got {spec!r}.", field="models"
            )
        targets.append(TargetSpec(name or None, {**params, **own}, response_format, kind))
    return tuple(targets)


def build_spec(
    text: str | None = None,
    *,
    model: str | None = None,
    models: Iterable[Any] | None = None,
    variables: Mapping[str, Any] | None = None,
    system: str | None = None,
    params: dict[str, Any] | None = None,
    messages: list[dict[str, Any]] | None = None,
    prompt: str | Prompt | None = None,
    tools: Iterable[Any] | None = None,
    tool_mode: str = "auto",
    max_tool_rounds: int = 5,
    response_format: Any = None,
    kind: str = "chat",
    input: Any = None,
    surface: str = "python",
    thread_id: str | None = None,
    parent_id: str | None = None,
    group_id: str | None = None,
    retry_after_output: bool = False,
    max_attempts: int = 4,
    thread: list[dict[str, Any]] | None = None,
) -> RunSpec:
    """The :class:`RunSpec` that :func:`run`'s keyword arguments describe (nothing is rendered or resolved).

    ``prompt`` is a registry reference (``"ns/slug@label"``, looked up here once) or a saved prompt already
    looked up; its messages come first, its model is the default and its params sit under ``params``.
    ``thread`` holds earlier turns of a conversation, already rendered: they are sent before the new
    messages and never templated again.
    """
    saved = _saved_prompt(prompt)
    bare = text is None and messages is None and saved is None and system is None
    template = compose(text, system=system, messages=messages, saved=saved.messages if saved else (),
                       required=not bare or (kind == "chat" and not thread))  # fmt: skip
    base = {**((saved.params or {}) if saved else {}), **(params or {})}
    if model is None and models is None and saved is not None:
        model = saved.model
    return RunSpec(
        messages=template, thread=thread or (), variables=variables or {},
        targets=_targets(model, models, base, response_format, kind), tools=tuple(tools or ()),
        tool_mode=tool_mode, max_tool_rounds=max_tool_rounds, input=input,
        origin=Origin(surface=surface, thread_id=thread_id, parent_id=parent_id, group_id=group_id,
                      prompt_ref=saved.ref if saved else None),
        policy=Policy(max_attempts=max_attempts, retry_after_output=retry_after_output),
    )  # fmt: skip


def prepare(text: str | None = None, **kw: Any) -> list[RunRequest]:
    """Validate arguments and render templates into one :class:`RunRequest` per target.

    Takes :func:`build_spec`'s arguments: ``plan(build_spec(...))``. Every error here (missing variables,
    bad parameters, unknown models) is raised before anything is sent.
    """
    return plan(build_spec(text, **kw))


def start(requests: list[RunRequest], *, history: bool = True, on_done: OnDone | None = None) -> RunHandle:
    """Start prepared requests on the engine; finished runs go to history (and ``on_done``)."""
    callbacks: list[Callable[[RunResult], None]] = []
    if history:
        callbacks.append(_record)
    if on_done is not None:
        callbacks.append(on_done)

    def done(result: RunResult) -> None:
        for cb in callbacks:
            cb(result)

    return RunHandle(requests, on_done=done if callbacks else None)


def stream(
    text: str | None = None, /, *, history: bool = True, on_done: OnDone | None = None, **kw: Any
) -> RunHandle:
    """Start a run and return its :class:`RunHandle` (iterate it for events; ``stop()``; ``result()``).

    Takes the same arguments as :func:`run`, plus ``models=[...]`` to stream a compare.
    """
    return start(prepare(text, **kw), history=history, on_done=on_done)


def run(
    text: str | None = None,
    /,
    *,
    model: str | None = None,
    variables: Mapping[str, Any] | None = None,
    system: str | None = None,
    params: dict[str, Any] | None = None,
    messages: list[dict[str, Any]] | None = None,
    prompt: str | None = None,
    tools: Iterable[Any] | None = None,
    tool_mode: str = "auto",
    response_format: Any = None,
    kind: str = "chat",
    input: Any = None,
    history: bool = True,
    **kw: Any,
) -> RunResult:
    """Run a prompt on one model and return its :class:`RunResult`.

    ``text`` is a user message template (``{{name}}`` placeholders filled from ``variables``); or pass
    ``messages=[...]`` (a thread / multi-shot), or ``prompt="ns/slug@label"`` to run a saved prompt.
    Errors from the provider do not raise: they come back as ``status="error"`` with ``error`` set.
    Input errors (missing variables, unknown model, bad parameter) raise before anything is sent.
    """
    handle = stream(
        text, model=model, variables=variables, system=system, params=params, messages=messages, prompt=prompt,
        tools=tools, tool_mode=tool_mode, response_format=response_format, kind=kind, input=input,
        history=history, **kw,
    )  # fmt: skip
    return handle.result()


class Comparison(list[RunResult]):
    """The results of a compare, one per model, in order; renders side by side in a notebook."""

    group_id: str | None = None

    def to_frame(self) -> Any:
        """One row per model: model, status, text, tokens, cost, latency."""
        import pandas as pd

        cols = [
            "model",
            "status",
            "text",
            "error",
            "tokens_in",
            "tokens_out",
            "cost_usd",
            "latency_ms",
            "ttft_ms",
            "id",
        ]
        from nbplayground import frames

        return frames.shown(pd.DataFrame([{c: getattr(r, c) for c in cols} for r in self], columns=cols))

    def _repr_html_(self) -> str:
        """Side-by-side columns, sanitized (the same output as ``%%prompt --compare``)."""
        from nbplayground.core import display

        data, _ = display.compare_bundle([r.model for r in self], [r.text for r in self], list(self))
        return str(data["text/html"])


def compare(text: str | None = None, /, *, models: Iterable[Any], **kw: Any) -> Comparison:
    """Run the same prompt on 1-4 models concurrently; one slow or failing model never blocks the others.

    ``models`` items are names or ``{"model": name, "params": {...}}`` (params per target win).
    """
    handle = stream(text, models=models, **kw)
    out = Comparison(handle.results())
    out.group_id = handle.group_id
    return out


def replay(
    run_id: str,
    *,
    model: str | None = None,
    params: dict[str, Any] | None = None,
    tools: Iterable[Any] | None = None,
    history: bool = True,
) -> RunResult:
    """Re-run a stored run (same messages, params, schema), optionally on another model or with new params."""
    return start(replay_requests(run_id, model=model, params=params, tools=tools), history=history).result()


def replay_requests(
    run_id: str,
    *,
    model: str | None = None,
    params: dict[str, Any] | None = None,
    tools: Iterable[Any] | None = None,
    surface: str | None = None,
) -> list[RunRequest]:
    """The requests that re-run a stored run (for surfaces that stream the replay themselves).

    The stored messages are sent as they are; the stored variables, template and prompt version are kept
    as the new run's provenance, nothing is rendered again.
    """
    from nbplayground.storage import history as store

    old = store.get_run(run_id)
    if old is None:
        raise _not_found(run_id)
    info = old.template or {}
    tool_mode = "auto"
    if tools is None and info.get("tools"):
        tools, tool_mode = info["tools"], "manual"  # the functions themselves are not stored
    target = TargetSpec(model or old.model, {**old.params, **(params or {})}, info.get("response_format"), old.kind)
    spec = RunSpec(
        thread=old.messages or (), targets=(target,), tools=tuple(tools or ()), tool_mode=tool_mode,
        input=info.get("input"),
        origin=Origin(surface=surface or old.surface, thread_id=old.thread_id, parent_id=old.id,
                      prompt_ref=old.prompt_ref),
        provenance=Provenance(variables=old.variables, template=info.get("messages")),
    )  # fmt: skip
    return plan(spec)


def providers() -> Any:
    """Providers nbplayground can use: provider, models (a sample), key env var and key status.

    The key status is 'set', 'missing' or 'not needed' — never the key itself.
    """
    from nbplayground import frames
    from nbplayground.core import catalog

    # "none" rather than NaN/None: a missing key variable is a fact to read, not a missing value
    rows = [{"provider": p.provider, "key_status": p.key_status, "key_env": p.key_env or "none",
             "transport": p.transport, "n_models": len(p.models), "models": list(p.models)}
            for p in catalog.providers()]  # fmt: skip
    return frames.table(rows, _PROVIDER_COLUMNS)


_PROVIDER_COLUMNS = {"provider": "text", "key_status": "text", "key_env": "text", "transport": "text",
                     "n_models": "int64", "models": "object"}  # fmt: skip


class _Prompts:
    """The versioned prompt registry (``nbp.prompts``), stored in the history database."""

    def save(self, name: str, **kw: Any) -> Any:
        """Save a new version: ``save("ns/slug", messages=[...] | content="...", model=, params=, labels=[])``."""
        from nbplayground.storage import registry

        return registry.save(name, **kw)

    def get(self, ref: str) -> Any:
        """A saved prompt by ``"ns/slug"``, ``"ns/slug@3"`` or ``"ns/slug@label"``."""
        from nbplayground.storage import registry

        return registry.get(ref)

    def list(self) -> Any:
        """One row per prompt: name, latest_version, labels, model, updated_at (a DataFrame)."""
        from nbplayground import frames
        from nbplayground.storage import registry

        rows = [{"name": p.name, "latest_version": p.latest_version, "labels": p.labels_text, "model": p.model,
                 "updated_at": p.updated_at} for p in registry.list()]  # fmt: skip
        return frames.table(rows, {"name": "text", "latest_version": "int32", "labels": "text", "model": "text",
                                   "updated_at": "time"})  # fmt: skip

    def versions(self, name: str) -> Any:
        """Every version of one prompt, newest first (a DataFrame; params and messages as stored JSON)."""
        import dataclasses

        from nbplayground import frames
        from nbplayground.storage import registry

        rows = [{**dataclasses.asdict(v), "labels": ", ".join(v.labels)} for v in registry.versions(name)]
        return frames.table(rows, {"version": "int32", "labels": "text", "model": "text", "params": "text",
                                   "messages": "text", "description": "text", "content_hash": "text",
                                   "created_at": "time"})  # fmt: skip

    def diff(self, ref_a: str, ref_b: str) -> Any:
        """A unified diff between two versions (``.text``; renders as a diff block)."""
        from nbplayground.storage import registry

        return registry.diff(ref_a, ref_b)

    def set_label(self, name: str, label: str, version: int) -> Any:
        """Point a label (e.g. 'prod') at a version."""
        from nbplayground.storage import registry

        return registry.set_label(name, label, version)

    def __repr__(self) -> str:
        return "<nbp.prompts: save / get / list / versions / diff / set_label>"


prompts = _Prompts()


def history(
    limit: int = 50,
    offset: int = 0,
    model: str | None = None,
    surface: str | None = None,
    status: str | None = None,
    **filters: Any,
) -> Any:
    """Recent runs from every surface as a pandas DataFrame, newest first.

    Columns: id, created_at, surface, model, status, text, error, tokens_in, tokens_out, cost_usd,
    latency_ms, ttft_ms, prompt_ref, thread_id, parent_id, group_id. ``thread_id=`` and ``group_id=``
    filter too; filters combine with AND.
    """
    import dataclasses

    from nbplayground import frames
    from nbplayground.storage import history as store

    found = store.history(limit=limit, offset=offset, model=model, surface=surface, status=status, **filters)
    return frames.table([dataclasses.asdict(r) for r in found], _HISTORY_DTYPES)


#: nbp.history()'s columns and how they are typed (as DuckDB types them: see frames.table).
_HISTORY_DTYPES = {
    "id": "text", "created_at": "time", "surface": "text", "model": "text", "status": "text", "text": "text",
    "error": "text", "tokens_in": "int64", "tokens_out": "int64", "cost_usd": "float64", "latency_ms": "float64",
    "ttft_ms": "float64", "prompt_ref": "text", "thread_id": "text", "parent_id": "text", "group_id": "text",
}  # fmt: skip


def get_run(run_id: str) -> RunResult:
    """One stored run (full detail) by id or unique id prefix (6+ characters).

    Raises :class:`~nbplayground.core.errors.RunNotFoundError` naming close ids when there is none.
    """
    from nbplayground.storage import history as store

    found = store.get_run(run_id)
    if found is None:
        raise _not_found(run_id)
    return found


def _not_found(run_id: str) -> E.RunNotFoundError:
    from nbplayground.storage import history as store

    near = store.near_ids(str(run_id))
    hint = f" Did you mean {', '.join(i[:12] for i in near)}?" if near else " The history has no runs like it."
    return E.RunNotFoundError(
        f"No run {run_id!r} in the history.{hint} List runs with nbp.history().", field="run_id"
    )


def sql(query: str, params: list[Any] | None = None) -> Any:
    """Read-only SQL over the history database (tables ``runs``, ``prompts``, ``prompt_labels``)."""
    from nbplayground import frames
    from nbplayground.storage import history as store

    return frames.shown(store.sql(query, params))


def store_status() -> Any:
    """What the history store holds back, and why: quarantined runs (with their errors), runs waiting in
    journals, pending files, the fallback home if this one is read-only, damaged stores set aside.

    Returns a ``StoreStatus`` (``.ok`` is True when there is nothing to look at; ``print()`` it for a
    summary, ``.to_dict()`` for plain data). Only looks: nothing is written.
    """
    from nbplayground.storage.status import store_status as status

    return status()


def store_recover(path: str | os.PathLike[str]) -> int:
    """Copy whatever DuckDB can still read from a damaged store set aside (``history.corrupt-<time>.duckdb``)
    into the current history; returns how many runs were copied. The damaged file is kept."""
    from nbplayground.storage.recover import store_recover as recover

    return recover(path)
