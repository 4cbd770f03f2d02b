"""The one DuckDB file, shared safely by many processes and threads.

DuckDB allows a single read-write process per file, and a read-only opener conflicts with a writer in
another process. Kernels, several notebooks and the Jupyter server all write history, and each must work
with no server running. So every access is a *short-lived* connection taken behind a cross-process lock
file (``history.lock``): writers hold it exclusively, readers share it (``fcntl.flock``; on Windows, where
there is no shared flock, ``filelock`` serializes everyone). DuckDB itself therefore never sees a
conflicting opener and no caller ever sees a DuckDB lock error: at worst it waits a few milliseconds.
Writes are batched by a background thread (see ``history``), so the lock is held rarely and briefly.

Inside one process DuckDB keeps a cache of open database instances per path, and refuses a second
opener of the same path with a different ``read_only`` setting. A process-wide thread lock therefore
serializes openers too, and a nested ``connect()`` on the same thread reuses the open connection.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nbplayground import config
from nbplayground.core.errors import StoreError

DB_FILE = "history.duckdb"
LOCK_FILE = "history.lock"
#: Seconds to wait for the cross-process lock before giving up (the history writer then keeps its runs
#: in memory and retries later; a reader gets a ``StoreError``). Tests shorten it.
LOCK_TIMEOUT = 30.0

_thread_lock = threading.RLock()  # one DuckDB opener at a time in this process (instance cache rules)
_local = threading.local()  # the connection this thread has open, for nested connect() calls
_migrated: set[str] = set()


def db_path() -> Path:
    """Path of the history database in the current home."""
    return config.home() / DB_FILE


def _sleep_until(deadline: float, delay: float) -> float:
    """Sleep a little (growing backoff, capped); raise ``TimeoutError`` once past ``deadline``."""
    now = time.monotonic()
    if now >= deadline:
        raise TimeoutError
    time.sleep(min(delay, deadline - now))
    return min(delay * 1.5, 0.05)


class FileLock:
    """A shared or exclusive advisory lock on a file, polled with backoff until ``timeout`` seconds.

    POSIX: ``fcntl.flock`` (``LOCK_SH`` for readers, ``LOCK_EX`` for writers). Windows has no shared
    flock, so there ``filelock``'s exclusive lock serializes readers and writers alike.
    """

    def __init__(self, path: Path, shared: bool, timeout: float) -> None:
        self.path, self.shared, self.timeout = path, shared, timeout
        self._fd: int | None = None
        self._fallback: Any = None

    def _timeout_error(self) -> StoreError:
        return StoreError(
            f"The history store {self.path.with_name(DB_FILE)} stayed locked by another process for "
            f"{self.timeout:g} s (lock file {self.path})."
        )

    def __enter__(self) -> FileLock:
        try:
            import fcntl
        except ImportError:  # Windows
            import filelock

            self._fallback = filelock.FileLock(str(self.path), timeout=self.timeout)
            try:
                self._fallback.acquire(poll_interval=0.005)
            except filelock.Timeout:
                raise self._timeout_error() from None
            return self
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(f"Could not open the history lock file {self.path}: {exc}") from None
        mode = (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
        deadline, delay = time.monotonic() + self.timeout, 0.001
        while True:
            try:
                fcntl.flock(fd, mode)
                break
            except BlockingIOError:
                try:
                    delay = _sleep_until(deadline, delay)
                except TimeoutError:
                    os.close(fd)
                    raise self._timeout_error() from None
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fallback is not None:
            self._fallback.release()
            self._fallback = None
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases its flock
            self._fd = None


def _open(path: Path, write: bool, deadline: float) -> Any:
    """Open DuckDB; a lock conflict with a foreign opener (say a DuckDB CLI) is waited out, not raised."""
    import duckdb

    delay = 0.005
    while True:
        try:
            return duckdb.connect(str(path), read_only=not write)
        except duckdb.Error as exc:
            message = str(exc).splitlines()[0]
            if "lock" in message.lower():
                try:
                    delay = _sleep_until(deadline, delay)
                    continue
                except TimeoutError:
                    pass
            raise StoreError(f"Could not open the history store {path}: {message}") from None


def _private(path: Path) -> None:
    """Make a file DuckDB created (the database, its WAL) readable by its owner only.

    DuckDB creates files with the process umask (usually 0644) and has no setting for it; the home is
    0700 already, this keeps the files private even if the folder is opened up later.
    """
    if os.name != "posix":
        return
    try:
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
    except OSError:
        pass  # not there: the WAL exists only between a write and the checkpoint at close


def _lock(path: Path, shared: bool, timeout: float | None) -> FileLock:
    return FileLock(
        path.parent / LOCK_FILE, shared=shared, timeout=LOCK_TIMEOUT if timeout is None else timeout
    )


def ensure_ready(timeout: float | None = None) -> Path:
    """Create the database if needed and apply missing migrations, once per process and file.

    Runs under the exclusive lock, so concurrent first openers in other processes wait for it.
    """
    path = db_path()
    key = str(path)
    if key in _migrated and path.exists():
        return path
    from nbplayground.storage.migrations import migrate

    with _thread_lock:
        if key in _migrated and path.exists():
            return path
        lock = _lock(path, shared=False, timeout=timeout)
        with lock:
            con = _open(path, write=True, deadline=time.monotonic() + lock.timeout)
            try:
                migrate(con)
            finally:
                con.close()
            _private(path)  # once per process and file: DuckDB may just have created it
        _migrated.add(key)
    return path


@contextmanager
def connect(write: bool, timeout: float | None = None) -> Iterator[Any]:
    """A short-lived DuckDB connection behind the cross-process lock (exclusive to write, shared to read).

    The first open in a process creates and migrates the file. Readers get a ``read_only`` connection.
    A nested ``connect()`` on the same thread reuses the outer connection (a writer may read; a reader
    asking to write is a bug and raises). Do not call ``history.flush()`` inside: the writer thread
    needs this lock.
    """
    outer = getattr(_local, "open", None)
    if outer is not None:
        con, outer_write = outer
        if write and not outer_write:
            raise StoreError("Cannot write to the history store inside a read-only connect() block.")
        cursor = con.cursor()
        try:
            yield cursor
        finally:
            cursor.close()
        return
    path = ensure_ready(timeout)
    with _thread_lock:
        lock = _lock(path, shared=not write, timeout=timeout)
        with lock:
            con = _open(path, write=write, deadline=time.monotonic() + lock.timeout)
            _local.open = (con, write)
            try:
                yield con
            finally:
                _local.open = None
                if write:  # a crash before the checkpoint at close leaves the WAL behind: keep it private
                    _private(path.with_name(path.name + ".wal"))
                con.close()


def _after_fork_in_child() -> None:
    # A lock held by another thread at fork time would never be released in the child.
    global _thread_lock, _local
    _thread_lock = threading.RLock()
    _local = threading.local()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def forget() -> None:
    """Forget which databases were migrated (tests switch homes and rebuild files)."""
    _migrated.clear()
