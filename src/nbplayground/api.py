"""The Python surface: ``nbp.run``, ``stream``, ``compare``, ``replay``, history and prompts.

Thin by design: it builds :class:`RunRequest` objects (templates, registry prompts, tools), hands them to
the engine and wires the engine's ``on_done`` to the history store. Other surfaces (magic, widget,
DataFrame, server) call these same functions with their own ``surface`` name.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from nbplayground.core import errors as E
from nbplayground.core.engine import OnDone, RunHandle
from nbplayground.core.types import KINDS, RunRequest, RunResult, Target, new_id

MAX_TARGETS = 4


def _record(result: RunResult) -> None:
    from nbplayground.storage import history

    history.record(result)


def build_messages(
    text: str | None,
    *,
    system: str | None,
    messages: list[dict[str, Any]] | None,
    prompt: str | None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The template messages of a run, and defaults (model, params, prompt_ref) from a registry prompt."""
    defaults: dict[str, Any] = {}
    out: list[dict[str, Any]] = []
    if prompt is not None:
        from nbplayground.storage import registry

        saved = registry.get(prompt)
        out.extend(dict(m) for m in saved.messages)
        defaults = {"model": saved.model, "params": dict(saved.params or {}), "prompt_ref": saved.ref}
    if messages is not None:
        if not isinstance(messages, list) or not all(isinstance(m, Mapping) for m in messages):
            raise E.BadParameterError("messages must be a list of {'role': ..., 'content': ...} dicts.")
        for m in messages:
            role = m.get("role")
            if role not in ("system", "user", "assistant", "tool", "developer"):
                raise E.BadParameterError(
                    f"Message role must be system, user, assistant, tool or developer; got {role!r}."
                )
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
                "if you mean it."
            )
        if not text.strip() and not out:
            raise E.BadParameterError("The prompt is empty: write something to send, or pass messages=[...].")
        out.append({"role": "user", "content": text})
    if not out:
        raise E.BadParameterError("Nothing to run: pass a prompt text, messages=[...] or prompt='ns/slug'.")
    return out, defaults


def _has_content(message: Mapping[str, Any]) -> bool:
    content = message.get("content")
    if isinstance(content, str):
        return bool(content.strip())
    return bool(content) or bool(message.get("tool_calls"))


_said_default: list[bool] = []


def _say_default_once(model: str) -> None:
    """The first run without a model in a process says which model ran, and how to choose one."""
    if _said_default:
        return
    _said_default.append(True)
    import warnings

    warnings.warn(
        f"nbplayground: no model was given, so the built-in offline model {model} ran. Choose a default with "
        "nbp.configure(default_model='openai/gpt-4o-mini'), default_model in config.toml, or "
        "%config Prompt.model = '...' for %%prompt.",
        UserWarning,
        stacklevel=4,
    )


def _targets(model: Any, models: Iterable[Any] | None, params: dict[str, Any] | None) -> list[Target]:
    specs = list(models) if models is not None else [model]
    if not 1 <= len(specs) <= MAX_TARGETS:
        raise E.BadParameterError(f"Compare 1 to {MAX_TARGETS} models at once, got {len(specs)}.")
    targets = []
    for i, spec in enumerate(specs):
        if isinstance(spec, Target):
            targets.append(Target(spec.model, {**(params or {}), **spec.params}, i))
        elif isinstance(spec, Mapping):
            if "model" not in spec:
                raise E.BadParameterError(f"A target dict needs 'model': {dict(spec)!r}")
            targets.append(Target(spec["model"], {**(params or {}), **(spec.get("params") or {})}, i))
        elif spec is None or isinstance(spec, str):
            targets.append(Target(spec or "", dict(params or {}), i))
        else:
            raise E.BadParameterError(f"A model is a name or {{'model': ..., 'params': ...}}, got {spec!r}.")
    return targets


def prepare(
    text: str | None = None,
    *,
    model: str | None = None,
    models: Iterable[Any] | None = None,
    variables: Mapping[str, Any] | None = None,
    system: str | None = None,
    params: dict[str, Any] | None = None,
    messages: list[dict[str, Any]] | None = None,
    prompt: str | None = None,
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
) -> list[RunRequest]:
    """Validate arguments and render templates into one :class:`RunRequest` per target.

    ``thread`` holds earlier turns of a conversation, already rendered: they are sent before the new
    messages and never templated again. Every error here (missing variables, bad parameters, unknown
    models) is raised before anything is sent.
    """
    from nbplayground import config
    from nbplayground.core import providers, templating
    from nbplayground.core.tools import normalize_tools

    if kind not in KINDS:
        raise E.BadParameterError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}.")
    if tool_mode not in ("auto", "manual"):
        raise E.BadParameterError(f"tool_mode must be 'auto' or 'manual'; got {tool_mode!r}.")
    template: list[dict[str, Any]]
    defaults: dict[str, Any]
    if (kind != "chat" or thread) and text is None and messages is None and prompt is None and system is None:
        template, defaults = [], {}
    else:
        template, defaults = build_messages(text, system=system, messages=messages, prompt=prompt)
    variables = dict(variables or {})
    # What is stored is what each placeholder took ({"cfg.prompt": ...}), never whole objects: a dict
    # used for one field may hold keys, and these values fill the template again (Playground restore).
    resolved: dict[str, Any] = {}
    rendered = templating.render_messages(template, variables, resolved=resolved) if template else []
    if thread:
        earlier = [dict(m) for m in thread]
        new_system = [m for m in rendered if m.get("role") == "system"]
        if new_system:  # a new system prompt replaces the thread's
            earlier = [m for m in earlier if m.get("role") != "system"]
            rendered = new_system[-1:] + earlier + [m for m in rendered if m.get("role") != "system"]
        else:
            rendered = earlier + rendered
    if kind == "chat" and not rendered:
        raise E.BadParameterError("Nothing to run: pass a prompt text, messages=[...] or prompt='ns/slug'.")
    if kind == "chat" and not any(_has_content(m) for m in rendered):
        raise E.BadParameterError(
            "The prompt is empty after filling its placeholders: check the variables' values (a model would "
            "get nothing to answer)."
        )
    if isinstance(input, str):
        input = templating.render(input, variables, resolved=resolved)
    base_params = {**defaults.get("params", {}), **(params or {})}
    if model is None and models is None:
        model = defaults.get("model") or config.settings().default_model
        if not defaults.get("model") and not config.settings().default_model_chosen:
            _say_default_once(model)
    targets = _targets(model, models, base_params)
    tool_schemas, functions = normalize_tools(tools)
    if len(targets) > 1 and group_id is None:
        group_id = new_id()
    requests = []
    for t in targets:
        rm = providers.resolve(t.model)  # unknown model: fail before sending anything
        providers.split_params(rm, t.params)  # bad parameter: likewise
        requests.append(
            RunRequest(
                model=t.model or rm.name, messages=rendered, params=t.params, variables=dict(resolved),
                tools=tool_schemas, tool_functions=functions, tool_mode=tool_mode,  # type: ignore[arg-type]
                max_tool_rounds=max_tool_rounds, response_format=response_format, kind=kind,  # type: ignore[arg-type]
                input=input, template_messages=template or None, prompt_ref=defaults.get("prompt_ref"),
                surface=surface, thread_id=thread_id, parent_id=parent_id, group_id=group_id,
                target_index=t.index, retry_after_output=retry_after_output, max_attempts=max_attempts,
            )
        )  # fmt: skip
    return requests


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
    """The requests that re-run a stored run (for surfaces that stream the replay themselves)."""
    from nbplayground.storage import history as store

    old = store.get_run(run_id)
    if old is None:
        raise _not_found(run_id)
    info = old.template or {}
    kw: dict[str, Any] = {}
    if tools is not None:
        kw["tools"] = tools
    elif info.get("tools"):
        kw["tools"] = info["tools"]
        kw["tool_mode"] = "manual"  # the functions themselves are not stored
    requests = prepare(
        None, model=model or old.model, params={**old.params, **(params or {})}, thread=old.messages or None,
        response_format=info.get("response_format"), kind=old.kind, input=info.get("input"),
        surface=surface or old.surface, thread_id=old.thread_id, parent_id=old.id, **kw,
    )  # fmt: skip
    for req in requests:
        req.variables = dict(old.variables)
        req.template_messages = info.get("messages")
        req.prompt_ref = old.prompt_ref
    return requests


def providers() -> Any:
    """Providers nbplayground can use: provider, models (a sample), key env var and key status.

    The key status is 'set', 'missing' or 'not needed' — never the key itself.
    """
    import os

    import pandas as pd

    from nbplayground import config
    from nbplayground.core import mock
    from nbplayground.core import providers as P

    rows: list[dict[str, Any]] = [
        {"provider": "mock", "models": [f"mock/{m}" for m in mock.MOCK_MODELS], "key_env": None,
         "key_status": "not needed", "transport": "mock"}
    ]  # fmt: skip
    for name, cm in config.settings().models.items():
        rm = P.resolve(name)
        rows.append({"provider": f"{rm.provider} (custom: {name})", "models": [name], "key_env": rm.key_env,
                     "key_status": P.key_status(rm), "transport": rm.transport,
                     "api_base": cm.api_base})  # fmt: skip
    by_provider: dict[str, list[str]] = {}
    for key, info in P.cost_map().items():
        provider = info.get("litellm_provider")
        if provider in P.PROVIDER_KEY_ENV and info.get("mode") in (None, "chat", "responses"):
            by_provider.setdefault(provider, []).append(
                key if key.startswith(f"{provider}/") else f"{provider}/{key}"
            )
    for provider, env in P.PROVIDER_KEY_ENV.items():
        models = sorted(by_provider.get(provider, []))
        if not models and provider not in ("openai", "anthropic", "gemini"):
            continue
        rows.append({"provider": provider, "models": models, "key_env": env,
                     "key_status": "set" if os.environ.get(env) else "missing",
                     "transport": P.resolve(models[0]).transport if models else "litellm"})  # fmt: skip
    df = pd.DataFrame(rows)
    # "none" rather than NaN/None: a missing key variable is a fact to read, not a missing value
    df["key_env"] = df["key_env"].map(lambda v: v if isinstance(v, str) and v else "none")
    df["n_models"] = df["models"].map(len)
    from nbplayground import frames

    return frames.shown(df[["provider", "key_status", "key_env", "transport", "n_models", "models"]])


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
        """One row per prompt: latest version, labels, model, updated_at."""
        from nbplayground import frames
        from nbplayground.storage import registry

        return frames.shown(registry.list())

    def versions(self, name: str) -> Any:
        """Every version of one prompt."""
        from nbplayground import frames
        from nbplayground.storage import registry

        return frames.shown(registry.versions(name))

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
    """Recent runs from every surface as a pandas DataFrame, newest first."""
    from nbplayground import frames
    from nbplayground.storage import history as store

    return frames.shown(
        store.history(limit=limit, offset=offset, model=model, surface=surface, status=status, **filters)
    )


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
    return E.RunNotFoundError(f"No run {run_id!r} in the history.{hint} List runs with nbp.history().")


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
