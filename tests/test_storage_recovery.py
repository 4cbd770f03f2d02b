"""A damaged store is set aside at once (never deleted), and what DuckDB can still read is copied back whole."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import pytest

import nbplayground as nbp
from nbplayground.core.errors import StoreCorruptError, StoreError
from nbplayground.core.types import RunResult
from nbplayground.storage import db, history
from support.durability import damage_a_runs_block


def _store(n: int, text: str = "answer") -> list[RunResult]:
    runs = [
        RunResult(id=f"r-{i:05d}", model="m", text=f"{text} {i} " + "lorem ipsum " * 20) for i in range(n)
    ]
    for r in runs:
        history.record(r)
    assert history.flush()
    history.reset_for_tests()  # closed and checkpointed: the file holds everything
    return runs


def _aside(home: Path) -> list[Path]:
    return sorted(home.glob("history.corrupt-*.duckdb"))


def test_a_damaged_header_is_set_aside_at_once_and_the_run_stored(nbp_home):
    _store(3)
    path = nbp_home / db.DB_FILE
    with open(path, "r+b") as fh:  # the checksum of the block after the header fails ("... in block at ...")
        fh.seek(4096)
        fh.write(os.urandom(4096))
    damaged = path.read_bytes()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.monotonic()
        history.record(RunResult(id="after-0001", model="m"))
        assert history.flush()
        assert time.monotonic() - t0 < 10  # not mistaken for a lock to wait out
    [aside] = _aside(nbp_home)
    assert aside.read_bytes() == damaged
    messages = [str(w.message) for w in caught if "damaged" in str(w.message)]
    assert len(messages) == 1 and str(aside) in messages[0] and "nbp.store_recover(" in messages[0]
    assert "\n" not in messages[0]
    assert history.sql("SELECT id FROM runs")["id"].tolist() == ["after-0001"]
    with pytest.warns(RuntimeWarning, match="cannot open"):
        assert nbp.store_recover(aside) == 0
    assert aside.read_bytes() == damaged


def test_recover_copies_whole_rows_around_a_damaged_block(nbp_home, tmp_path):
    old = _store(20_000, text="old")
    path = nbp_home / db.DB_FILE
    damage_a_runs_block(path, tmp_path)
    aside = tmp_path / "history.corrupt-20260101T000000Z.duckdb"
    path.rename(aside)
    before = aside.read_bytes()
    history.record(RunResult(id="new-0001", model="m", text="new"))
    assert history.flush()

    copied = nbp.store_recover(str(aside))
    assert 0 < copied < len(old)  # most rows, not those in the damaged block
    texts = dict(history.sql("SELECT id, text FROM runs")[["id", "text"]].itertuples(index=False))
    assert len(texts) == copied + 1 and texts["new-0001"] == "new"
    wanted = {r.id: r.text for r in old}
    assert all(texts[i] == wanted[i] for i in texts if i != "new-0001")  # whole rows, never half a row
    assert nbp.store_recover(aside) == 0  # again: nothing twice
    assert aside.read_bytes() == before
    assert not _aside(nbp_home)  # the damage was in the file recovered from, not in the current store


def test_recover_says_what_to_pass(nbp_home):
    with pytest.raises(StoreError, match=r"No history file at .*store_status"):
        nbp.store_recover(nbp_home / "nope.duckdb")
    history.record(RunResult(id="x-0001", model="m"))
    assert history.flush()
    with pytest.raises(StoreError, match="current history store"):
        nbp.store_recover(nbp_home / db.DB_FILE)


def test_a_query_on_a_damaged_store_sets_it_aside_and_says_so(nbp_home, tmp_path):
    _store(20_000)
    query = "SELECT sum(length(text)) FROM runs"
    damage_a_runs_block(nbp_home / db.DB_FILE, tmp_path, query)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(StoreCorruptError, match=f"{db.DB_FILE} is damaged .* moved to .*corrupt"):
            history.sql(query)
        assert len(history.history()) == 0  # a new store
    [aside] = _aside(nbp_home)
    assert sum(str(aside) in str(w.message) for w in caught) == 1
    with pytest.raises(StoreError, match="SQL error"):  # a mistake in a query is still just that
        history.sql("SELECT nope FROM runs")
    assert _aside(nbp_home) == [aside]
