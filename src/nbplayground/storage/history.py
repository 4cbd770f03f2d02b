"""Run history: every run from every surface, stored once when it ends, off the caller's path.

``record()`` only puts the finished result on a queue (microseconds). One daemon writer thread per
process drains the queue in batches: one short exclusive-lock transaction per batch, through Arrow.
If the store is broken or locked, the writer warns once, keeps the runs in memory and retries with
backoff (at once when someone calls ``flush()``); at exit it spills what is left to
``<home>/pending/<pid>-<uuid>.jsonl``, which the next process that writes (or reads) ingests and deletes.
A run is never lost and never written twice (``INSERT OR IGNORE`` by id).

duckdb, pandas and pyarrow are imported on first use, never at import time.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import threading
import time
import uuid
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nbplayground import config
from nbplayground.core import secrets
from nbplayground.core.errors import StoreError
from nbplayground.core.types import Media, RunResult, ToolCall, jsonable
from nbplayground.storage import db

COLUMNS = (
    "id", "created_at", "surface", "provider", "model", "kind", "status", "error", "error_type", "text",
    "data", "tool_calls", "media", "messages", "params", "variables", "template", "prompt_ref", "tokens_in",
    "tokens_out", "cost_usd", "latency_ms", "ttft_ms", "finish_reason", "thread_id", "parent_id", "group_id",
    "target_index", "attempts", "row_key", "error_status",
)  # fmt: skip
JSON_COLUMNS = frozenset({"data", "tool_calls", "media", "messages", "params", "variables", "template"})
INT_COLUMNS = frozenset({"tokens_in", "tokens_out", "target_index", "attempts", "error_status"})
FLOAT_COLUMNS = frozenset({"cost_usd", "latency_ms", "ttft_ms"})
HISTORY_COLUMNS = (
    "id", "created_at", "surface", "model", "status", "text", "error", "tokens_in", "tokens_out", "cost_usd",
    "latency_ms", "ttft_ms", "prompt_ref", "thread_id", "parent_id", "group_id",
)  # fmt: skip
_INSERT = f"INSERT OR IGNORE INTO runs ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} FROM _nbp_batch"

#: How long the writer gathers finished runs into one transaction (one DuckDB open costs ~10 ms, so a
#: batch finishing rows is written together), and the most it gathers before writing.
COALESCE_S = 0.1
MAX_BATCH = 5000
#: Backoff between retries after a failed write: doubles from ``RETRY_MIN_S`` up to ``RETRY_MAX_S``.
RETRY_MIN_S = 0.5
RETRY_MAX_S = 30.0
#: How long the exit handler waits for a final write before spilling to ``pending/``.
EXIT_FLUSH_S = 5.0

# ---------------------------------------------------------------------------------------------------
# Secrets: the engine strips per-call options already; this is the second line of defence.
# ---------------------------------------------------------------------------------------------------
#: Connection settings dropped from stored params at any depth (not secret by name, but never history).
_DROP_KEYS = frozenset({"api_base", "base_url", "extra_headers", "headers", "timeout", "organization",
                        "api_version", "proxy", "proxies"})  # fmt: skip


def safe_params(params: dict[str, Any]) -> dict[str, Any]:
    """Params without per-call options or anything that could hold a secret, at any depth.

    Drops ``api_key``, ``api_base``, ``extra_headers``, ``timeout`` and any field whose name says it holds
    a key, token (but keeps ``max_tokens``-style counts), secret, password or authorization; values that
    look like an API key or bearer token are redacted (see :mod:`nbplayground.core.secrets`).
    """
    return secrets.scrub(dict(params or {}), drop=_DROP_KEYS)


# ---------------------------------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------------------------------
_MEDIA_EXT = {
    "image/png": "png", "image/jpeg": "jpg", "image/jpg": "jpg", "image/webp": "webp", "image/gif": "gif",
    "image/svg+xml": "svg", "audio/wav": "wav", "audio/x-wav": "wav", "audio/wave": "wav",
    "audio/mpeg": "mp3", "audio/mp3": "mp3", "audio/ogg": "ogg", "audio/flac": "flac", "audio/aac": "aac",
    "audio/webm": "webm", "audio/mp4": "m4a", "audio/pcm": "pcm",
}  # fmt: skip


def media_extension(mime: str) -> str:
    """File extension for a media type (``bin`` when unknown)."""
    return _MEDIA_EXT.get(mime.split(";", 1)[0].strip().lower(), "bin")


def _default(value: Any) -> Any:
    """What json.dumps cannot encode itself: pydantic models, bytes, sets, datetimes..."""
    converted = jsonable(value)
    if converted is value:
        return str(value)
    return converted


def _dump(value: Any) -> str | None:
    if value is None:
        return None
    try:  # plain data (the common case) serialises directly: no Python-level walk over it first
        return json.dumps(value, ensure_ascii=False, default=_default)
    except (ValueError, TypeError, RecursionError):
        pass
    try:
        return json.dumps(jsonable(value), ensure_ascii=False, default=str)
    except (ValueError, TypeError, RecursionError):  # a cycle, say: keep the run, describe the value
        return json.dumps({"unserializable": repr(value)[:2000]}, ensure_ascii=False)


def _write_private(path: Path, data: bytes) -> None:
    """Write a new file only its owner may read: prompts, answers and media are private (see config.home)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _write_media(result: RunResult, home: Path, files: bool = True) -> list[dict[str, Any]]:
    refs = []
    for i, m in enumerate(result.media):
        if files and m.path is None and m.data:
            folder = home / "media"
            folder.mkdir(mode=0o700, exist_ok=True)
            name = f"{result.id}-{i}.{media_extension(m.mime)}"
            tmp = folder / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
            _write_private(tmp, m.data)
            tmp.replace(folder / name)  # never a half-written file under the final name
            m.path = f"media/{name}"
        refs.append({"mime": m.mime, "path": m.path, "size": len(m.data), "params": jsonable(m.params),
                     "revised_prompt": m.revised_prompt})  # fmt: skip
    return refs


def _utc(value: datetime | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _clean(red: secrets.Redactor, value: Any, **kw: Any) -> Any:
    if value is None:
        return None
    try:
        return red.scrub(value, **kw)
    except RecursionError:  # nested deeper than Python recurses: keep the run, not the value
        return {"unserializable": "nested too deeply to store"}


def _dump_clean(red: secrets.Redactor, value: Any) -> str | None:
    """JSON of a value with its secrets redacted: one scan over the JSON text, the data walked only if needed."""
    text = _dump(value)
    if text is None:
        return None
    clean = red.redact_json(text)
    return clean if clean is not None else _dump(_clean(red, value, names=False))


def to_row(result: RunResult, home: Path, media_files: bool = True) -> tuple[Any, ...]:
    """The ``runs`` row of a result: media bytes go to files (``Media.path`` is set), secrets go nowhere.

    Every stored text (answer, error, messages, variables, data, tool calls, template) is redacted with
    :mod:`nbplayground.core.secrets`; params and variables also lose fields whose name says they hold a
    key, and such values are redacted wherever else they appear in the run.
    ``media_files=False`` records the media metadata without writing files (the last resort at exit).
    """
    red = secrets.redactor()
    found: list[str] = []
    params = _clean(red, dict(result.params or {}), drop=_DROP_KEYS, found=found)
    variables = _clean(red, result.variables, found=found)
    if found:  # a variable such as cfg.openai_key: its value is a secret in the prompt and answer too
        red = red.with_values(found)
        variables = _clean(red, result.variables)
    values = {
        "id": result.id, "created_at": _utc(result.created_at), "surface": result.surface,
        "provider": result.provider, "model": result.model, "kind": result.kind, "status": result.status,
        "error": result.error and red.redact(result.error), "error_type": result.error_type,
        "text": result.text and red.redact(result.text), "data": _dump_clean(red, result.data),
        "tool_calls": _dump_clean(red, [t.to_dict() for t in result.tool_calls]) if result.tool_calls else None,
        "media": _dump_clean(red, _write_media(result, home, media_files)) if result.media else None,
        "messages": _dump_clean(red, result.messages), "params": _dump(params),
        "variables": _dump(variables), "template": _dump_clean(red, result.template),
        "prompt_ref": result.prompt_ref,
        "tokens_in": _int(result.tokens_in), "tokens_out": _int(result.tokens_out),
        "cost_usd": _float(result.cost_usd), "latency_ms": _float(result.latency_ms),
        "ttft_ms": _float(result.ttft_ms), "finish_reason": result.finish_reason, "thread_id": result.thread_id,
        "parent_id": result.parent_id, "group_id": result.group_id, "target_index": _int(result.target_index),
        "attempts": _int(result.attempts), "row_key": result.row_key, "error_status": _int(result.error_status),
    }  # fmt: skip
    return tuple(values[c] for c in COLUMNS)


def _arrow_schema() -> Any:
    import pyarrow as pa

    def kind(col: str) -> Any:
        if col == "created_at":
            return pa.timestamp("us", tz="UTC")
        if col in INT_COLUMNS:
            return pa.int64()
        if col in FLOAT_COLUMNS:
            return pa.float64()
        return pa.string()

    return pa.schema([(c, kind(c)) for c in COLUMNS])


def _insert_values(con: Any, rows: list[tuple[Any, ...]]) -> None:
    one = "(" + ", ".join("?" * len(COLUMNS)) + ")"
    for i in range(0, len(rows), 100):
        chunk = rows[i : i + 100]
        con.execute(
            f"INSERT OR IGNORE INTO runs ({', '.join(COLUMNS)}) VALUES {', '.join([one] * len(chunk))}",
            [v for row in chunk for v in row],
        )


def insert_rows(con: Any, rows: list[tuple[Any, ...]]) -> None:
    """INSERT OR IGNORE rows in one statement through an Arrow table (executemany costs ~2 ms a row)."""
    if not rows:
        return
    try:
        import pyarrow as pa

        columns = list(zip(*rows, strict=True))
        arrays = [
            pa.array(values, type=field.type) for values, field in zip(columns, _arrow_schema(), strict=True)
        ]
    except RuntimeError:
        # At interpreter exit pyarrow's lazy pandas import cannot register its atexit hook: a script that
        # ends right after its last run still gets it written, through plain VALUES.
        _insert_values(con, rows)
        return
    table = pa.Table.from_arrays(arrays, schema=_arrow_schema())
    con.register("_nbp_batch", table)
    try:
        con.execute(_INSERT)
    finally:
        con.unregister("_nbp_batch")


def _row_to_json(row: tuple[Any, ...]) -> str:
    out = dict(zip(COLUMNS, row, strict=True))
    out["created_at"] = out["created_at"].isoformat()
    return json.dumps(out, ensure_ascii=False, default=str)


def _row_from_json(line: str) -> tuple[Any, ...]:
    data = json.loads(line)
    data["created_at"] = _utc(datetime.fromisoformat(data["created_at"]))
    return tuple(data.get(c) for c in COLUMNS)


def _pending_files(home: Path) -> list[Path]:
    try:
        return sorted(p for p in (home / "pending").iterdir() if p.suffix == ".jsonl")
    except OSError:
        return []


def _ingest_into(con: Any, home: Path) -> tuple[list[Path], int]:
    """Insert the rows of every spilled file (inside the caller's transaction); return files and rows read.

    The caller deletes them after COMMIT, still under the exclusive lock, so no two processes ingest the
    same file and a crash in between only means an idempotent re-insert next time.
    """
    done, count = [], 0
    for path in _pending_files(home):
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        try:
            rows = [_row_from_json(line) for line in text.splitlines() if line.strip()]
        except (ValueError, KeyError, TypeError) as exc:  # keep it for a human; never block the store
            path.replace(path.with_suffix(".bad"))
            warnings.warn(f"nbplayground history: unreadable pending file {path} ({exc}); renamed to .bad",
                          RuntimeWarning, stacklevel=2)  # fmt: skip
            continue
        insert_rows(con, rows)
        done.append(path)
        count += len(rows)
    return done, count


def _unlink_all(paths: list[Path]) -> None:
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def write_rows(rows: list[tuple[Any, ...]], home: Path, timeout: float | None = None) -> int:
    """Write rows, and the runs of any spilled pending files, in one transaction under the exclusive lock.

    Returns how many spilled runs were taken in.
    """
    with db.connect(write=True, timeout=timeout) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            insert_rows(con, rows)
            ingested, count = _ingest_into(con, home)
            con.execute("COMMIT")
        except BaseException:
            try:
                con.execute("ROLLBACK")
            except Exception:
                pass  # the transaction is already gone; the original error is what matters
            raise
        _unlink_all(ingested)
    return count


# ---------------------------------------------------------------------------------------------------
# The writer
# ---------------------------------------------------------------------------------------------------
class _Flush:
    __slots__ = ("event", "ok")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.ok = True


_STOP = object()


class _Writer:
    """One per process and home: drains the queue in batches, retries failures, spills at exit."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.lock = threading.Lock()  # guards the lists below (the exit handler reads them too)
        self.pending: list[tuple[Any, ...]] = []  # rows waiting to be written (or that failed to be)
        self.inflight: list[tuple[Any, ...]] = []  # rows of the write under way
        self.unserialized: list[RunResult] = []  # results whose media files could not be written yet
        self.warned = False
        self.failures = 0
        self.retry_at = 0.0
        self.thread = threading.Thread(target=self._loop, name="nbplayground-history", daemon=True)
        self.thread.start()

    # The writer thread -------------------------------------------------------------------------------
    def _loop(self) -> None:
        stop = False
        while not stop:
            flushes: list[_Flush] = []
            ok = False
            try:
                stop = self._gather(flushes)
                due = bool(flushes) or stop or time.monotonic() >= self.retry_at
                ok = self._write() if due else False
            except Exception as exc:  # never let the thread die: runs would pile up unwritten
                self._warn(f"unexpected error in the history writer ({type(exc).__name__}: {exc})")
            finally:
                for f in flushes:
                    f.ok = ok
                    f.event.set()

    def _gather(self, flushes: list[_Flush]) -> bool:
        """Wait for work, then take whatever arrives within ``COALESCE_S``; True when told to stop."""
        waiting = self.pending or self.unserialized
        timeout = max(0.0, self.retry_at - time.monotonic()) if waiting else None
        try:
            item = self.queue.get(timeout=timeout)
        except queue.Empty:
            return False
        deadline = time.monotonic() + COALESCE_S
        count = 0
        while True:
            if item is _STOP:
                self._drain(flushes)
                return True
            if isinstance(item, _Flush):
                flushes.append(item)
                return self._drain(flushes)  # a flush cuts the wait short
            self._accept(item)
            count += 1
            left = deadline - time.monotonic()
            if count >= MAX_BATCH:
                return False
            try:
                item = self.queue.get(timeout=left) if left > 0 else self.queue.get_nowait()
            except queue.Empty:
                return False

    def _drain(self, flushes: list[_Flush]) -> bool:
        stop = False
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return stop
            if item is _STOP:
                stop = True
            elif isinstance(item, _Flush):
                flushes.append(item)
            else:
                self._accept(item)

    def _accept(self, result: RunResult) -> None:
        try:
            row = to_row(result, self.home)
        except OSError as exc:  # the media folder is unwritable: keep the result, try again later
            with self.lock:
                self.unserialized.append(result)
            self._failed(f"could not write the media of run {result.id} under {self.home / 'media'} ({exc})")
            return
        with self.lock:
            self.pending.append(row)

    def _write(self) -> bool:
        """Write everything pending; True when nothing is left."""
        with self.lock:
            retry, self.unserialized = self.unserialized, []
        for result in retry:
            self._accept(result)
        with self.lock:
            if not self.pending:
                return not self.unserialized
            batch, self.pending = self.pending, []
            self.inflight = batch
        try:
            write_rows(batch, self.home)
        except Exception as exc:
            with self.lock:
                self.pending = batch + self.pending
                self.inflight = []
            self._failed(
                f"could not write {len(batch)} run(s) to {self.home / db.DB_FILE} ({exc}); they are kept in "
                "memory and written when the store is available again"
            )
            return False
        with self.lock:
            self.inflight = []
            left = bool(self.pending or self.unserialized)
        if not self.unserialized:  # fully recovered: a later outage warns again
            self.failures, self.retry_at, self.warned = 0, 0.0, False
        return not left

    def _failed(self, message: str) -> None:
        self.failures += 1
        self.retry_at = time.monotonic() + min(RETRY_MAX_S, RETRY_MIN_S * 2 ** (self.failures - 1))
        self._warn(message)

    def _warn(self, message: str) -> None:
        if not self.warned:
            self.warned = True
            warnings.warn(f"nbplayground history: {message}", RuntimeWarning, stacklevel=2)

    # Other threads -----------------------------------------------------------------------------------
    def flush(self, timeout: float) -> bool:
        if not self.thread.is_alive():
            return not (self.pending or self.unserialized or self.inflight)
        f = _Flush()
        self.queue.put(f)
        return f.event.wait(timeout) and f.ok

    def spill(self) -> Path | None:
        """Write every run not yet stored (pending, in flight, still queued) to a pending file."""
        with self.lock:
            rows = [*self.inflight, *self.pending]
            results, self.unserialized = self.unserialized, []
            self.pending, self.inflight = [], []
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, RunResult):
                results.append(item)
        for result in results:
            try:
                rows.append(to_row(result, self.home))
            except OSError:
                rows.append(to_row(result, self.home, media_files=False))
        if not rows:
            return None
        folder = self.home / "pending"
        folder.mkdir(mode=0o700, exist_ok=True)
        path = folder / f"{os.getpid()}-{uuid.uuid4().hex}.jsonl"
        tmp = path.with_suffix(".tmp")
        _write_private(tmp, "".join(_row_to_json(r) + "\n" for r in rows).encode("utf-8"))
        tmp.replace(path)  # readers only ever see complete files
        return path


_writers: dict[tuple[int, str | None], _Writer] = {}
_writers_lock = threading.Lock()


def _after_fork_in_child() -> None:
    # The parent's writer thread does not exist in a forked child (writers are keyed by pid), and a lock
    # held by another thread at fork time would never be released here.
    global _writers_lock
    _writers_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _key() -> tuple[int, str | None]:
    # The env var, not config.home(): home() touches the disk, and record() must stay in microseconds.
    return os.getpid(), os.environ.get("NBPLAYGROUND_HOME")


def _writer() -> _Writer:
    key = _key()
    w = _writers.get(key)
    if w is None:
        with _writers_lock:
            w = _writers.get(key)
            if w is None:
                w = _writers[key] = _Writer(config.home())
    return w


def record(result: RunResult) -> None:
    """Store a finished run. Returns at once (microseconds): a background thread writes it.

    Media bytes are written to ``<home>/media/<run id>-<i>.<ext>`` and ``Media.path`` is set on the
    result once written. Secrets in ``params`` are never stored. Call ``flush()`` to wait for the write.
    """
    _writer().queue.put(result)


def backlog() -> int:
    """Runs recorded by this process and not yet written (batch runs throttle on it to bound memory)."""
    w = _writers.get(_key())
    return 0 if w is None else w.queue.qsize() + len(w.pending)


def flush(timeout: float = 30.0) -> bool:
    """Wait until every run this process recorded so far is written.

    Returns True when all are in the store, False when some could not be written yet (they stay in
    memory and are retried; see the warning) or ``timeout`` seconds passed.
    """
    w = _writers.get(_key())
    return True if w is None else w.flush(timeout)


def ingest_pending() -> int:
    """Write runs spilled by processes that could not reach the store, then delete their files."""
    home = config.home()
    return write_rows([], home) if _pending_files(home) else 0


def _at_exit() -> None:
    pid = os.getpid()
    for key, w in list(_writers.items()):
        if key[0] != pid:
            continue
        try:
            if not w.flush(timeout=EXIT_FLUSH_S):
                w.spill()
        except Exception as exc:  # at exit there is no one left to tell but stderr
            warnings.warn(f"nbplayground history: could not save pending runs at exit: {exc}", stacklevel=1)


atexit.register(_at_exit)


def reset_for_tests() -> None:
    """Flush and stop this process's writers and forget per-home state (tests switch homes)."""
    with _writers_lock:
        writers = list(_writers.values())
        _writers.clear()
    for w in writers:
        if w.thread.is_alive():
            w.flush(timeout=10.0)
            w.queue.put(_STOP)
            w.thread.join(10)
    db.forget()


# ---------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------
def _before_read() -> None:
    """Make this process's own runs visible, and take in runs spilled by processes that have exited."""
    flush()
    if _pending_files(config.home()):
        try:
            ingest_pending()
        except StoreError:
            pass  # the read itself will report a broken store


def _read(query: str, params: list[Any] | None = None) -> Any:
    _before_read()
    with db.connect(write=False) as con:
        return con.execute(query, params or []).df()


def _fetch(query: str, params: list[Any]) -> list[dict[str, Any]]:
    _before_read()
    with db.connect(write=False) as con:
        return _dicts(con.execute(query, params))


def _dicts(cursor: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]


def history(
    limit: int = 50,
    offset: int = 0,
    model: str | None = None,
    surface: str | None = None,
    status: str | None = None,
    thread_id: str | None = None,
    group_id: str | None = None,
) -> Any:
    """Recent runs as a pandas DataFrame, newest first; filters combine with AND.

    Columns: id, created_at, surface, model, status, text, error, tokens_in, tokens_out, cost_usd,
    latency_ms, ttft_ms, prompt_ref, thread_id, parent_id, group_id.
    """
    where, args = [], []
    for col, value in (("model", model), ("surface", surface), ("status", status), ("thread_id", thread_id),
                       ("group_id", group_id)):  # fmt: skip
        if value is not None:
            where.append(f"{col} = ?")
            args.append(value)
    clause = f"WHERE {' AND '.join(where)} " if where else ""
    # Only the listed columns, newest first: DuckDB plans a Top-N over (created_at, id) and fetches the
    # wide columns (text) for the 50 winners only. No index helps this (measured; see benchmarks/).
    query = (
        f"SELECT {', '.join(HISTORY_COLUMNS)} FROM runs {clause}"
        "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"
    )
    return _read(query, [*args, max(0, int(limit)), max(0, int(offset))])


def _from_row(row: dict[str, Any]) -> RunResult:
    def load(col: str) -> Any:
        value = row.get(col)
        return json.loads(value) if isinstance(value, str) else value

    def num(col: str) -> Any:
        value = row.get(col)
        return None if value is None or value != value else value  # NaN from pandas -> None

    home = config.home()
    media = []
    for ref in load("media") or []:
        path = home / ref["path"] if ref.get("path") else None
        data = path.read_bytes() if path is not None and path.is_file() else b""
        media.append(Media(mime=ref["mime"], data=data, params=ref.get("params") or {},
                           revised_prompt=ref.get("revised_prompt"), path=ref.get("path")))  # fmt: skip
    calls = [ToolCall(id=t["id"], name=t["name"], arguments=t.get("arguments", ""), result=t.get("result"),
                      error=t.get("error")) for t in load("tool_calls") or []]  # fmt: skip
    created = row.get("created_at")
    return RunResult(
        id=row["id"], model=row["model"], status=row["status"], text=row["text"] or "", error=row["error"],
        error_type=row["error_type"], data=load("data"), tool_calls=calls, media=media,
        tokens_in=None if num("tokens_in") is None else int(row["tokens_in"]),
        tokens_out=None if num("tokens_out") is None else int(row["tokens_out"]),
        cost_usd=num("cost_usd"), latency_ms=num("latency_ms"), ttft_ms=num("ttft_ms"),
        finish_reason=row["finish_reason"], provider=row["provider"], kind=row["kind"], surface=row["surface"],
        messages=load("messages") or [], params=load("params") or {}, variables=load("variables") or {},
        template=load("template"), prompt_ref=row["prompt_ref"], thread_id=row["thread_id"],
        parent_id=row["parent_id"], group_id=row["group_id"], target_index=int(num("target_index") or 0),
        attempts=int(num("attempts") or 1), row_key=row.get("row_key"),
        error_status=None if num("error_status") is None else int(row["error_status"]),
        created_at=_utc(created) if isinstance(created, datetime) else datetime.now(UTC),
    )  # fmt: skip


def get_run(run_id: str) -> RunResult | None:
    """One run with every detail, by id or by a unique prefix of at least 6 characters.

    Returns None when nothing matches; raises ``StoreError`` listing the candidates when a prefix is
    ambiguous. Media bytes are read back from the media folder.
    """
    select = f"SELECT {', '.join(COLUMNS)} FROM runs"
    _before_read()
    with db.connect(write=False) as con:
        rows = _dicts(con.execute(f"{select} WHERE id = ?", [run_id]))
        if not rows and len(run_id) >= 6:
            rows = _dicts(con.execute(f"{select} WHERE starts_with(id, ?) ORDER BY id LIMIT 11", [run_id]))
    if len(rows) > 1:
        shown = ", ".join(r["id"] for r in rows[:10]) + (", ..." if len(rows) > 10 else "")
        raise StoreError(f"Run id prefix {run_id!r} is ambiguous; it matches {shown}. Give more characters.")
    return _from_row(rows[0]) if rows else None


def thread_runs(thread_id: str) -> list[RunResult]:
    """Every run of a named thread, oldest first."""
    rows = _fetch(
        f"SELECT {', '.join(COLUMNS)} FROM runs WHERE thread_id = ? ORDER BY created_at, id", [thread_id]
    )
    return [_from_row(r) for r in rows]


_READ_STATEMENTS = frozenset({"SELECT", "EXPLAIN", "PRAGMA", "CALL"})


def sql(query: str, params: list[Any] | None = None) -> Any:
    """Read-only SQL over the store (tables ``runs``, ``prompts``, ``prompt_labels``) as a DataFrame.

    Runs on a ``read_only`` connection under the shared lock; a statement that would write raises
    ``StoreError``.
    """
    import duckdb

    try:
        kinds = [s.type.name for s in duckdb.extract_statements(query)]
    except duckdb.Error as exc:
        raise StoreError(f"SQL error: {str(exc).splitlines()[0]}") from None
    writes = [k for k in kinds if k not in _READ_STATEMENTS]
    if writes:
        raise StoreError(
            f"History is read-only through sql(); {writes[0]} statements are refused. Runs are written by "
            "nbplayground itself; to change data, query into a DataFrame and work on that."
        )
    try:
        return _read(query, params)
    except duckdb.Error as exc:
        first = str(exc).splitlines()[0]
        if "read-only" in first or "read only" in first.lower():
            raise StoreError(
                f"History is read-only through sql(); runs are written by nbplayground itself. ({first})"
            ) from None
        raise StoreError(f"SQL error: {first}") from None


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


def page(
    limit: int = 50, offset: int = 0, model: str | None = None, status: str | None = None
) -> tuple[list[dict[str, Any]], int]:
    """One page of runs, newest first, with each run's prompt text, and the total that match."""
    where, args = [], []
    for col, value in (("model", model), ("status", status)):
        if value is not None:
            where.append(f"{col} = ?")
            args.append(value)
    clause = f"WHERE {' AND '.join(where)} " if where else ""
    _before_read()
    with db.connect(write=False) as con:
        total = con.execute(f"SELECT count(*) FROM runs {clause}", args).fetchone()[0]
        rows = _dicts(con.execute(
            f"SELECT {', '.join(HISTORY_COLUMNS)}, error_type, error_status, messages FROM runs {clause}"
            "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?", [*args, int(limit), int(offset)],
        ))  # fmt: skip
    for row in rows:
        row["prompt"] = _prompt_text(row.pop("messages"))
    return rows, int(total)
