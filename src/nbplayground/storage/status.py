"""``nbp.store_status()``: what the history store holds back, and why (a look, never a write)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nbplayground import config
from nbplayground.storage import db, history, intake, journal, quarantine
from nbplayground.storage.quarantine import Quarantined


@dataclass(frozen=True)
class StoreStatus:
    """The state of the history store: all is well when :attr:`ok`; otherwise each field says what waits.

    - ``store``: the history file; ``read_only``: whether its home can be written here.
    - ``quarantined``: runs (or file lines) the store refused even alone, with the error (kept in
      ``<home>/quarantine/``).
    - ``journal_backlog``: runs in journals and not yet stored (this process's, and those of processes
      that are gone: the next process that opens the store takes them in); ``journals``: the journal
      files (of live processes too).
    - ``pending_files``: spill files of older nbplayground versions, taken in by the next write.
    - ``fallback_home``: where this process journals runs because its home could not take them.
    - ``corrupt_files``: damaged stores set aside (``history.corrupt-<time>.duckdb``); copy back what is
      readable with ``nbp.store_recover(path)``, delete them when done.
    """

    store: Path
    read_only: bool
    quarantined: tuple[Quarantined, ...]
    journal_backlog: int
    journals: tuple[Path, ...]
    pending_files: tuple[Path, ...]
    fallback_home: Path | None
    corrupt_files: tuple[Path, ...]

    @property
    def ok(self) -> bool:
        """True when nothing is quarantined, waiting, set aside or elsewhere."""
        return not (self.read_only or self.quarantined or self.journal_backlog or self.pending_files
                    or self.fallback_home or self.corrupt_files)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """Plain data (paths as strings)."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, Path):
                out[key] = str(value)
            elif isinstance(value, tuple):
                out[key] = [({k: str(v) if isinstance(v, Path) else v for k, v in item.items()}
                             if isinstance(item, dict) else str(item)) for item in value]  # fmt: skip
        out["ok"] = self.ok
        return out

    def __str__(self) -> str:
        lines = [f"history store {self.store}: " + ("ok" if self.ok else "needs attention")]
        if self.read_only:
            lines.append(
                "  read-only here: runs of this process are kept in memory and in a journal elsewhere"
            )
        if self.journal_backlog:
            lines.append(f"  {self.journal_backlog} run(s) in journals, not yet stored")
        if self.fallback_home:
            lines.append(f"  journaling in the fallback home {self.fallback_home}")
        for q in self.quarantined:
            lines.append(f"  quarantined {q.id or '(unreadable line)'} from {q.source}: {q.error} ({q.file})")
        for p in self.pending_files:
            lines.append(f"  pending file {p}")
        for p in self.corrupt_files:
            lines.append(
                f"  damaged store set aside: {p} (nbp.store_recover({str(p)!r}) copies back its rows)"
            )
        return "\n".join(lines)


def store_status() -> StoreStatus:
    """What the history store holds back, and why: quarantined runs, journals waiting, files set aside."""
    home = config.home()
    unstored, fallback = history.writer_state()
    orphaned, _ = intake.orphan_backlog(home)
    return StoreStatus(
        store=db.db_path(),
        read_only=not os.access(home, os.W_OK),
        quarantined=tuple(quarantine.entries(home)),
        journal_backlog=unstored + orphaned,
        journals=tuple(journal.journal_files(home)),
        pending_files=tuple(intake.pending_files(home)),
        fallback_home=fallback,
        corrupt_files=tuple(db.corrupt_files(home)),
    )
