"""Writing rows, and taking in what other processes left: journals of processes that are gone, pending files.

Everything here runs inside one exclusive-lock attachment of the store (``db.connect(write=True)``):
first the writer's batch, then every orphaned journal and pending file, each in its own transactions and
deleted only after its rows are committed (still under the lock, so no two processes take in the same
file; a crash in between only means an idempotent re-insert next time, ``INSERT OR IGNORE`` by id).

Files are taken in line by line: a torn last line (a process killed mid-write) is ignored, a line that
is not a run, or a row DuckDB refuses even alone, is quarantined; the rest is stored. Nothing in one file
can block another file or the writer's own runs.

``pending/*.jsonl`` files were written at exit by nbplayground versions before the journal; they are still
taken in.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbplayground.core.errors import StoreError
from nbplayground.storage import db, journal, quarantine, rows

PENDING = "pending"
#: Rows per transaction when taking in a file.
CHUNK = 5000


@dataclass
class Written:
    """What one write did: rows quarantined, and runs taken in from other processes' files."""

    quarantined: int = 0
    quarantine_file: Path | None = None
    taken_in: int = 0
    files: list[Path] = field(default_factory=list)


def pending_files(home: Path) -> list[Path]:
    """Spilled files of older nbplayground versions, waiting to be taken in."""
    try:
        return sorted(p for p in (home / PENDING).iterdir() if p.suffix == ".jsonl")
    except OSError:
        return []


def waiting(home: Path) -> bool:
    """Whether other processes left runs to take in (orphaned journals, pending files)."""
    return bool(pending_files(home)) or journal.has_orphans(home)


def _quarantine(home: Path, source: str, bad_rows: list[tuple[rows.Row, str]],
                bad_lines: list[tuple[bytes, str]], fallback: Path | None) -> Path | None:  # fmt: skip
    try:
        return quarantine.put(home, source, bad_rows, bad_lines, fallback=fallback)
    except OSError as exc:
        raise StoreError(
            f"Could not quarantine {len(bad_rows) + len(bad_lines)} unstorable run(s) under "
            f"{home / quarantine.FOLDER} ({exc.strerror or exc}); they are kept and retried. Free some space "
            "or make the folder writable."
        ) from None


def _rows_of(lines: Iterable[tuple[int, bytes]], bad: list[tuple[bytes, str]]) -> Iterator[rows.Row]:
    for number, raw in lines:
        try:
            yield rows.from_json(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
            bad.append((raw, f"line {number} is not a run: {type(exc).__name__}: {exc}"))


def _take_file(con: Any, home: Path, source: Path, lines: Iterable[tuple[int, bytes]], plain: bool,
               fallback: Path | None, out: Written) -> None:  # fmt: skip
    bad_lines: list[tuple[bytes, str]] = []
    chunk: list[rows.Row] = []

    def store(chunk: list[rows.Row]) -> None:
        bad = rows.insert_robust(con, chunk, plain)
        if bad or bad_lines:
            where = _quarantine(home, str(source), bad, bad_lines, fallback)
            out.quarantined += len(bad) + len(bad_lines)
            out.quarantine_file = where
            bad_lines.clear()
        out.taken_in += len(chunk) - len(bad)

    for row in _rows_of(lines, bad_lines):
        chunk.append(row)
        if len(chunk) >= CHUNK:
            store(chunk)
            chunk = []
    store(chunk)
    out.files.append(source)


def _file_lines(path: Path) -> list[tuple[int, bytes]] | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    *complete, _torn = data.split(b"\n")  # a last line without its newline was never complete
    return [(i, line) for i, line in enumerate(complete, 1) if line.strip()]


def take_in(con: Any, home: Path, plain: bool = False, fallback: Path | None = None) -> Written:
    """Store the runs of orphaned journals and pending files (inside the caller's exclusive attachment)."""
    out = Written()
    for orphan in journal.orphans(home):
        _take_file(con, home, orphan.path, orphan.lines(), plain, fallback, out)
        orphan.remove()
    for path in pending_files(home):
        lines = _file_lines(path)
        if lines is None:
            continue
        _take_file(con, home, path, lines, plain, fallback, out)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
    return out


def write_rows(
    batch: list[rows.Row],
    home: Path,
    timeout: float | None = None,
    *,
    plain: bool = False,
    others: bool = True,
    fallback: Path | None = None,
) -> Written:
    """Write rows (quarantining those DuckDB refuses alone), then take in what other processes left.

    ``plain``: VALUES only (interpreter exit). ``others=False``: this batch only (exit: no time for more).
    """
    out = Written()
    with db.connect(write=True, timeout=timeout) as con:
        bad = rows.insert_robust(con, batch, plain)
        if bad:
            out.quarantine_file = _quarantine(home, "record", bad, [], fallback)
            out.quarantined = len(bad)
        if others:
            taken = take_in(con, home, plain, fallback)
            out.taken_in, out.files = taken.taken_in, taken.files
            out.quarantined += taken.quarantined
            out.quarantine_file = taken.quarantine_file or out.quarantine_file
    return out


def count_lines(paths: Iterable[Path]) -> int:
    """Complete lines in files (for status: runs waiting in journals or pending files)."""
    total = 0
    for path in paths:
        try:
            with open(path, "rb") as fh:
                total += sum(1 for line in fh if line.endswith(b"\n") and line.strip())
        except OSError:
            continue
    return total


def orphan_backlog(home: Path) -> tuple[int, list[Path]]:
    """Runs waiting in journals whose process is gone, and those journals."""
    count, paths = 0, []
    for orphan in journal.orphans(home):
        count += sum(1 for _ in orphan.lines())
        paths.append(orphan.path)
        orphan.release()
    return count, paths
