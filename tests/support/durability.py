"""Helpers for the durability tests: child processes, what they printed, homes that fail in real ways.

A read-only home and a full disk are made real, not mocked: a bind mount remounted read-only, and a
small tmpfs, each inside a private mount namespace (``unshare``) so nothing leaks to the host and the
mounts vanish with the processes. As root that is ``unshare -m``; otherwise ``unshare -r -m`` (an
unprivileged user namespace), when the kernel allows it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")

#: Prefix of the lines a child prints for each run id it got back from a call.
ID = "id "


def child_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a child nbplayground process on ``home`` (never the user's)."""
    path = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "NBPLAYGROUND_HOME": str(home),
        "PYTHONPATH": SRC + (os.pathsep + path if path else ""),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        **extra,
    }


def run_python(
    code: str, home: Path, *, prefix: tuple[str, ...] | list[str] = (), timeout: float = 180, **extra: str
) -> subprocess.CompletedProcess[str]:
    """Run ``python -c code`` on ``home`` (optionally behind an argv prefix) and capture its output."""
    return subprocess.run(
        [*prefix, sys.executable, "-c", code], capture_output=True, text=True, encoding="utf-8",
        errors="replace", timeout=timeout, env=child_env(home, **extra),
    )  # fmt: skip


def printed_ids(stdout: str) -> list[str]:
    """Run ids a child printed, complete lines only (a SIGKILL may cut the last one short)."""
    lines = stdout.split("\n")[:-1]  # the part after the last newline is not a complete line
    return [line[len(ID) :] for line in lines if line.startswith(ID)]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under a folder and the hash of its bytes."""
    return {str(p.relative_to(folder)): sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def files_containing(folder: Path, needle: bytes) -> list[Path]:
    """Files under ``folder`` whose bytes contain ``needle``."""
    if not folder.is_dir():
        return []
    return [p for p in sorted(folder.rglob("*")) if p.is_file() and needle in p.read_bytes()]


def journal_lines(home: Path) -> list[bytes]:
    """Non-empty lines left in the per-process journals of a home."""
    folder = home / "journal"
    if not folder.is_dir():
        return []
    return [line for p in sorted(folder.iterdir()) if p.is_file() for line in p.read_bytes().splitlines()
            if line.strip()]  # fmt: skip


def pending_files(home: Path) -> list[str]:
    """Names of whatever is left in ``<home>/pending`` (spilled runs, partial ``.tmp`` files...)."""
    folder = home / "pending"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


# ---------------------------------------------------------------------------------------------------
# Real failing homes, in a private mount namespace
# ---------------------------------------------------------------------------------------------------
_PROBE = 'mount -t tmpfs -o size=1m tmpfs "$1" && mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && ! touch "$1/x" 2>/dev/null'


@functools.cache
def mount_namespace() -> tuple[str, ...] | None:
    """An argv prefix running a command in a private mount namespace where it may mount, or None."""
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        return None
    candidates = [(unshare, "-m"), (unshare, "-r", "-m")] if os.geteuid() == 0 else [(unshare, "-r", "-m")]
    for prefix in candidates:
        with tempfile.TemporaryDirectory() as probe:
            try:
                done = subprocess.run(
                    [*prefix, "sh", "-c", _PROBE, "sh", probe], capture_output=True, timeout=60
                )
            except (OSError, subprocess.TimeoutExpired):
                continue
            if done.returncode == 0:
                return prefix
    return None


def read_only(home: Path) -> tuple[str, ...] | None:
    """An argv prefix that runs a command seeing ``home`` as a read-only mount (EROFS), or None."""
    ns = mount_namespace()
    if ns is None:
        return None
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    return (*ns, "sh", "-c", script, "sh", str(home))


def small_tmpfs(home: Path, size: str) -> tuple[str, ...] | None:
    """An argv prefix that runs a command with an empty tmpfs of ``size`` (say ``"8m"``) mounted on ``home``."""
    ns = mount_namespace()
    if ns is None:
        return None
    script = 'mount -t tmpfs -o "size=$2,mode=0700" tmpfs "$1" && shift 2 && exec "$@"'
    return (*ns, "sh", "-c", script, "sh", str(home), size)


# ---------------------------------------------------------------------------------------------------
# Killing a child while it is inside a DuckDB write
# ---------------------------------------------------------------------------------------------------
#: Prepended to a child script: every DuckDB connection is wrapped so that once ``_arm()`` is called, a
#: watcher thread SIGKILLs the process a random 0-2 ms after a write statement starts (INSERT, COPY,
#: COMMIT, CHECKPOINT, DETACH, append, executemany), but only if that statement is still running then
#: (DuckDB releases the GIL while it executes). The child prints ``kill <statement>`` just before, so the
#: test knows the kill landed mid-write. Implementation-agnostic: it only assumes the store is opened
#: through ``duckdb.connect`` (a file, or ``:memory:`` with the file attached).
KILL_MID_WRITE = r"""
import os, random, signal, sys, threading, time
import duckdb

_real_connect = duckdb.connect
_running = {}
_started = threading.Event()
_counter = [0]
_armed = [False]
_WRITES = ("INSERT", "COPY", "COMMIT", "CHECKPOINT", "DETACH")


class _Watched:
    def __init__(self, con):
        self._con = con

    def __getattr__(self, name):
        return getattr(self._con, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._con.__exit__(*exc)

    def cursor(self, *a, **k):
        return _Watched(self._con.cursor(*a, **k))

    def _call(self, method, first, *a, **k):
        writing = method in ("append", "executemany") or any(w in str(first).upper() for w in _WRITES)
        if not (writing and _armed[0]):
            return getattr(self._con, method)(first, *a, **k)
        _counter[0] += 1
        n = _counter[0]
        _running[n] = "%s %r" % (method, str(first)[:80])
        _started.set()
        try:
            return getattr(self._con, method)(first, *a, **k)
        finally:
            _running.pop(n, None)

    def execute(self, q, *a, **k):
        return self._call("execute", q, *a, **k)

    def executemany(self, q, *a, **k):
        return self._call("executemany", q, *a, **k)

    def sql(self, q, *a, **k):
        return self._call("sql", q, *a, **k)

    def query(self, q, *a, **k):
        return self._call("query", q, *a, **k)

    def append(self, table, *a, **k):
        return self._call("append", table, *a, **k)


def _connect(*a, **k):
    return _Watched(_real_connect(*a, **k))


duckdb.connect = _connect


def _killer():
    while True:
        _started.wait()
        _started.clear()
        seen = dict(_running)
        if not seen:
            continue
        time.sleep(random.uniform(0, 0.002))
        still = [d for n, d in list(_running.items()) if n in seen]
        if still:
            sys.stdout.write("\nkill %s\n" % still[0])  # on a line of its own, whatever main printed
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)


def _arm():
    _armed[0] = True


threading.Thread(target=_killer, daemon=True).start()
"""


def damage_a_runs_block(path: Path, scratch: Path, query: str = "SELECT id, text FROM runs") -> None:
    """Overwrite the start of a data block that ``query`` reads: the file opens, the query fails.

    Which block that is depends on the data (ids are random), so each is tried on a copy first.
    """
    import duckdb

    block, first = 262_144, 3 * 4096  # DuckDB's block size, after its three header pages
    for k, offset in enumerate(range(first, path.stat().st_size, block)):
        trial = scratch / f"trial-{k}.duckdb"
        shutil.copy(path, trial)
        with open(trial, "r+b") as fh:
            fh.seek(offset)
            fh.write(b"\xa5" * 64)
        try:
            con = duckdb.connect(str(trial), read_only=True)
        except duckdb.Error:
            continue  # the catalog: the file would not open at all (the "garbage" case covers that)
        try:
            con.execute(query).fetchall()
        except duckdb.Error:
            with open(path, "r+b") as fh:
                fh.seek(offset)
                fh.write(b"\xa5" * 64)
            return
        finally:
            con.close()
    raise AssertionError("found no data block whose damage breaks reading the runs table")
