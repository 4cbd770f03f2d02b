"""The one DuckDB file, shared safely by many processes and threads.

DuckDB allows a single read-write process per file, and a read-only opener conflicts with a writer in
another process. Kernels, several notebooks and the Jupyter server all write history, and each must work
with no server running. So every access is a *short-lived* attachment of the file behind a cross-process
lock file (``history.lock``): writers hold it exclusively, readers share it (``fcntl.flock``; on Windows,
where there is no shared flock, ``filelock`` serializes everyone). DuckDB itself therefore never sees a
conflicting opener and no caller ever sees a DuckDB lock error: at worst it waits a few milliseconds.
Writes are batched by a background thread (see ``history``), so the lock is held rarely and briefly.

Each process keeps in-memory DuckDB instances (one to read, one single-threaded to write) and ATTACHes
the file for each access (DETACH checkpoints and lets the file go). Creating a DuckDB instance costs
17-30 ms of CPU (its built-in extensions), attaching a file about 1 ms: storing one run went from ~40 to
~7 ms of process CPU, opening the store to read from ~27 to ~2 ms (benchmarks/README.md). Inside the
process a thread lock serializes openers, and a nested ``connect()`` on the same thread reuses the open
attachment.

Every failure is a ``StoreError`` naming the file and saying what to do:

- a damaged file (not a DuckDB file, a checksum mismatch, cut short) is set aside, never deleted: under
  the exclusive lock it is renamed ``history.corrupt-<time>.duckdb`` (its WAL with it), a new store is
  created, and one warning says how to copy back what DuckDB can still read (``nbp.store_recover``);
- a read-only home (shared, mounted, archived): readers open the lock file read-only, or go without it
  when it does not exist and cannot be created (then no one can write there either), and attach the file
  ``READ_ONLY``; a writer gets ``StoreReadOnlyError`` (the history writer keeps runs in its journal);
- a file locked by a foreign opener (a DuckDB CLI) is waited out up to ``LOCK_TIMEOUT``.
"""

from __future__ import annotations

import errno
import os
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

DB_FILE = "history.duckdb"
LOCK_FILE = "history.lock"
#: Seconds to wait for the cross-process lock before giving up (the history writer then keeps its runs
#: in memory and retries later; a reader gets a ``StoreError``). Tests shorten it.
LOCK_TIMEOUT = 30.0

#: The name the history file is attached under in this process's DuckDB instance.
ALIAS = "nbp_store"
#: What a damaged file makes DuckDB say (unlike a lock, a permission, a full disk or a newer format).
_DAMAGED = ("not a valid duckdb database file", "corrupt database file", "could not read enough bytes",
            "does not match stored checksum", "failed to deserialize")  # fmt: skip
_READ_ONLY = ("read-only file system", "permission denied", "read only file system")
_READ_ONLY_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})

_thread_lock = threading.RLock()  # one DuckDB access at a time in this process
_local = threading.local()  # the attachment this thread has open, for nested connect() calls
_migrated: set[str] = set()
#: This process's in-memory DuckDB instances the file is attached to: one to read (every core, for a
#: user's SQL) and one to write (one thread: DuckDB wakes its workers for every statement, and a
#: write of a few rows costs ~1 ms less of CPU alone).
_instances: dict[bool, Any] = {}


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
            f"{self.timeout:g} s (lock file {self.path}); try again, or close the program that holds it "
            "(a DuckDB shell, say)."
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
            except OSError as exc:  # a read-only home
                self._fallback = None
                if self.shared:
                    return self
                raise StoreReadOnlyError(f"The history store {self.path.with_name(DB_FILE)} cannot be written "
                                         f"here ({exc}). Reads work; make the folder writable.") from None  # fmt: skip
            return self
        fd = self._open_file()
        if fd is None:  # a read-only home without a lock file: no one can write there to lock against
            return self
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

    def _open_file(self) -> int | None:
        """The lock file: created by writers; a reader opens it read-only, or goes without it when it
        does not exist and cannot be created (a read-only home)."""
        if self.shared:
            try:
                return os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise StoreError(f"Could not open the history lock file {self.path}: {exc}; check that "
                                 "you may read that folder.") from None  # fmt: skip
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            if exc.errno not in _READ_ONLY_ERRNOS:
                raise StoreError(f"Could not open the history lock file {self.path}: {exc}") from None
            if self.shared:
                return None
            raise StoreReadOnlyError(
                f"The history store {self.path.with_name(DB_FILE)} cannot be written here: its folder is "
                f"read-only ({exc.strerror}). Reads work; make the folder writable to store new runs."
            ) from None

    def __exit__(self, *exc: object) -> None:
        if self._fallback is not None:
            self._fallback.release()
            self._fallback = None
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases its flock
            self._fd = None


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def damaged(exc: BaseException) -> bool:
    """Whether a DuckDB error says the file itself is damaged (not locked, unreadable or too new)."""
    message = str(exc).lower()
    return any(d in message for d in _DAMAGED) and "version" not in message


def store_error(path: Path, exc: BaseException, write: bool) -> StoreError:
    """The ``StoreError`` for a DuckDB failure on the store: it names the file and says what to do."""
    message = _first_line(exc)
    low = message.lower()
    if damaged(exc):
        return StoreCorruptError(f"The history store {path} is damaged ({message}).")
    if write and any(r in low for r in _READ_ONLY):
        return StoreReadOnlyError(
            f"The history store {path} cannot be written here ({message}). Reads work; make the file and "
            "its folder writable to store new runs."
        )
    if "no space left" in low or "disk is full" in low or "disk full" in low:
        return StoreError(f"The history store {path} could not be written: the disk is full ({message}). "
                          "Free some space; runs are kept in the journal meanwhile.")  # fmt: skip
    return StoreError(f"Could not open the history store {path}: {message}. It must be a DuckDB file "
                      "nbplayground can read and write; meanwhile new runs wait in the journal.")  # fmt: skip


def _duck(write: bool) -> Any:
    inst = _instances.get(write)
    if inst is None:
        import duckdb

        inst = _instances[write] = duckdb.connect(":memory:", config={"threads": 1} if write else {})
    return inst


def _drop_instance(write: bool) -> None:
    """Close a DuckDB instance (a DETACH that failed, a fatal error): the next use makes a new one."""
    inst = _instances.pop(write, None)
    if inst is not None:
        try:
            inst.close()
        except Exception:
            pass


def _quote(path: Path | str) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _attach(path: Path | str, write: bool, deadline: float) -> Any:
    """A cursor with the file attached as ``ALIAS`` and in ``USE`` (so ``runs`` names its table).

    A lock conflict with a foreign opener (say a DuckDB CLI) is waited out until ``deadline``, not raised.
    """
    import duckdb

    sql = f"ATTACH {_quote(path)} AS {ALIAS}" + ("" if write else " (READ_ONLY)")
    delay, renewed = 0.005, False
    while True:
        cur = _duck(write).cursor()
        try:
            cur.execute(sql)
            cur.execute(f"USE {ALIAS}")
            return cur
        except duckdb.Error as exc:
            cur.close()
            low = _first_line(exc).lower()
            if not renewed and ("invalidated" in low or "already attached" in low or "already exists" in low):
                _drop_instance(write)  # left unusable by an earlier failure: a fresh instance, once
                renewed = True
                continue
            if ("could not set lock" in low or "conflicting lock" in low) and not damaged(exc):
                try:
                    delay = _sleep_until(deadline, delay)
                    continue
                except TimeoutError:
                    pass
            raise store_error(Path(path), exc, write) from None


def _detach(cur: Any, write: bool) -> None:
    """Close the cursor and DETACH the file (which checkpoints its WAL into it and lets the file go)."""
    try:
        cur.close()  # rolls back whatever transaction a failure left open
    except Exception:
        pass
    try:
        _duck(write).execute(f"DETACH DATABASE IF EXISTS {ALIAS}")
    except Exception:  # a checkpoint on a full disk, say: closing the instance lets the file go all the same
        _drop_instance(write)


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


def _duck_error(exc: BaseException) -> bool:
    import duckdb

    return isinstance(exc, duckdb.Error)


#: DuckDB errors that are about the store (its file, the disk, DuckDB itself), not about a query or a row.
_STORE_FAILURES = ("IOException", "FatalException", "InternalException", "PermissionException",
                   "OutOfMemoryException", "SerializationException")  # fmt: skip


def _store_failure(exc: BaseException) -> bool:
    return damaged(exc) or any(c.__name__ in _STORE_FAILURES for c in type(exc).__mro__)


def _names_other_file(path: Path, exc: BaseException) -> bool:
    quoted = str(exc).split('"')[1::2]
    return any(os.sep in q and q not in (str(path), f"{path}.wal") for q in quoted)


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def corrupt_name(path: Path) -> Path:
    """A free ``history.corrupt-<UTC time>.duckdb`` name beside ``path``."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target, n = path.with_name(f"{path.stem}.corrupt-{stamp}{path.suffix}"), 1
    while target.exists() or target.with_name(target.name + ".wal").exists():
        n += 1
        target = path.with_name(f"{path.stem}.corrupt-{stamp}-{n}{path.suffix}")
    return target


def corrupt_files(home: Path) -> list[Path]:
    """Damaged stores set aside in ``home`` (kept until a person deletes them)."""
    return sorted(
        p for p in home.glob(f"{Path(DB_FILE).stem}.corrupt-*{Path(DB_FILE).suffix}") if p.is_file()
    )


def set_aside(path: Path, error: StoreError, seen: tuple[int, int, int] | None,
              timeout: float | None = None) -> Path | None:  # fmt: skip
    """Rename a damaged store (and its WAL) to ``history.corrupt-<time>.duckdb``, and warn once.

    Never deletes anything. Under the exclusive lock, and only if the file is still the one found damaged
    (``seen``: its inode, size and mtime then): another process may have set it aside already. Returns the
    new name, or None when there was nothing to do.
    """
    with _thread_lock:
        with _lock(path, shared=False, timeout=timeout):
            if seen is None or _stat(path) != seen:
                return None
            target = corrupt_name(path)
            wal = path.with_name(path.name + ".wal")
            path.rename(target)
            if wal.exists():
                wal.rename(target.with_name(target.name + ".wal"))
        _migrated.discard(str(path))
    reason = str(error).split(" is damaged ", 1)[-1].rstrip(".")
    warnings.warn(
        f"nbplayground history: the history store {path} is damaged {reason}; it was moved to {target} "
        f"(nothing was deleted) and a new store was created. Copy back what DuckDB can still read with "
        f"nbp.store_recover({str(target)!r}).",
        RuntimeWarning,
        stacklevel=3,
    )
    return target


def ensure_ready(timeout: float | None = None, write: bool = True) -> Path:
    """Create the database if needed and apply missing migrations, once per process and file.

    Runs under the exclusive lock, so concurrent first openers in other processes wait for it. A damaged
    file is set aside and a new one created. ``write=False`` (a reader): when the store cannot be written
    (a read-only home or file), it is read as it is, without migrating.
    """
    path = db_path()
    key = str(path)
    if key in _migrated and path.exists():
        return path
    from nbplayground.storage.migrations import migrate

    with _thread_lock:
        if key in _migrated and path.exists():
            return path
        for attempt in (0, 1):
            seen = None
            try:
                lock = _lock(path, shared=False, timeout=timeout)
                with lock:
                    cur = _attach(path, write=True, deadline=time.monotonic() + lock.timeout)
                    try:
                        migrate(cur)
                    except Exception as exc:
                        seen = _stat(path)
                        if _duck_error(exc):
                            raise store_error(path, exc, write=True) from None
                        raise
                    finally:
                        _detach(cur, True)
                    _private(path)  # once per process and file: DuckDB may just have created it
                break
            except StoreCorruptError as exc:
                if attempt:
                    raise
                set_aside(path, exc, seen or _stat(path), timeout)
            except StoreReadOnlyError:
                if write:
                    raise
                return path
        _migrated.add(key)
    return path


def _attach_empty() -> Any:
    """An empty store in memory, for a reader of a read-only home that has none (reads find no runs)."""
    from nbplayground.storage.migrations import migrate

    cur = _duck(False).cursor()
    cur.execute(f"ATTACH ':memory:' AS {ALIAS}")
    cur.execute(f"USE {ALIAS}")
    migrate(cur)
    return cur


def _open_store(path: Path, write: bool, timeout: float | None) -> tuple[FileLock, Any]:
    """Take the lock and attach the file; a file found damaged is set aside and a new one made (once)."""
    for attempt in (0, 1):
        lock = _lock(path, shared=not write, timeout=timeout)
        lock.__enter__()
        try:
            if not write and not path.exists():
                return lock, _attach_empty()
            return lock, _attach(path, write, time.monotonic() + lock.timeout)
        except StoreCorruptError as exc:
            seen = _stat(path)
            lock.__exit__(None, None, None)
            if attempt:
                raise
            set_aside(path, exc, seen, timeout)
            ensure_ready(timeout, write=write)
        except BaseException:
            lock.__exit__(None, None, None)
            raise
    raise AssertionError("unreachable")


@contextmanager
def connect(write: bool, timeout: float | None = None) -> Iterator[Any]:
    """A short-lived attachment of the store behind the cross-process lock (exclusive to write, shared to read).

    Yields a DuckDB cursor whose default database is the store. The first open in a process creates and
    migrates the file. Readers attach it ``READ_ONLY``. A nested ``connect()`` on the same thread reuses
    the outer attachment (a writer may read; a reader asking to write is a bug and raises). Do not call
    ``history.flush()`` inside: the writer thread needs this lock.

    DuckDB errors about the store (I/O, a damaged file, a full disk) come out as ``StoreError`` naming the
    file; a file found damaged is set aside first (the error says so). Query errors pass through.
    """
    outer = getattr(_local, "open", None)
    if outer is not None:
        con, outer_write = outer
        if write and not outer_write:
            raise StoreError("Cannot write to the history store inside a read-only connect() block.")
        cursor = con.cursor()
        try:
            cursor.execute(f"USE {ALIAS}")
            yield cursor
        finally:
            cursor.close()
        return
    path = ensure_ready(timeout, write=write)
    damage: tuple[StoreError, tuple[int, int, int] | None] | None = None
    with _thread_lock:
        lock, cur = _open_store(path, write, timeout)
        _local.open = (cur, write)
        try:
            yield cur
        except Exception as exc:
            if not (_duck_error(exc) and _store_failure(exc)):
                raise
            error = store_error(path, exc, write)
            if not isinstance(error, StoreCorruptError) or _names_other_file(path, exc):
                raise error from None  # another file's damage (one being recovered) is not this store's
            damage = (error, _stat(path))
        finally:
            _local.open = None
            _detach(cur, write)
            if write:  # a crash before the checkpoint at DETACH leaves the WAL behind: keep it private
                _private(path.with_name(path.name + ".wal"))
            lock.__exit__(None, None, None)
    if damage is not None:
        error, seen = damage
        moved = set_aside(path, error, seen, timeout)
        where = f"; it was moved to {moved} and a new store created" if moved else ""
        raise StoreCorruptError(f"{error}{where}. Try again; see the warning to recover its rows.") from None


_stale_instances: list[Any] = []


def _after_fork_in_child() -> None:
    # A lock held by another thread at fork time would never be released in the child, and DuckDB's
    # instance (its threads) does not survive a fork: the child makes its own, and never touches the
    # parent's copy (not even to close it).
    global _thread_lock, _local
    _thread_lock = threading.RLock()
    _local = threading.local()
    _stale_instances.extend(_instances.values())
    _instances.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def forget() -> None:
    """Forget which databases were migrated (tests switch homes and rebuild files)."""
    _migrated.clear()
