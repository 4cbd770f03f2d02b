"""The per-process journal: a run is on disk before ``record()`` returns, whatever happens next.

``<home>/journal/<pid>-<start>.jsonl`` holds one JSON line per finished run (the stored row: secrets
scrubbed, media already in files), appended with one ``write()`` and no fsync: it guards against the
death of the process (SIGKILL, OOM, a kernel restart), not of the machine. ``<start>`` is the process's
start time (``/proc/<pid>/stat`` on Linux), so a reused pid never names the same journal. The history
writer moves the rows into DuckDB, then empties the file (or, while runs keep coming, rewrites it without
the stored part once that exceeds ``COMPACT_BYTES``); at a clean exit the file is removed.

The owner holds an exclusive ``flock`` on its journal for as long as it lives, and the kernel drops it
when the process dies, however it dies. So "is this journal's process gone?" is answered by trying that
lock, which pid reuse cannot fool. Where flock is not available (Windows, some network file systems) the
name answers: the pid is not running, or runs with another start time. A journal is created under a
temporary name, locked, then renamed into place, so no one can take a live journal for an orphan in the
instant between its creation and its lock. Whoever takes an orphan in holds its lock while doing so.

When the home cannot take the journal (a read-only home, a full disk), it moves to a *fallback home*: a
private per-user folder under ``$XDG_RUNTIME_DIR`` or the temp dir, one sub-folder per home (a hash of its
path), where processes that can write the home look for orphans too.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

FOLDER = "journal"
#: When the stored part of a journal that is never fully caught up (a long batch) exceeds this many
#: bytes, the file is rewritten without it.
COMPACT_BYTES = 8 << 20
#: A temporary journal file older than this was left by a process that died while creating one.
STALE_TMP_S = 60.0
_NAME = re.compile(r"^(\d+)-([0-9A-Za-z]+)(?:-\d+)?\.jsonl$")
_starts: dict[int, str] = {}


# ---------------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------------
def process_start(pid: int) -> str | None:
    """When a process started (clock ticks since boot, from ``/proc/<pid>/stat``), or None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
        # after the command name (which may hold spaces and parentheses): state is field 3, starttime 22
        return data[data.rindex(b")") + 2 :].split()[19].decode()
    except (OSError, ValueError, IndexError):
        return None


def own_start() -> str:
    """This process's start marker: its start time on Linux, else the time it first asked (ms)."""
    pid = os.getpid()
    start = _starts.get(pid)
    if start is None:
        start = _starts[pid] = process_start(pid) or str(int(time.time() * 1000))
    return start


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C_EVENT there
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        try:
            code = ctypes.c_ulong()
            return bool(kernel32.GetExitCodeProcess(handle, ctypes.byref(code))) and code.value == 259
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # EPERM: alive, someone else's
    return True


def alive(pid: int, start: str) -> bool:
    """Whether the process that named a journal ``<pid>-<start>`` still runs (unknown start: pid alone)."""
    if pid == os.getpid():
        return start == own_start()
    if not _pid_alive(pid):
        return False
    actual = process_start(pid)
    return actual is None or actual == start


def _pread(fd: int, size: int, offset: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fd, size, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # Windows
    return os.read(fd, size)


def _try_lock(fd: int) -> bool | None:
    """Take the exclusive flock without waiting: True taken, False held by a live process, None unsupported."""
    try:
        import fcntl
    except ImportError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # ENOLCK, EOPNOTSUPP: a file system without flock
        return None
    return True


# ---------------------------------------------------------------------------------------------------
# The fallback home
# ---------------------------------------------------------------------------------------------------
def _bases() -> list[Path]:
    user = str(os.getuid()) if hasattr(os, "getuid") else (os.environ.get("USERNAME") or "user")
    out = []
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        out.append(Path(runtime) / "nbplayground")  # already private to the user
    out.append(Path(tempfile.gettempdir()) / f"nbplayground-{user}")
    return out


def _digest(home: Path) -> str:
    try:
        home = home.resolve()
    except OSError:
        pass
    return hashlib.sha256(str(home).encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _own_folder(path: Path) -> bool:
    """Create a private folder, or accept an existing one only if it is ours and not a symlink."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(path)
    except OSError:
        return False
    if hasattr(os, "getuid"):
        import stat

        if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            return False  # in a shared temp dir, a folder someone else prepared is no place for runs
        if st.st_mode & 0o077:
            try:
                os.chmod(path, 0o700)
            except OSError:
                return False
    return True


def fallback_home(home: Path) -> Path | None:
    """The writable stand-in for ``home`` (created, private), or None when no candidate is writable."""
    digest = _digest(home)
    for base in _bases():
        folder = base / digest
        if _own_folder(base) and _own_folder(folder) and os.access(folder, os.W_OK):
            note = folder / "home.txt"  # for a person looking at the folder: whose runs these are
            if not note.exists():
                try:
                    fd = os.open(note, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as fh:
                        fh.write(f"{home}\n")
                except OSError:
                    pass
            return folder
    return None


def fallback_homes(home: Path) -> list[Path]:
    """Existing fallback homes of ``home`` (where journals of processes that could not write it are)."""
    digest = _digest(home)
    return [base / digest for base in _bases() if (base / digest).is_dir()]


# ---------------------------------------------------------------------------------------------------
# This process's journal
# ---------------------------------------------------------------------------------------------------
class Segment:
    """One journal file of this process, locked while open. Offsets are logical: bytes ever appended."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        stem = f"{os.getpid()}-{own_start()}"
        self.fd, self.locked = self._create(folder, f".{stem}.{uuid.uuid4().hex[:8]}.tmp")
        path, n = folder / f"{stem}.jsonl", 0
        while path.exists():  # a journal this process left open in this home earlier: never clobber it
            n += 1
            path = folder / f"{stem}-{n}.jsonl"
        try:
            os.replace(self._tmp, path)
        except OSError:
            self._discard()
            raise
        self.path = path
        self.base = 0  # the logical offset of the file's first byte
        self.end = 0  # the logical offset after its last byte

    def _create(self, folder: Path, name: str) -> tuple[int, bool | None]:
        self._tmp = folder / name
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_BINARY", 0)
        fd = os.open(self._tmp, flags, 0o600)
        return fd, _try_lock(fd)

    def _discard(self) -> None:
        try:
            os.unlink(self._tmp)
        except OSError:
            pass
        os.close(self.fd)

    def write(self, data: bytes) -> int:
        """Append whole lines; return the logical end. On failure the file is cut back: no torn line stays."""
        try:
            written = os.write(self.fd, data)
            if written != len(data):
                raise OSError(28, "No space left on device (short write)")
        except OSError:
            try:
                os.ftruncate(self.fd, self.end - self.base)
            except OSError:
                pass
            raise
        self.end += written
        return self.end

    def release(self, upto: int) -> None:
        """Everything before logical offset ``upto`` is stored: empty the file, or drop a large stored part."""
        if upto <= self.base:
            return
        if upto >= self.end:
            os.ftruncate(self.fd, 0)
            self.base = self.end
        elif upto - self.base >= COMPACT_BYTES:
            self._compact(upto)

    def _compact(self, upto: int) -> None:
        tail = _pread(self.fd, self.end - upto, upto - self.base)
        fd, locked = self._create(self.path.parent, f".{self.path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            if os.write(fd, tail) != len(tail):
                raise OSError(28, "No space left on device (short write)")
            os.replace(self._tmp, self.path)  # atomic: a reader sees the old file or the new one, whole
        except OSError:
            self._discard_new(fd)
            return  # keep the old file: a larger journal loses nothing
        os.close(self.fd)  # drops the old file's lock; that file is unlinked already
        self.fd, self.locked, self.base = fd, locked, upto

    def _discard_new(self, fd: int) -> None:
        try:
            os.unlink(self._tmp)
        except OSError:
            pass
        os.close(fd)

    @property
    def empty(self) -> bool:
        """Whether every line appended so far is stored."""
        return self.end == self.base

    def close(self, remove: bool) -> None:
        """Close (and unlink first, while still locked, when ``remove`` and nothing is left to store)."""
        if self.fd < 0:
            return
        if remove and self.empty:
            try:
                self.path.unlink()
            except OSError:
                pass
        os.close(self.fd)
        self.fd = -1


Ref = tuple[Segment, int]


class Journal:
    """This process's journal for one home: the current segment, and older ones not yet fully stored.

    Callers hold ``lock`` around :meth:`append` together with queueing the row, so the writer sees rows in
    journal order and :meth:`release` can empty a file exactly when everything in it is stored.
    """

    def __init__(self, home: Path) -> None:
        self.home = home
        self.lock = threading.Lock()
        self.segments: list[Segment] = []
        self.current: Segment | None = None
        #: The fallback home, once the home could not take the journal (or a media file).
        self.fallback: Path | None = None
        #: Why nothing can be journaled (then new runs are only in memory until stored), if so.
        self.broken: str | None = None
        #: A one-line notice for the user about where the journal went; taken (and cleared) by the writer.
        self.notice: str | None = None

    def append(self, line: str) -> Ref | None:
        """Append one JSON line (the caller holds ``lock``); None when it could not be written anywhere."""
        data = (line + "\n").encode("utf-8", "surrogatepass")
        while self.broken is None:
            seg = self.current or self._open()
            if seg is None:
                continue  # moved to the fallback home (try there), or broken (the loop ends)
            try:
                return seg, seg.write(data)
            except OSError as exc:
                self._move(exc)
        return None

    def _open(self) -> Segment | None:
        root = self.fallback or self.home
        try:
            seg = Segment(root / FOLDER)
        except OSError as exc:
            self._move(exc)
            return None
        self.current = seg
        self.segments.append(seg)
        return seg

    def _move(self, exc: OSError) -> None:
        """The current place failed: go to the fallback home (once), or give up journaling."""
        self.current = None
        where = f"{(self.fallback or self.home) / FOLDER}"
        if self.fallback is None:
            self.fallback = fallback_home(self.home)
            if self.fallback is not None:
                self.notice = (
                    f"could not write the run journal under {where} ({exc.strerror or exc}); runs of this "
                    f"process are journaled in {self.fallback / FOLDER} instead and stored in "
                    f"{self.home} when it can be written"
                )
                return
        self.broken = f"could not write the run journal under {where} ({exc.strerror or exc})"

    def spare(self) -> Path | None:
        """The fallback home (created on first use), for media files the home cannot take."""
        if self.fallback is None:
            self.fallback = fallback_home(self.home)
        return self.fallback

    def release(self, refs: list[Ref | None]) -> None:
        """The rows of ``refs`` are stored (or quarantined): empty what can be emptied."""
        upto: dict[int, tuple[Segment, int]] = {}
        for ref in refs:
            if ref is not None:
                seg, end = ref
                if end > upto.get(id(seg), (seg, -1))[1]:
                    upto[id(seg)] = (seg, end)
        if not upto:
            return
        with self.lock:
            for seg, end in upto.values():
                if seg.fd < 0:
                    continue
                try:
                    seg.release(end)
                except OSError:
                    continue  # it stays a little longer; a later release or the next process empties it
                if seg.empty and seg is not self.current:
                    seg.close(remove=True)
            self.segments = [s for s in self.segments if s.fd >= 0]

    @property
    def paths(self) -> list[Path]:
        """This process's journal files."""
        return [s.path for s in self.segments if s.fd >= 0]

    def close(self) -> None:
        """Close every segment; the fully stored ones are removed, the others wait for the next process."""
        with self.lock:
            for seg in self.segments:
                seg.close(remove=True)
            self.segments, self.current = [], None

    def forget_in_child(self) -> None:
        """After fork: close the inherited descriptors (the parent keeps its locks and its files)."""
        for seg in self.segments:
            if seg.fd >= 0:
                try:
                    os.close(seg.fd)
                except OSError:
                    pass
                seg.fd = -1
        self.segments, self.current = [], None
        self.lock = threading.Lock()


# ---------------------------------------------------------------------------------------------------
# Journals of processes that are gone
# ---------------------------------------------------------------------------------------------------
class Orphan:
    """A journal whose process is gone, locked by this process while it is taken in."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self.fd = path, fd

    def lines(self) -> Iterator[tuple[int, bytes]]:
        """``(line number, bytes)`` of every complete line; a torn last line (no newline) is left out."""
        buffer, number, offset = b"", 0, 0
        while True:
            chunk = _pread(self.fd, 1 << 20, offset)
            if not chunk:
                return  # what is left in the buffer was being written when the process died
            offset += len(chunk)
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for line in complete:
                number += 1
                if line.strip():
                    yield number, line

    def remove(self) -> None:
        """Delete the file (still locked: no one else takes it in twice) and let it go."""
        try:
            self.path.unlink()
        except OSError:
            pass
        self.release()

    def release(self) -> None:
        """Let it go without deleting it (it could not be taken in now)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def folders(home: Path) -> list[Path]:
    """Where journals of ``home`` are: its own journal folder and those of its fallback homes."""
    return [home / FOLDER, *(f / FOLDER for f in fallback_homes(home))]


def _claim(path: Path) -> int | None:
    match = _NAME.match(path.name)
    if match is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except OSError:
        return None
    try:
        state = _try_lock(fd)
        if state is False or (state is None and alive(int(match[1]), match[2])):
            os.close(fd)
            return None
        st = os.fstat(fd)
        if st.st_nlink == 0 or os.stat(path).st_ino != st.st_ino:  # taken in and deleted meanwhile
            os.close(fd)
            return None
    except OSError:
        os.close(fd)
        return None
    return fd


def _stale_tmp(path: Path) -> None:
    try:
        if time.time() - path.stat().st_mtime < STALE_TMP_S:
            return
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        if _try_lock(fd):
            path.unlink()
    except OSError:
        pass
    finally:
        os.close(fd)


def files_in(dirs: Iterable[Path]) -> Iterator[Path]:
    """The entries of each folder in ``dirs``, sorted by name; a folder that is missing or unreadable is skipped."""
    for folder in dirs:
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        yield from (folder / name for name in names)


def orphans(home: Path) -> Iterator[Orphan]:
    """Claim, one at a time, the journals of ``home`` whose process is gone (the caller removes or releases)."""
    for path in files_in(folders(home)):
        if path.name.startswith(".") and path.name.endswith(".tmp"):
            _stale_tmp(path)
            continue
        fd = _claim(path)
        if fd is None:
            continue
        orphan = Orphan(path, fd)
        try:
            yield orphan
        finally:
            orphan.release()


def has_orphans(home: Path) -> bool:
    """Whether any journal of ``home`` belongs to a process that is gone (probes their locks)."""
    for orphan in orphans(home):
        orphan.release()
        return True
    return False


def journal_files(home: Path) -> list[Path]:
    """Every journal file of ``home`` (live processes' and orphans'), in its folder and fallback homes."""
    return [path for path in files_in(folders(home)) if _NAME.match(path.name)]
