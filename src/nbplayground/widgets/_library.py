"""The Playground's history panel and registry: a history page, a stored run or a registry version as
editor state, and the prompt saved as a registry version. Each returns trait values; the widget sets them."""

from __future__ import annotations

import json
from typing import Any

from nbplayground import api
from nbplayground.core.plan import MAX_TARGETS
from nbplayground.core.types import RunResult
from nbplayground.widgets._editor import editor_messages, result_state

#: Runs on one page of the history panel.
PAGE_SIZE = 20


def history_page(thread_id: str, current: dict[str, Any], scope: str | None, offset: Any) -> dict[str, Any]:
    """The ``history`` trait for ``scope`` ('widget': this widget's runs, 'all') from ``offset``.

    A missing scope or offset keeps the one ``current`` (the trait as it is) shows.
    """
    from nbplayground.storage import history as store

    scope = scope if scope in ("widget", "all") else current.get("scope", "widget")
    offset = max(0, int(offset if offset is not None else current.get("offset", 0)))
    filters = {"thread_id": thread_id} if scope == "widget" else {}
    page = store.history(limit=PAGE_SIZE, offset=offset, **filters)
    total = store.count(**filters)
    items = [
        {"id": row.id, "group_id": row.group_id, "created_at": row.created_at.isoformat(),
         "model": row.model, "status": row.status, "text": (row.text or "")[:200],
         "tokens_in": _num(row.tokens_in), "tokens_out": _num(row.tokens_out),
         "cost_usd": _num(row.cost_usd), "latency_ms": _num(row.latency_ms)}
        for row in page
    ]  # fmt: skip
    return {"scope": scope, "offset": offset, "total": int(total), "items": items}


def restore_state(run_id: str, tool_mode: str) -> tuple[dict[str, Any], list[RunResult]]:
    """The editor state that shows a stored run (and the other targets of its compare), and those runs.

    Raises :class:`~nbplayground.core.errors.RunNotFoundError` (``field="run_id"``, naming close ids) when
    the history has no such run.
    """
    run = api.get_run(run_id)
    group = [run]
    # a data row's run (DataFrame, experiment) shares its group with the other rows, not with a compare
    if run.group_id and run.row_key is None:
        from nbplayground.storage import history as store

        rows = store.history(limit=MAX_TARGETS * 4, group_id=run.group_id)
        ids = list(dict.fromkeys(r.id for r in rows))
        group = [api.get_run(i) for i in ids] or [run]
        group.sort(key=lambda r: r.target_index)
    group = group[:MAX_TARGETS]
    template = (run.template or {}).get("messages") or run.messages
    msgs = editor_messages(template, None)
    targets = []
    for r in group:
        info = r.template or {}
        rf = info.get("response_format")
        targets.append({"model": r.model, "params": dict(r.params or {}),
                        "response_format": json.dumps(rf) if rf else None, "tools": bool(info.get("tools"))})  # fmt: skip
    from nbplayground.core.templating import nest

    stored = nest(run.variables or {})  # runs store values by placeholder path: back into objects
    variables = {k: v if isinstance(v, str) else json.dumps(v) for k, v in stored.items()}
    state = {
        "messages": msgs, "base_messages": msgs, "variables": variables, "targets": targets,
        "outputs": [result_state(r) for r in group], "previous": [None] * len(targets),
        "tool_mode": (run.template or {}).get("tool_mode", tool_mode), "prompt_ref": run.prompt_ref or "",
        "prompt_labels": [],
    }  # fmt: skip
    return state, group


def load_state(ref: str, targets: list[dict[str, Any]]) -> dict[str, Any]:
    """The editor state that shows a registry version: its messages; model and params into the first target."""
    from nbplayground.storage import registry

    saved = registry.get(ref)
    msgs = editor_messages(saved.messages, None)
    first = dict(targets[0])
    if saved.model:
        first["model"] = saved.model
    first["params"] = dict(saved.params or {})
    # the labels field starts empty: saving an edit of "@prod" must not move "prod" unless asked
    return {"messages": msgs, "base_messages": msgs, "targets": [first, *targets[1:]],
            "prompt_ref": saved.ref, "prompt_labels": []}  # fmt: skip


def save_prompt(name: str, messages: list[dict[str, Any]], target: dict[str, Any], labels: list[str]) -> str:
    """Save ``messages`` with the target's model and params as a new registry version; its ref."""
    from nbplayground.storage import registry

    saved = registry.save(
        name, messages=messages, model=target["model"], params=dict(target.get("params") or {}),
        labels=labels,
    )  # fmt: skip
    return saved.ref


def _num(value: float | None) -> float | None:
    return None if value is None else float(value)
