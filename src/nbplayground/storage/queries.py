"""Reading the history: typed rows (``RunSummary``, ``PageRow``, whole ``RunResult``s), paging, read-only SQL.

Every read first makes this process's own runs visible (``writer.flush``) and takes in runs left by
processes that are gone. Reads return dataclasses with ``None`` for a missing value (never NaN); only
:func:`sql`, the notebook's own SQL window, returns a DataFrame. Surfaces turn rows into frames or JSON.

duckdb and pandas are imported on first use, never at import time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from nbplayground import config
from nbplayground.core.errors import StoreError, StoreQueryError
from nbplayground.core.types import Media, RunResult, ToolCall
from nbplayground.storage import db, intake, rows, writer
from nbplayground.storage.rows import COLUMNS

HISTORY_COLUMNS = (
    "id", "created_at", "surface", "model", "status", "text", "error", "tokens_in", "tokens_out", "cost_usd",
    "latency_ms", "ttft_ms", "prompt_ref", "thread_id", "parent_id", "group_id",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One run as a history list shows it: the columns of :data:`HISTORY_COLUMNS`, ``None`` when missing.

    Only ``id`` and ``created_at`` are always set; the others are what the store holds (a run stored by
    an older version, or by hand, may lack them).
    """

    id: str
    created_at: datetime
    surface: str | None
    model: str | None
    status: str | None
    text: str | None
    error: str | None
    tokens_in: int | None
    tokens_out: int | None
    cost_usd: float | None
    latency_ms: float | None
    ttft_ms: float | None
    prompt_ref: str | None
    thread_id: str | None
    parent_id: str | None
    group_id: str | None


@dataclass(frozen=True, slots=True)
class PageRow(RunSummary):
    """A run on a page of the history browser: its summary, how it failed, and its prompt text."""

    error_type: str | None
    error_status: int | None
    prompt: str  # the last user message of the request ("" when there is none)


class Page(NamedTuple):
    """One page of runs, newest first, and how many runs match in all."""

    rows: list[PageRow]
    total: int


# ---------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------
def _before_read() -> None:
    """Make this process's own runs visible, and take in runs left by processes that are gone."""
    writer.flush()
    home = config.home()
    if intake.waiting(home):
        try:
            writer.ingest_pending()
        except StoreError:
            pass  # the read itself will report a broken store


@contextmanager
def _reader() -> Iterator[Any]:
    """A read attachment of the store that also shows this process's runs not stored yet.

    After the flush in ``_before_read`` there are such runs only when the store cannot take them (a
    read-only home): a temporary view named ``runs`` (visible to this cursor only) adds them.
    """
    local = writer.unstored_rows()
    with db.connect(write=False) as con:
        if local:
            _overlay(con, local)
        yield con


def _overlay(con: Any, local: list[rows.Row]) -> None:
    import duckdb

    cols = ", ".join(COLUMNS)
    one = "(" + ", ".join("?" * len(COLUMNS)) + ")"
    try:
        con.execute(f"CREATE TEMP TABLE _nbp_unstored AS SELECT {cols} FROM {db.ALIAS}.main.runs LIMIT 0")
        for i in range(0, len(local), 100):
            chunk = local[i : i + 100]
            con.execute(f"INSERT INTO temp.main._nbp_unstored ({cols}) VALUES {', '.join([one] * len(chunk))}",
                        [v for row in chunk for v in row])  # fmt: skip
        con.execute(f"CREATE TEMP VIEW runs AS SELECT * FROM {db.ALIAS}.main.runs "
                    "UNION ALL BY NAME SELECT * FROM temp.main._nbp_unstored")  # fmt: skip
    except duckdb.Error:
        pass  # a store too old to migrate here: its own rows are what reads show


def _fetch(query: str, params: Sequence[Any]) -> list[dict[str, Any]]:
    _before_read()
    with _reader() as con:
        return _dicts(con.execute(query, list(params)))


def _dicts(cursor: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]


def _where(**filters: str | None) -> tuple[str, list[Any]]:
    """``WHERE col = ? AND ...`` for the filters given (None: no filter), and its arguments."""
    where, args = [], []
    for col, value in filters.items():
        if value is not None:
            where.append(f"{col} = ?")
            args.append(value)
    return (f"WHERE {' AND '.join(where)} " if where else ""), args


def _whole(value: Any) -> int | None:
    return None if value is None else int(value)


def _real(value: Any) -> float | None:
    """A stored measure, None when unknown (NULL, or a NaN a store written by hand may hold)."""
    return None if value is None or value != value else float(value)


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    """The summary fields of a row as typed values."""
    out = {c: row[c] for c in HISTORY_COLUMNS}
    for c in ("tokens_in", "tokens_out"):
        out[c] = _whole(out[c])
    for c in ("cost_usd", "latency_ms", "ttft_ms"):
        out[c] = _real(out[c])
    return out


def history(
    limit: int = 50,
    offset: int = 0,
    model: str | None = None,
    surface: str | None = None,
    status: str | None = None,
    thread_id: str | None = None,
    group_id: str | None = None,
) -> list[RunSummary]:
    """Recent runs, newest first; filters combine with AND."""
    clause, args = _where(model=model, surface=surface, status=status, thread_id=thread_id, group_id=group_id)
    # Only the listed columns, newest first: DuckDB plans a Top-N over (created_at, id) and fetches the
    # wide columns (text) for the 50 winners only. No index helps this (measured; see benchmarks/).
    query = (
        f"SELECT {', '.join(HISTORY_COLUMNS)} FROM runs {clause}"
        "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"
    )
    found = _fetch(query, [*args, max(0, int(limit)), max(0, int(offset))])
    return [RunSummary(**_summary(r)) for r in found]


def count(
    model: str | None = None,
    surface: str | None = None,
    status: str | None = None,
    thread_id: str | None = None,
    group_id: str | None = None,
) -> int:
    """How many runs match the filters (as :func:`history` takes them)."""
    clause, args = _where(model=model, surface=surface, status=status, thread_id=thread_id, group_id=group_id)
    _before_read()
    with _reader() as con:
        return int(con.execute(f"SELECT count(*) FROM runs {clause}", args).fetchone()[0])


def _prompt_text(messages_json: str | None) -> str:
    """The last user message of a stored run (what a history list shows as its prompt)."""
    try:
        messages = json.loads(messages_json or "[]")
    except ValueError:
        return ""
    for m in reversed(messages if isinstance(messages, list) else []):
        if isinstance(m, dict) and m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, list):  # multimodal parts: their text
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


def page(limit: int = 50, offset: int = 0, model: str | None = None, status: str | None = None) -> Page:
    """One page of runs, newest first, with each run's prompt text, and the total that match."""
    clause, args = _where(model=model, status=status)
    _before_read()
    with _reader() as con:
        total = con.execute(f"SELECT count(*) FROM runs {clause}", args).fetchone()[0]
        found = _dicts(con.execute(
            f"SELECT {', '.join(HISTORY_COLUMNS)}, error_type, error_status, messages FROM runs {clause}"
            "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?", [*args, int(limit), int(offset)],
        ))  # fmt: skip
    items = [
        PageRow(
            **_summary(r),
            error_type=r["error_type"],
            error_status=_whole(r["error_status"]),
            prompt=_prompt_text(r["messages"]),
        )
        for r in found
    ]
    return Page(items, int(total))


def _to_run(row: dict[str, Any]) -> RunResult:
    """A whole stored run (media bytes read back from the media folder)."""

    def load(col: str) -> Any:
        value = row.get(col)
        try:
            return json.loads(value) if isinstance(value, str) else value
        except ValueError:  # stored by hand or by an old version: the text is still worth showing
            return value

    def items(col: str) -> list[dict[str, Any]]:  # what a stored list holds that can be shown (dicts)
        value = load(col)
        return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []

    home = config.home()
    media = []
    for ref in items("media"):
        path = home / ref["path"] if isinstance(ref.get("path"), str) else None  # absolute: a fallback home
        try:
            data = path.read_bytes() if path is not None and path.is_file() else b""
        except OSError:
            data = b""
        media.append(Media(mime=str(ref.get("mime")), data=data, params=ref.get("params") or {},
                           revised_prompt=ref.get("revised_prompt"), path=ref.get("path")))  # fmt: skip
    calls = [ToolCall(id=str(t.get("id", "")), name=str(t.get("name", "")), arguments=t.get("arguments", ""),
                      result=t.get("result"), error=t.get("error")) for t in items("tool_calls")]  # fmt: skip
    created = row.get("created_at")
    return RunResult(
        id=row["id"], model=row["model"], status=row["status"], text=row["text"] or "", error=row["error"],
        error_type=row["error_type"], data=load("data"), tool_calls=calls, media=media,
        tokens_in=_whole(row["tokens_in"]), tokens_out=_whole(row["tokens_out"]),
        cost_usd=_real(row["cost_usd"]), latency_ms=_real(row["latency_ms"]), ttft_ms=_real(row["ttft_ms"]),
        finish_reason=row["finish_reason"], provider=row["provider"], kind=row["kind"], surface=row["surface"],
        messages=load("messages") or [], params=load("params") or {}, variables=load("variables") or {},
        template=load("template"), prompt_ref=row["prompt_ref"], thread_id=row["thread_id"],
        parent_id=row["parent_id"], group_id=row["group_id"], target_index=_whole(row["target_index"]) or 0,
        attempts=_whole(row["attempts"]) or 1, row_key=row["row_key"], error_status=_whole(row["error_status"]),
        reasoning=row.get("reasoning"), error_detail=row.get("error_detail"),
        tokens_estimated=bool(row.get("tokens_estimated")),
        created_at=rows.timestamp(created) if isinstance(created, datetime) else datetime.now(UTC),
    )  # fmt: skip


def get_run(run_id: str) -> RunResult | None:
    """One run with every detail, by id or by a unique prefix of at least 6 characters.

    Returns None when nothing matches; raises ``StoreError`` listing the candidates when a prefix is
    ambiguous. Media bytes are read back from the media folder.
    """
    select = f"SELECT {', '.join(COLUMNS)} FROM runs"
    _before_read()
    with _reader() as con:
        found = _dicts(con.execute(f"{select} WHERE id = ?", [run_id]))
        if not found and len(run_id) >= 6:
            found = _dicts(con.execute(f"{select} WHERE starts_with(id, ?) ORDER BY id LIMIT 11", [run_id]))
    if len(found) > 1:
        shown = ", ".join(r["id"] for r in found[:10]) + (", ..." if len(found) > 10 else "")
        raise StoreQueryError(
            f"Run id prefix {run_id!r} is ambiguous; it matches {shown}. Give more characters.",
            field="run_id",
        )
    return _to_run(found[0]) if found else None


def near_ids(run_id: str, n: int = 3) -> list[str]:
    """Ids of recent runs that look like ``run_id`` (for "did you mean"), closest first."""
    import difflib

    _before_read()
    with _reader() as con:
        recent = [
            r[0] for r in con.execute("SELECT id FROM runs ORDER BY created_at DESC LIMIT 5000").fetchall()
        ]
    size = max(len(run_id), 8)
    heads = {rid[:size]: rid for rid in recent}
    return [heads[h] for h in difflib.get_close_matches(run_id, list(heads), n=n, cutoff=0.5)]


def thread_runs(thread_id: str) -> list[RunResult]:
    """Every run of a named thread, oldest first."""
    found = _fetch(
        f"SELECT {', '.join(COLUMNS)} FROM runs WHERE thread_id = ? ORDER BY created_at, id", [thread_id]
    )
    return [_to_run(r) for r in found]


def finished_by_row_key(group_id: str, statuses: Sequence[str] = ("ok", "error")) -> dict[str, RunResult]:
    """The latest run per row key of one batch (``group_id``) whose status is one of ``statuses``.

    Runs without a row key are left out. A DataFrame batch resumes from these.
    """
    if not statuses:
        return {}
    found = _fetch(
        f"SELECT {', '.join(COLUMNS)} FROM runs WHERE group_id = ? AND status IN "
        f"({', '.join('?' * len(statuses))}) ORDER BY created_at",
        [group_id, *statuses],
    )
    return {r["row_key"]: _to_run(r) for r in found if r.get("row_key") is not None}


_READ_STATEMENTS = frozenset({"SELECT", "EXPLAIN", "PRAGMA", "CALL"})


def sql(query: str, params: list[Any] | None = None) -> Any:
    """Read-only SQL over the store (tables ``runs``, ``prompts``, ``prompt_labels``) as a DataFrame.

    The one read that returns a frame: its columns are whatever the query asks for, typed by DuckDB.
    Runs on a ``read_only`` connection under the shared lock; a statement that would write raises
    ``StoreError``.
    """
    import duckdb

    try:
        kinds = [s.type.name for s in duckdb.extract_statements(query)]
    except duckdb.Error as exc:
        raise StoreQueryError(f"SQL error: {str(exc).splitlines()[0]}", field="query") from None
    writes = [k for k in kinds if k not in _READ_STATEMENTS]
    if writes:
        raise StoreQueryError(
            f"History is read-only through sql(); {writes[0]} statements are refused. Runs are written by "
            "nbplayground itself; to change data, query into a DataFrame and work on that.",
            field="query",
        )
    try:
        _before_read()
        with _reader() as con:
            return con.execute(query, params or []).df()
    except duckdb.Error as exc:
        first = str(exc).splitlines()[0]
        if "read-only" in first or "read only" in first.lower():
            raise StoreQueryError(
                f"History is read-only through sql(); runs are written by nbplayground itself. ({first})",
                field="query",
            ) from None
        raise StoreQueryError(f"SQL error: {first}", field="query") from None
