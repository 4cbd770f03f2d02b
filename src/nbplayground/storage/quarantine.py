"""Quarantine: runs the store refused even alone, kept aside with their error, never blocking the others.

``<home>/quarantine/<pid>-<start>.jsonl`` (0600) gets one JSON line per refused row: when, where it came
from (``record`` or the journal / pending file it was read from), the error, and the row (or the raw line
when it could not even be read as a run). Rows are scrubbed before they are journaled, so secrets never
land here either. ``nbp.store_status()`` lists what is here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nbplayground.storage import journal, rows

FOLDER = "quarantine"


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A run (or a line of a journal or pending file) the store could not take, and why."""

    id: str | None
    error: str
    source: str
    at: str
    file: Path


def _entry(source: str, error: str, row: rows.Row | None = None, line: bytes | str | None = None) -> str:
    out: dict[str, Any] = {"at": datetime.now(UTC).isoformat(), "source": source, "error": error}
    if row is not None:
        out["id"] = row[0]
        out["row"] = json.loads(rows.to_json(row))
    if line is not None:
        raw = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
        out["line"] = rows.text(raw)
    return json.dumps(out, ensure_ascii=False, default=str)


def put(
    home: Path,
    source: str,
    bad_rows: Sequence[tuple[rows.Row, str]] = (),
    bad_lines: Sequence[tuple[bytes | str, str]] = (),
    fallback: Path | None = None,
) -> Path | None:
    """Append the refused rows and unreadable lines; returns the quarantine file (None when nothing to do).

    Written to the fallback home when the home cannot take it; raises ``OSError`` when neither can.
    """
    lines = [_entry(source, err, row=row) for row, err in bad_rows]
    lines += [_entry(source, err, line=raw) for raw, err in bad_lines]
    if not lines:
        return None
    data = "".join(line + "\n" for line in lines).encode("utf-8", "replace")
    error: OSError | None = None
    for root in (home, fallback):
        if root is None:
            continue
        folder = root / FOLDER
        path = folder / f"{os.getpid()}-{journal.own_start()}.jsonl"
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0), 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            return path
        except OSError as exc:
            error = exc
    assert error is not None
    raise error


def entries(home: Path) -> list[Quarantined]:
    """Everything quarantined for ``home`` (in it and in its fallback homes), oldest first, once each."""
    out: dict[tuple[Any, ...], Quarantined] = {}
    for path in journal.files_in(root / FOLDER for root in (home, *journal.fallback_homes(home))):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            try:
                item = json.loads(line)
                q = Quarantined(id=item.get("id"), error=str(item.get("error")), source=str(item.get("source")),
                                at=str(item.get("at")), file=path)  # fmt: skip
            except (ValueError, AttributeError):
                continue
            # a process that died between quarantining and committing quarantines the row again next time
            out.setdefault((q.id, q.error, q.source, item.get("line")), q)
    return sorted(out.values(), key=lambda q: q.at)
