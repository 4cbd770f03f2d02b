"""The one DuckDB file, shared safely by many processes.

DuckDB allows a single read-write process per file, and a read-only opener conflicts with a writer in
another process. Kernels, several notebooks and the Jupyter server all write history, and each must work
with no server running. So every access is a *short-lived* connection taken behind a cross-process lock
file (``history.lock``): writers hold it exclusively, readers share it. DuckDB itself therefore never
sees a conflicting opener, and no caller ever sees a DuckDB lock error — at worst it waits a few ms.
Writes are batched by a background thread (see ``history``), so the lock is held rarely and briefly.
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
#: Seconds to wait for the cross-process lock before giving up (the writer then keeps runs in memory).
LOCK_TIMEOUT = 30.0

_thread_lock = threading.RLock()  # one DuckDB opener at a time in this process (instance cache rules)
_migrated: set[str] = set()


def db_path() -> Path:
    """Path of the history database in the current home."""
    return config.home() / DB_FILE


class FileLock:
    """A shared/exclusive advisory lock on a file (fcntl.flock; exclusive-only fallback elsewhere)."""

    def __init__(self, path: Path, shared: bool, timeout: float) -> None:
        self.path, self.shared, self.timeout = path, shared, timeout
        self._fd: int | None = None

    def __enter__(self) -> FileLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.timeout
        delay = 0.002
        try:
            import fcntl

            mode = (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
            while True:
                try:
                    fcntl.flock(fd, mode)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise TimeoutError from None
                    time.sleep(delay)
                    delay = min(delay * 1.5, 0.05)
        except ImportError:  # Windows: msvcrt has no shared locks; serialize everyone
            import msvcrt

            while True:
                try:
                    msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                    break
                except OSError:
                    if time.monotonic() >= deadline:
                        raise TimeoutError from None
                    time.sleep(delay)
                    delay = min(delay * 1.5, 0.05)
        except TimeoutError:
            os.close(fd)
            raise StoreError(
                f"The history store {self.path.parent} stayed locked by another process for {self.timeout:g} s."
            ) from None
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            try:
                import fcntl

                fcntl.flock(self._fd, fcntl.LOCK_UN)
            except ImportError:
                import msvcrt

                msvcrt.locking(self._fd, msvcrt.LK_UNLCK, 1)
            os.close(self._fd)
            self._fd = None


def _open(path: Path, write: bool) -> Any:
    import duckdb

    try:
        return duckdb.connect(str(path), read_only=not write)
    except duckdb.Error as exc:
        raise StoreError(f"Could not open the history store {path}: {exc}") from None


def ensure_ready(timeout: float | None = None) -> Path:
    """Create and migrate the database once per process (under the exclusive lock)."""
    path = db_path()
    key = str(path)
    if key in _migrated and path.exists():
        return path
    from nbplayground.storage.migrations import migrate

    with _thread_lock, FileLock(path.parent / LOCK_FILE, shared=False, timeout=timeout or LOCK_TIMEOUT):
        con = _open(path, write=True)
        try:
            migrate(con)
        finally:
            con.close()
        _migrated.add(key)
    return path


@contextmanager
def connect(write: bool, timeout: float | None = None) -> Iterator[Any]:
    """A short-lived DuckDB connection behind the cross-process lock (exclusive to write, shared to read)."""
    path = ensure_ready(timeout)
    with _thread_lock, FileLock(path.parent / LOCK_FILE, shared=not write, timeout=timeout or LOCK_TIMEOUT):
        con = _open(path, write=write)
        try:
            yield con
        finally:
            con.close()


def forget() -> None:
    """Forget which databases were migrated (tests switch homes)."""
    _migrated.clear()
