"""``nbp.store_recover(path)``: copy whatever DuckDB can still read from a damaged store into the current one.

A damaged store is set aside as ``history.corrupt-<time>.duckdb`` (see ``db``); damage is usually local (a
few blocks), so most rows can still be read. Each table is copied in one statement; if DuckDB fails
part-way, the copy goes again by ranges of row ids, halving a failing range down to a few rows, so only
rows with a part in a damaged block (and a few neighbours) stay behind. Rows are copied whole or not at all.
``INSERT OR IGNORE`` by key: recovering twice copies nothing twice.
The source file is only read, and kept.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from nbplayground import config
from nbplayground.core.errors import StoreError
from nbplayground.storage import db, history

SOURCE = "nbp_recover"
#: Rows copied at once when a table cannot be copied whole (DuckDB's vector size), and the smallest range
#: a failing one is halved into.
CHUNK = 2048
SMALLEST = 16  # a fully damaged chunk costs ~2 x 2048 / SMALLEST queries
_TABLES = ("runs", "prompts", "prompt_labels", "threads")


def _columns(con: Any, catalog: str, table: str) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_catalog = ? AND table_name = ? "
        "ORDER BY ordinal_position", [catalog, table]).fetchall()]  # fmt: skip


def _insert(con: Any, sql: str) -> int:
    con.execute("BEGIN TRANSACTION")
    try:
        count = con.execute(sql).fetchone()[0]
        con.execute("COMMIT")
    except Exception:
        try:
            con.execute("ROLLBACK")
        except Exception:
            pass
        raise
    return int(count or 0)


def _copy(con: Any, table: str) -> int:
    """Copy one table's readable rows (whole rows only); returns how many were new here."""
    import duckdb

    try:
        have = set(_columns(con, db.ALIAS, table))
        cols = [c for c in _columns(con, SOURCE, table) if c in have]
        if not cols:
            return 0
    except duckdb.Error:
        return 0
    source = f"{SOURCE}.main.{table}"
    listed = ", ".join(cols)
    insert = f"INSERT OR IGNORE INTO {db.ALIAS}.main.{table} ({listed})"
    try:
        return _insert(con, f"{insert} SELECT {listed} FROM {source}")
    except duckdb.Error:
        pass
    try:
        last = con.execute(f"SELECT max(rowid) FROM {source}").fetchone()[0]
    except duckdb.Error:
        return 0
    if last is None:
        return 0

    def copy_chunk(lo: int, hi: int) -> int:
        try:
            return _insert(
                con, f"{insert} SELECT {listed} FROM {source} WHERE rowid >= {lo} AND rowid < {hi}"
            )
        except duckdb.Error:
            if hi - lo <= SMALLEST:
                return 0  # a damaged block holds part of these rows: they stay behind (never half a row)
            mid = (lo + hi) // 2
            return copy_chunk(lo, mid) + copy_chunk(mid, hi)

    return sum(copy_chunk(lo, min(lo + CHUNK, last + 1)) for lo in range(0, last + 1, CHUNK))


def store_recover(path: str | os.PathLike[str]) -> int:
    """Copy the runs (and saved prompts) DuckDB can still read from ``path`` into the current history.

    ``path`` is a store set aside as damaged (``history.corrupt-<time>.duckdb``, named in the warning
    and in ``nbp.store_status()``), or any other nbplayground history file. Returns how many runs were
    copied (runs already in the history are not copied again). The file is only read, and kept.
    """
    source = Path(path).expanduser()
    if not source.is_file():
        raise StoreError(
            f"No history file at {source}: pass the path the warning named (a history.corrupt-<time>.duckdb "
            f"file in {config.home()}; nbp.store_status() lists them)."
        )
    if source.resolve() == db.db_path().resolve():
        raise StoreError(f"{source} is the current history store; pass a file that was set aside.")
    import duckdb

    history.flush()
    with db.connect(write=True) as con:
        try:
            con.execute(f"ATTACH {db._quote(source)} AS {SOURCE} (READ_ONLY)")
        except duckdb.Error as exc:
            message = (str(exc).splitlines() or [type(exc).__name__])[0]
            warnings.warn(f"nbplayground history: DuckDB cannot open {source} at all ({message}); nothing "
                          "could be recovered from it. The file is kept.", RuntimeWarning, stacklevel=2)  # fmt: skip
            return 0
        try:
            counts = {table: _copy(con, table) for table in _TABLES}
        except duckdb.Error as exc:  # never let the source's damage pass for the current store's
            raise StoreError(f"Recovering from {source} stopped: {str(exc).splitlines()[0]}") from None
        finally:
            try:
                con.execute(f"DETACH DATABASE IF EXISTS {SOURCE}")
            except duckdb.Error:
                pass
    return counts["runs"]
