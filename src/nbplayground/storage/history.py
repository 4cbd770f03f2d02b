"""Run history: every run from every surface, on disk before ``record()`` returns, in DuckDB soon after.

``record()`` turns the finished result into its stored row (media bytes to files, secrets scrubbed, every
value made storable: see ``rows``), appends that row to this process's journal (``journal``: one JSON
line, written and flushed) and queues it: ~0.1 ms for the caller. One daemon writer thread per process
and home drains the queue in batches, one short exclusive-lock transaction per batch (``intake``), then
empties the journal. Whatever happens to the process once ``record()`` has returned (SIGKILL, OOM, a
kernel restart, exit), the run is in the journal, and the next process that opens the store takes it in.

If the store is broken, locked or read-only, the writer warns once, keeps the runs in memory (and in the
journal) and retries with backoff (at once when someone calls ``flush()``). A row DuckDB refuses even
alone is quarantined and reported once. At interpreter exit the last runs are written with plain VALUES
(DuckDB refuses to scan Python objects then); what cannot be written stays in the journal. A run is
never lost and never written twice (a run id already stored is skipped).

duckdb, pandas and pyarrow are imported on first use, never at import time.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nbplayground import config
from nbplayground.core.errors import StoreCorruptError, StoreError, StoreReadOnlyError
from nbplayground.core.types import Media, RunResult, ToolCall
from nbplayground.storage import db, intake, journal, rows
from nbplayground.storage.rows import (  # noqa: F401  (the store's row vocabulary, re-exported)
    COLUMNS,
    FLOAT_COLUMNS,
    INT_COLUMNS,
    JSON_COLUMNS,
    media_extension,
    safe_params,
    to_row,
)

HISTORY_COLUMNS = (
    "id", "created_at", "surface", "model", "status", "text", "error", "tokens_in", "tokens_out", "cost_usd",
    "latency_ms", "ttft_ms", "prompt_ref", "thread_id", "parent_id", "group_id",
)  # fmt: skip

#: How long the writer gathers finished runs into one transaction (each write attaches the file and
#: checkpoints it, a few ms), and the most it gathers before writing.
COALESCE_S = 0.1
MAX_BATCH = 5000
#: Backoff between retries after a failed write: doubles from ``RETRY_MIN_S`` up to ``RETRY_MAX_S``.
RETRY_MIN_S = 0.5
RETRY_MAX_S = 30.0
#: How long the exit handler waits for the final write (what is not written by then stays in the journal).
EXIT_FLUSH_S = 5.0

insert_rows = rows.insert
_write_private = rows.write_private
_row_to_json = rows.to_json
_row_from_json = rows.from_json
_utc = rows.timestamp


# ---------------------------------------------------------------------------------------------------
# The writer
# ---------------------------------------------------------------------------------------------------
class _Flush:
    __slots__ = ("event", "ok")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.ok = True


_STOP = object()
_Item = tuple[rows.Row, "journal.Ref | None"]


class _Writer:
    """One per process and home: journals runs on the caller's thread, stores them in batches on its own."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.journal = journal.Journal(home)
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.lock = threading.Lock()  # guards the lists below (the exit handler reads them too)
        self.pending: list[_Item] = []  # rows waiting to be written (or that failed to be)
        self.inflight: list[_Item] = []  # rows of the write under way
        self.warned = False
        self.failures = 0
        self.retry_at = 0.0
        self.exiting = False  # at interpreter exit: plain VALUES, this process's runs only
        self.thread = threading.Thread(target=self._loop, name="nbplayground-history", daemon=True)
        self.thread.start()

    # The caller's thread -----------------------------------------------------------------------------
    def record(self, result: RunResult) -> None:
        problems: list[str] = []
        row = rows.to_row(result, self.home, fallback=self.journal.spare, problems=problems)
        line = rows.to_json(row)
        j = self.journal
        with j.lock:  # journal order is queue order: the writer empties the journal exactly when it may
            ref = j.append(line)
            self.queue.put((row, ref))
            notice, j.notice = j.notice, None
        if notice is not None or problems or ref is None:
            if notice is not None:
                self._warn(notice)
            for problem in problems:
                self._warn(problem, again=True)
            if ref is None:
                self._warn(f"{j.broken}; run {row[0]} is kept in memory only until it is stored")

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
        timeout = max(0.0, self.retry_at - time.monotonic()) if self.pending else None
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
            with self.lock:
                self.pending.append(item)
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
                with self.lock:
                    self.pending.append(item)

    def _write(self) -> bool:
        """Write everything pending; True when nothing is left."""
        with self.lock:
            if not self.pending:
                return True
            batch, self.pending = self.pending, []
            self.inflight = batch
        written = None
        for attempt in (0, 1):
            try:
                written = intake.write_rows([row for row, _ in batch], self.home, plain=self.exiting,
                                            others=not self.exiting, fallback=self.journal.fallback)  # fmt: skip
                break
            except StoreCorruptError as exc:  # set aside and replaced by a new store: write there, once
                error: Exception = exc
                if attempt:
                    break
            except Exception as exc:
                error = exc
                break
        if written is None:
            with self.lock:
                self.pending = batch + self.pending
                self.inflight = []
            self._failed(self._failure(len(batch), error))
            return False
        self.journal.release([ref for _, ref in batch])
        with self.lock:
            self.inflight = []
            left = bool(self.pending)
        self.failures, self.retry_at, self.warned = 0, 0.0, False  # recovered: a later outage warns again
        _report(written)
        return not left

    def _failure(self, count: int, exc: BaseException) -> str:
        kept = "in memory" + (f" and in the journal {self.journal.paths[-1]}" if self.journal.paths else "")
        if isinstance(exc, StoreReadOnlyError):
            return (f"{exc} The {count} run(s) of this process are kept {kept}, and stored when it can be "
                    "written")  # fmt: skip
        return (f"could not write {count} run(s) to {self.home / db.DB_FILE} ({exc}); they are kept {kept} "
                "and written when the store is available again")  # fmt: skip

    def _failed(self, message: str) -> None:
        self.failures += 1
        self.retry_at = time.monotonic() + min(RETRY_MAX_S, RETRY_MIN_S * 2 ** (self.failures - 1))
        self._warn(message)

    def _warn(self, message: str, again: bool = False) -> None:
        """One warning per outage (``again``: every time, for news such as a quarantined run)."""
        if again or not self.warned:
            self.warned = self.warned or not again
            warnings.warn(f"nbplayground history: {message}", RuntimeWarning, stacklevel=3)

    # Other threads -----------------------------------------------------------------------------------
    def flush(self, timeout: float) -> bool:
        if not self.thread.is_alive():
            return not (self.pending or self.inflight)
        f = _Flush()
        self.queue.put(f)
        return f.event.wait(timeout) and f.ok

    def unstored(self) -> int:
        """Runs recorded and not yet stored."""
        return self.queue.qsize() + len(self.pending) + len(self.inflight)


_writers: dict[tuple[int, str | None], _Writer] = {}
_writers_lock = threading.Lock()


def _after_fork_in_child() -> None:
    # The parent's writer thread does not exist in a forked child (writers are keyed by pid), and a lock
    # held by another thread at fork time would never be released here. The parent's journal descriptors
    # are closed: the parent keeps its files and their locks, the child journals in its own file.
    global _writers_lock
    _writers_lock = threading.Lock()
    for w in _writers.values():
        w.journal.forget_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _key() -> tuple[int, str | None]:
    # The env var, not config.home(): home() touches the disk, and record() must stay fast.
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
    """Store a finished run: on disk (the journal) when this returns, in the history soon after.

    Never raises. Media bytes are written to ``<home>/media/<run id>-<i>.<ext>`` and ``Media.path`` is set
    on the result. Secrets are never stored. Call ``flush()`` to wait until the run is in the database.
    """
    try:
        _writer().record(result)
    except Exception as exc:  # a bug must not cost the caller its result; the warning says what was lost
        warnings.warn(f"nbplayground history: could not record run {getattr(result, 'id', '?')} "
                      f"({type(exc).__name__}: {exc})", RuntimeWarning, stacklevel=2)  # fmt: skip


def backlog() -> int:
    """Runs recorded by this process and not yet written (batch runs throttle on it to bound memory)."""
    w = _writers.get(_key())
    return 0 if w is None else w.queue.qsize() + len(w.pending)


def flush(timeout: float = 30.0) -> bool:
    """Wait until every run this process recorded so far is written.

    Returns True when all are in the store, False when some could not be written yet (they stay in
    memory and in the journal and are retried; see the warning) or ``timeout`` seconds passed.
    """
    w = _writers.get(_key())
    return True if w is None else w.flush(timeout)


def _report(written: intake.Written) -> None:
    """Say once (in the process that did it) that runs were quarantined, and where."""
    if written.quarantined:
        warnings.warn(
            f"nbplayground history: {written.quarantined} run(s) could not be stored (DuckDB refused them "
            f"even alone, or a file line was not a run); they are quarantined in {written.quarantine_file} "
            "with the error (see nbp.store_status())",
            RuntimeWarning,
            stacklevel=3,
        )


def ingest_pending() -> int:
    """Store the runs other processes left (journals of processes that are gone, pending files)."""
    home = config.home()
    if not intake.waiting(home):
        return 0
    written = intake.write_rows([], home)
    _report(written)
    return written.taken_in


def _at_exit() -> None:
    pid = os.getpid()
    for key, w in list(_writers.items()):
        if key[0] != pid:
            continue
        w.exiting = True
        try:
            stored = w.flush(timeout=EXIT_FLUSH_S)
        except Exception:
            stored = False
        if stored:
            w.journal.close()  # everything is in the store: the journal files go
        elif w.journal.broken is not None and w.unstored():
            # journaled runs wait for the next process; these could not be journaled anywhere
            warnings.warn(f"nbplayground history: {w.unstored()} run(s) could not be stored or journaled "
                          f"({w.journal.broken}) and are lost at exit", RuntimeWarning, stacklevel=1)  # fmt: skip


atexit.register(_at_exit)


def reset_for_tests() -> None:
    """Flush and stop this process's writers and forget per-home state (tests switch homes)."""
    with _writers_lock:
        writers = list(_writers.values())
        _writers.clear()
    for w in writers:
        if w.thread.is_alive():
            stored = w.flush(timeout=10.0)
            w.queue.put(_STOP)
            w.thread.join(10)
            if stored:
                w.journal.close()
            else:  # unstored runs stay in their journal, for the next writer of that home
                w.journal.forget_in_child()
    db.forget()


def writer_state() -> tuple[int, Path | None]:
    """This process's unstored runs, and its fallback home (if the home could not take its journal)."""
    w = _writers.get(_key())
    if w is None:
        return 0, None
    return w.unstored(), w.journal.fallback


# ---------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------
def _before_read() -> None:
    """Make this process's own runs visible, and take in runs left by processes that are gone."""
    flush()
    home = config.home()
    if intake.waiting(home):
        try:
            ingest_pending()
        except StoreError:
            pass  # the read itself will report a broken store


def _unstored_rows() -> list[rows.Row]:
    w = _writers.get(_key())
    if w is None:
        return []
    with w.lock:
        return [row for row, _ in (*w.inflight, *w.pending)]


@contextmanager
def _reader() -> Iterator[Any]:
    """A read attachment of the store that also shows this process's runs not stored yet.

    After the flush in ``_before_read`` there are such runs only when the store cannot take them (a
    read-only home): a temporary view named ``runs`` (visible to this cursor only) adds them.
    """
    local = _unstored_rows()
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


def _read(query: str, params: list[Any] | None = None) -> Any:
    _before_read()
    with _reader() as con:
        return con.execute(query, params or []).df()


def _fetch(query: str, params: list[Any]) -> list[dict[str, Any]]:
    _before_read()
    with _reader() as con:
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
        try:
            return json.loads(value) if isinstance(value, str) else value
        except ValueError:  # stored by hand or by an old version: the text is still worth showing
            return value

    def items(col: str) -> list[dict[str, Any]]:  # what a stored list holds that can be shown (dicts)
        value = load(col)
        return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []

    def num(col: str) -> Any:
        value = row.get(col)
        return None if value is None or value != value else value  # NaN from pandas -> None

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
        tokens_in=None if num("tokens_in") is None else int(row["tokens_in"]),
        tokens_out=None if num("tokens_out") is None else int(row["tokens_out"]),
        cost_usd=num("cost_usd"), latency_ms=num("latency_ms"), ttft_ms=num("ttft_ms"),
        finish_reason=row["finish_reason"], provider=row["provider"], kind=row["kind"], surface=row["surface"],
        messages=load("messages") or [], params=load("params") or {}, variables=load("variables") or {},
        template=load("template"), prompt_ref=row["prompt_ref"], thread_id=row["thread_id"],
        parent_id=row["parent_id"], group_id=row["group_id"], target_index=int(num("target_index") or 0),
        attempts=int(num("attempts") or 1), row_key=row.get("row_key"),
        error_status=None if num("error_status") is None else int(row["error_status"]),
        reasoning=row.get("reasoning"), error_detail=row.get("error_detail"),
        tokens_estimated=bool(row.get("tokens_estimated")),
        created_at=_utc(created) if isinstance(created, datetime) else datetime.now(UTC),
    )  # fmt: skip


def get_run(run_id: str) -> RunResult | None:
    """One run with every detail, by id or by a unique prefix of at least 6 characters.

    Returns None when nothing matches; raises ``StoreError`` listing the candidates when a prefix is
    ambiguous. Media bytes are read back from the media folder.
    """
    select = f"SELECT {', '.join(COLUMNS)} FROM runs"
    _before_read()
    with _reader() as con:
        rows = _dicts(con.execute(f"{select} WHERE id = ?", [run_id]))
        if not rows and len(run_id) >= 6:
            rows = _dicts(con.execute(f"{select} WHERE starts_with(id, ?) ORDER BY id LIMIT 11", [run_id]))
    if len(rows) > 1:
        shown = ", ".join(r["id"] for r in rows[:10]) + (", ..." if len(rows) > 10 else "")
        raise StoreError(f"Run id prefix {run_id!r} is ambiguous; it matches {shown}. Give more characters.")
    return _from_row(rows[0]) if rows else None


def near_ids(run_id: str, n: int = 3) -> list[str]:
    """Ids of recent runs that look like ``run_id`` (for "did you mean"), closest first."""
    import difflib

    _before_read()
    with _reader() as con:
        recent = [r[0] for r in con.execute("SELECT id FROM runs ORDER BY created_at DESC LIMIT 5000").fetchall()]
    size = max(len(run_id), 8)
    heads = {rid[:size]: rid for rid in recent}
    return [heads[h] for h in difflib.get_close_matches(run_id, list(heads), n=n, cutoff=0.5)]


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
    with _reader() as con:
        total = con.execute(f"SELECT count(*) FROM runs {clause}", args).fetchone()[0]
        rows = _dicts(con.execute(
            f"SELECT {', '.join(HISTORY_COLUMNS)}, error_type, error_status, messages FROM runs {clause}"
            "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?", [*args, int(limit), int(offset)],
        ))  # fmt: skip
    for row in rows:
        row["prompt"] = _prompt_text(row.pop("messages"))
    return rows, int(total)
