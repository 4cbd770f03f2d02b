"""The history writer: ``record()`` journals a run on the caller's thread; one thread per process stores it.

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
"""

from __future__ import annotations

import atexit
import os
import queue
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from nbplayground import config
from nbplayground.core.errors import StoreCorruptError, StoreReadOnlyError
from nbplayground.core.types import RunResult
from nbplayground.storage import db, intake, journal, rows

#: How long the writer gathers finished runs into one transaction (each write attaches the file and
#: checkpoints it, a few ms), and the most it gathers before writing.
COALESCE_S = 0.1
MAX_BATCH = 5000
#: While runs keep coming (at least ``BUSY_RUNS`` in the last write: a batch) the writer gathers this long:
#: a write costs the same few ms of attach and checkpoint however many runs it holds (measured: the
#: writer's CPU per run of a 64-wide batch halved from 0.1 s to 0.4 s), and reads flush first anyway.
BUSY_COALESCE_S = 0.4
BUSY_RUNS = 50
#: Queued runs that end the wait at once (bounds memory when runs come faster than the window).
WAKE_AT = 1000
#: Backoff between retries after a failed write: doubles from ``RETRY_MIN_S`` up to ``RETRY_MAX_S``.
RETRY_MIN_S = 0.5
RETRY_MAX_S = 30.0
#: How long the exit handler waits for the final write (what is not written by then stays in the journal).
EXIT_FLUSH_S = 5.0


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
        self.urgent = threading.Event()  # set with a flush or stop: the writer stops gathering
        self.busy = False  # the last write held at least BUSY_RUNS runs
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
        if self.queue.qsize() >= WAKE_AT:
            self.urgent.set()
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
        """Wait for work, then take whatever arrives within ``COALESCE_S`` (``BUSY_COALESCE_S`` while a batch
        is recording); True when told to stop."""
        timeout = max(0.0, self.retry_at - time.monotonic()) if self.pending else None
        try:
            item = self.queue.get(timeout=timeout)
        except queue.Empty:
            return False
        if item is not _STOP and not isinstance(item, _Flush):
            # Sleep through the window and take the runs at once: waking for each one (a batch records
            # ~1,000 a second) handed the GIL back and forth with the recording thread for every run.
            # a flush, a stop or a long queue cuts it short
            self.urgent.wait(max(COALESCE_S, BUSY_COALESCE_S) if self.busy else COALESCE_S)
        self.urgent.clear()
        return self._drain(flushes, item)

    def _drain(self, flushes: list[_Flush], item: Any = None) -> bool:
        """Take ``item`` and what is queued (at most ``MAX_BATCH`` runs, all of it after a flush or stop)."""
        stop = False
        items: list[_Item] = []
        while True:
            if item is _STOP:
                stop = True
            elif isinstance(item, _Flush):
                flushes.append(item)
            elif item is not None:
                items.append(item)
            if len(items) >= MAX_BATCH and not (stop or flushes):
                self.urgent.set()  # more is queued already: no need to wait for it
                break
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
        with self.lock:
            self.pending.extend(items)
        self.busy = len(items) >= BUSY_RUNS
        return stop

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
        self.urgent.set()
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
            w.urgent.set()
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


def unstored_rows() -> list[rows.Row]:
    """This process's rows recorded and not stored yet (being written, or waiting for the store)."""
    w = _writers.get(_key())
    if w is None:
        return []
    with w.lock:
        return [row for row, _ in (*w.inflight, *w.pending)]
