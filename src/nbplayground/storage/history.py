"""Run history: every run from every surface, stored once when it ends, off the caller's path.

``record()`` only puts the finished result on a queue (microseconds). One daemon writer thread per
process drains the queue in batches: one short exclusive-lock transaction per batch. If the store is
broken or locked, the writer warns once, keeps the runs in memory and retries with backoff; at exit it
spills what is left to ``<home>/pending/*.jsonl``, which the next process that opens the store ingests.
A run is never lost and never written twice (``INSERT OR IGNORE`` by id).
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import re
import threading
import uuid
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

from nbplayground import config
from nbplayground.core.errors import StoreError
from nbplayground.core.types import Media, RunResult, ToolCall, jsonable
from nbplayground.storage import db

COLUMNS = (
    "id", "created_at", "surface", "provider", "model", "kind", "status", "error", "error_type", "text",
    "data", "tool_calls", "media", "messages", "params", "variables", "template", "prompt_ref", "tokens_in",
    "tokens_out", "cost_usd", "latency_ms", "ttft_ms", "finish_reason", "thread_id", "parent_id", "group_id",
    "target_index", "attempts", "row_key",
)  # fmt: skip
JSON_COLUMNS = {"data", "tool_calls", "media", "messages", "params", "variables", "template"}
HISTORY_COLUMNS = (
    "id", "created_at", "surface", "model", "status", "text", "error", "tokens_in", "tokens_out", "cost_usd",
    "latency_ms", "ttft_ms", "prompt_ref", "thread_id", "parent_id", "group_id",
)  # fmt: skip
_INSERT = f"INSERT OR IGNORE INTO runs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
_SECRET_KEY = re.compile(r"key|token|secret|password|authorization|credential", re.I)
_ALLOWED_KEYS = {"max_tokens", "max_completion_tokens", "top_logprobs"}
_DROP_KEYS = {"api_base", "base_url", "extra_headers", "timeout", "organization", "api_version"}
_MEDIA_EXT = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif",
              "image/svg+xml": "svg", "audio/wav": "wav", "audio/mpeg": "mp3", "audio/ogg": "ogg"}  # fmt: skip


def safe_params(params: dict[str, Any]) -> dict[str, Any]:
    """Params without per-call options or anything that could hold a secret (second line of defence)."""
    return {
        k: v
        for k, v in params.items()
        if k not in _DROP_KEYS and (k in _ALLOWED_KEYS or not _SECRET_KEY.search(k))
    }


def _dump(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(jsonable(value), ensure_ascii=False, default=str)


def _write_media(result: RunResult, home: Path) -> list[dict[str, Any]]:
    refs = []
    for i, m in enumerate(result.media):
        if m.path is None and m.data:
            folder = home / "media"
            folder.mkdir(exist_ok=True)
            name = f"{result.id}-{i}.{_MEDIA_EXT.get(m.mime, 'bin')}"
            (folder / name).write_bytes(m.data)
            m.path = f"media/{name}"
        refs.append({"mime": m.mime, "path": m.path, "size": len(m.data), "params": jsonable(m.params),
                     "revised_prompt": m.revised_prompt})  # fmt: skip
    return refs


def to_row(result: RunResult, home: Path) -> tuple[Any, ...]:
    """The ``runs`` row of a result (media bytes go to files; params lose secrets)."""
    values = {
        "id": result.id, "created_at": result.created_at, "surface": result.surface, "provider": result.provider,
        "model": result.model, "kind": result.kind, "status": result.status, "error": result.error,
        "error_type": result.error_type, "text": result.text, "data": _dump(result.data),
        "tool_calls": _dump([t.to_dict() for t in result.tool_calls]) if result.tool_calls else None,
        "media": _dump(_write_media(result, home)) if result.media else None,
        "messages": _dump(result.messages), "params": _dump(safe_params(result.params)),
        "variables": _dump(result.variables), "template": _dump(result.template), "prompt_ref": result.prompt_ref,
        "tokens_in": result.tokens_in, "tokens_out": result.tokens_out, "cost_usd": result.cost_usd,
        "latency_ms": result.latency_ms, "ttft_ms": result.ttft_ms, "finish_reason": result.finish_reason,
        "thread_id": result.thread_id, "parent_id": result.parent_id, "group_id": result.group_id,
        "target_index": result.target_index, "attempts": result.attempts, "row_key": result.row_key,
    }  # fmt: skip
    return tuple(values[c] for c in COLUMNS)


def insert_rows(con: Any, rows: list[tuple[Any, ...]]) -> None:
    """INSERT OR IGNORE rows in one statement (through Arrow for batches: executemany is ~3 ms a row)."""
    if len(rows) <= 8:
        con.executemany(_INSERT, rows)
        return
    import pyarrow as pa

    columns = list(zip(*rows, strict=True))
    table = pa.table({name: list(values) for name, values in zip(COLUMNS, columns, strict=True)})
    con.register("_nbp_batch", table)
    try:
        con.execute(
            f"INSERT OR IGNORE INTO runs ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} FROM _nbp_batch"
        )
    finally:
        con.unregister("_nbp_batch")


def _row_to_json(row: tuple[Any, ...]) -> str:
    out = dict(zip(COLUMNS, row, strict=True))
    out["created_at"] = out["created_at"].isoformat()
    return json.dumps(out, ensure_ascii=False, default=str)


def _row_from_json(line: str) -> tuple[Any, ...]:
    data = json.loads(line)
    data["created_at"] = datetime.fromisoformat(data["created_at"])
    return tuple(data.get(c) for c in COLUMNS)


# --------------------------------------------------------------------------------------------------
# The writer
# --------------------------------------------------------------------------------------------------
class _Flush:
    __slots__ = ("event", "ok")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.ok = True


class _Writer:
    """One per process and home: drains the queue in batches, retries failures, spills at exit."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.pending: list[tuple[Any, ...]] = []  # rows that failed to write, kept for later
        self.warned = False
        self.failures = 0
        self.stopped = False
        self.thread = threading.Thread(target=self._loop, name="nbplayground-history", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stopped:
            try:
                timeout = min(10.0, 0.25 * 2**self.failures) if self.pending else None
                first = self.queue.get(timeout=timeout)
            except queue.Empty:
                first = None
            items = [] if first is None else [first]
            while True:
                try:
                    items.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            flushes = [i for i in items if isinstance(i, _Flush)]
            for item in items:
                if isinstance(item, RunResult):
                    try:
                        self.pending.append(to_row(item, self.home))
                    except Exception as exc:  # a result we cannot serialise: report, never block others
                        self._warn(f"could not serialise run {item.id}: {exc}")
                elif item is _STOP:
                    self.stopped = True
            ok = self._write() if self.pending else True
            for f in flushes:
                f.ok = ok
                f.event.set()

    def _write(self) -> bool:
        rows = self.pending
        try:
            with db.connect(write=True, timeout=db.LOCK_TIMEOUT) as con:
                con.execute("BEGIN TRANSACTION")
                insert_rows(con, rows)
                con.execute("COMMIT")
        except Exception as exc:
            self.failures += 1
            self._warn(
                f"could not write {len(rows)} run(s) to {self.home / db.DB_FILE} ({exc}); "
                "they are kept in memory and will be written when the store is available"
            )
            return False
        del self.pending[: len(rows)]
        self.failures = 0
        return True

    def _warn(self, message: str) -> None:
        if not self.warned:
            self.warned = True
            warnings.warn(f"nbplayground history: {message}", RuntimeWarning, stacklevel=2)

    def flush(self, timeout: float) -> bool:
        f = _Flush()
        self.queue.put(f)
        if not f.event.wait(timeout):
            return False
        return f.ok

    def spill(self) -> Path | None:
        """Write what could not be stored to a pending file (at exit)."""
        if not self.pending:
            return None
        folder = self.home / "pending"
        folder.mkdir(exist_ok=True)
        path = folder / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(_row_to_json(r) + "\n" for r in self.pending), encoding="utf-8")
        tmp.replace(path)
        self.pending = []
        return path


_STOP = object()
_writers: dict[str, _Writer] = {}
_writers_lock = threading.Lock()


def _writer() -> _Writer:
    home = config.home()
    key = f"{os.getpid()}:{home}"
    w = _writers.get(key)
    if w is None:
        with _writers_lock:
            w = _writers.get(key)
            if w is None:
                w = _writers[key] = _Writer(home)
    return w


def record(result: RunResult) -> None:
    """Store a finished run. Returns at once: the write happens on a background thread."""
    _writer().queue.put(result)


def flush(timeout: float = 30.0) -> bool:
    """Wait until every run recorded by this process so far is written; False if some are still pending."""
    w = _writers.get(f"{os.getpid()}:{config.home()}")
    return True if w is None else w.flush(timeout)


def ingest_pending() -> int:
    """Write runs spilled by processes that could not reach the store, then delete their files."""
    folder = config.home() / "pending"
    files = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
    count = 0
    for path in files:
        try:
            rows = [
                _row_from_json(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
            ]
            with db.connect(write=True) as con:
                con.execute("BEGIN TRANSACTION")
                insert_rows(con, rows)
                con.execute("COMMIT")
            path.unlink()
            count += len(rows)
        except FileNotFoundError:  # another process took it
            continue
    return count


def _at_exit() -> None:
    for key, w in list(_writers.items()):
        if not key.startswith(f"{os.getpid()}:"):
            continue
        if not w.flush(timeout=5.0):
            w.stopped = True
            w.spill()


atexit.register(_at_exit)


def reset_for_tests() -> None:
    """Flush and stop this process's writers and forget migrated databases (tests switch homes)."""
    for key, w in list(_writers.items()):
        w.flush(timeout=10.0)
        w.queue.put(_STOP)
        w.thread.join(5)
        _writers.pop(key, None)
    db.forget()


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------
def _read(query: str, params: list[Any] | None = None) -> Any:
    flush()
    _maybe_ingest()
    with db.connect(write=False) as con:
        return con.execute(query, params or []).df()


_ingested: set[str] = set()


def _maybe_ingest() -> None:
    home = str(config.home())
    if home in _ingested:
        return
    _ingested.add(home)
    if (config.home() / "pending").is_dir():
        ingest_pending()


def history(
    limit: int = 50,
    offset: int = 0,
    model: str | None = None,
    surface: str | None = None,
    status: str | None = None,
    thread_id: str | None = None,
    group_id: str | None = None,
) -> Any:
    """Recent runs as a pandas DataFrame, newest first; filters combine with AND."""
    where, args = [], []
    for col, value in (("model", model), ("surface", surface), ("status", status), ("thread_id", thread_id),
                       ("group_id", group_id)):  # fmt: skip
        if value is not None:
            where.append(f"{col} = ?")
            args.append(value)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    query = (
        f"SELECT {', '.join(HISTORY_COLUMNS)} FROM runs {clause} "
        "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"
    )
    return _read(query, [*args, int(limit), int(offset)])


def _from_row(row: dict[str, Any]) -> RunResult:
    def load(col: str) -> Any:
        value = row.get(col)
        return json.loads(value) if isinstance(value, str) else value

    media = []
    for ref in load("media") or []:
        path = config.home() / ref["path"] if ref.get("path") else None
        data = path.read_bytes() if path is not None and path.exists() else b""
        media.append(Media(mime=ref["mime"], data=data, params=ref.get("params") or {},
                           revised_prompt=ref.get("revised_prompt"), path=ref.get("path")))  # fmt: skip
    calls = [ToolCall(id=t["id"], name=t["name"], arguments=t.get("arguments", ""), result=t.get("result"),
                      error=t.get("error")) for t in load("tool_calls") or []]  # fmt: skip

    def num(col: str) -> Any:
        value = row.get(col)
        return None if value is None or value != value else value  # NaN from pandas -> None

    return RunResult(
        id=row["id"], model=row["model"], status=row["status"], text=row["text"] or "", error=row["error"],
        error_type=row["error_type"], data=load("data"), tool_calls=calls, media=media,
        tokens_in=None if num("tokens_in") is None else int(row["tokens_in"]),
        tokens_out=None if num("tokens_out") is None else int(row["tokens_out"]),
        cost_usd=num("cost_usd"), latency_ms=num("latency_ms"), ttft_ms=num("ttft_ms"),
        finish_reason=row["finish_reason"], provider=row["provider"], kind=row["kind"], surface=row["surface"],
        messages=load("messages") or [], params=load("params") or {}, variables=load("variables") or {},
        template=load("template"), prompt_ref=row["prompt_ref"], thread_id=row["thread_id"],
        parent_id=row["parent_id"], group_id=row["group_id"], target_index=int(row["target_index"] or 0),
        attempts=int(row["attempts"] or 1), created_at=row["created_at"], row_key=row.get("row_key"),
    )  # fmt: skip


def _fetch(query: str, params: list[Any]) -> list[dict[str, Any]]:
    flush()
    _maybe_ingest()
    with db.connect(write=False) as con:
        cur = con.execute(query, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def get_run(run_id: str) -> RunResult | None:
    """One run with every detail, by id or by a unique prefix of at least 6 characters."""
    rows = _fetch(f"SELECT {', '.join(COLUMNS)} FROM runs WHERE id = ?", [run_id])
    if not rows and len(run_id) >= 6:
        rows = _fetch(f"SELECT {', '.join(COLUMNS)} FROM runs WHERE starts_with(id, ?) LIMIT 5", [run_id])
        if len(rows) > 1:
            raise StoreError(f"Run id prefix {run_id!r} is ambiguous: {', '.join(r['id'] for r in rows)}")
    return _from_row(rows[0]) if rows else None


def thread_runs(thread_id: str) -> list[RunResult]:
    """Every run of a named thread, oldest first."""
    rows = _fetch(
        f"SELECT {', '.join(COLUMNS)} FROM runs WHERE thread_id = ? ORDER BY created_at, id", [thread_id]
    )
    return [_from_row(r) for r in rows]


def sql(query: str, params: list[Any] | None = None) -> Any:
    """Read-only SQL over the store (tables ``runs``, ``prompts``, ``prompt_labels``) as a DataFrame."""
    import duckdb

    try:
        return _read(query, params)
    except duckdb.Error as exc:
        first = str(exc).splitlines()[0]
        if "read-only" in first or "read only" in first.lower():
            raise StoreError(
                f"History is read-only through sql(); runs are written by nbplayground itself. ({first})"
            ) from None
        raise StoreError(f"SQL error: {first}") from None
