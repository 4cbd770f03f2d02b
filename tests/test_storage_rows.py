"""Rows are made storable before they are written, and a row DuckDB refuses never blocks the others."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone

import duckdb
import pytest

from nbplayground.core.types import Media, RunResult, ToolCall
from nbplayground.storage import db, history, migrations, rows


class Hostile:
    """An object whose repr and str both raise."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    __str__ = __repr__


@pytest.mark.parametrize(
    ("value", "stored"),
    [("plain ascii", "plain ascii"), ("bad \ud800", "bad \ufffd"), ("\ude00 low first", "\ufffd low first"),
     ("split \ud83d\ude00 pair", "split \U0001f600 pair"), ("nul \x00 kept", "nul \x00 kept"),
     ("日本語 👋", "日本語 👋"), (42, "42"), (None, None)],
)  # fmt: skip
def test_text_repairs_surrogates_and_keeps_nul(value, stored):
    assert rows.text(value) == stored
    if stored is not None:
        stored.encode("utf-8")  # always encodable


@pytest.mark.parametrize(
    ("value", "stored"),
    [(3, 3), (3_000_000_000, 3_000_000_000), (2**63 - 1, 2**63 - 1), (2**63, None), (-(2**63), -(2**63)),
     (-(2**63) - 1, None), (True, 1), (7.9, 7), ("12", 12), ("lots", None), (math.nan, None),
     (math.inf, None), (None, None), (object(), None), ("9" * 5000, None)],
)  # fmt: skip
def test_integers_that_do_not_fit_bigint_become_null(value, stored):
    assert rows.integer(value) == stored


@pytest.mark.parametrize(
    ("value", "stored"),
    [(1.5, 1.5), (3, 3.0), ("2.5", 2.5), (math.nan, None), (math.inf, None), (-math.inf, None), (10**400, None),
     ("x", None), (None, None)],
)  # fmt: skip
def test_floats_are_finite_or_null(value, stored):
    assert rows.number(value) == stored


def test_timestamps_are_aware_utc_and_anything_else_is_now():
    naive = datetime(2026, 1, 2, 3, 4, 5)
    assert rows.timestamp(naive) == naive.replace(tzinfo=UTC)
    tz = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert rows.timestamp(tz) == datetime(2026, 1, 2, 1, 4, 5, tzinfo=UTC)
    assert rows.timestamp("2026-01-02T03:04:05+00:00") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    before = datetime.now(UTC)
    assert before <= rows.timestamp("yesterday") <= datetime.now(UTC)
    assert before <= rows.timestamp(Hostile()) <= datetime.now(UTC)


def test_to_row_never_raises_and_describes_what_it_cannot_store(nbp_home):
    result = RunResult(
        id="hostile-0001", model=Hostile(), text=Hostile(), data={"a": Hostile()}, variables={"v": math.nan},
        tool_calls=[ToolCall(id="c", name="f\ud800", arguments="{\ud800"), "not a tool call"],
        media=[Media(mime="image/png", data=b"png"), 42], tokens_in="many", attempts=2**70,
    )  # fmt: skip
    row = dict(zip(rows.COLUMNS, rows.to_row(result, nbp_home), strict=True))
    assert row["model"] == row["text"] == "<unprintable Hostile>"
    assert json.loads(row["data"]) == {"unserializable": "<unprintable dict>"}
    assert row["tokens_in"] is None and row["attempts"] is None
    assert json.loads(row["tool_calls"])[0]["name"] == "f\ufffd"
    assert [m["mime"] for m in json.loads(row["media"])] == ["image/png", "application/octet-stream"]
    assert (nbp_home / "media" / "hostile-0001-0.png").read_bytes() == b"png"
    line = rows.to_json(tuple(row.values()))
    assert rows.from_json(line) == tuple(row.values())  # the journal line gives back the same row


def test_a_result_without_an_id_is_stored_under_a_fresh_one(nbp_home):
    row = rows.to_row(RunResult(id=None, model="m"), nbp_home)  # type: ignore[arg-type]
    assert isinstance(row[0], str) and len(row[0]) == 32


@pytest.mark.parametrize("line", ["{not json", "[1, 2]", '"text"', '{"text": "no id"}', '{"id": ""}'])
def test_a_line_that_is_not_a_run_is_refused(line):
    with pytest.raises(ValueError):
        rows.from_json(line)


def test_a_line_from_an_older_version_is_repaired(nbp_home):
    line = json.dumps({"id": "old-1", "created_at": "2026-01-01T00:00:00", "tokens_in": "lots",
                       "tokens_out": 2**70, "cost_usd": "NaN", "data": {"a": 1}, "text": "bad \ud800"})  # fmt: skip
    row = dict(zip(rows.COLUMNS, rows.from_json(line), strict=True))
    assert row["created_at"] == datetime(2026, 1, 1, tzinfo=UTC)
    assert (row["tokens_in"], row["tokens_out"], row["cost_usd"]) == (None, None, None)
    assert row["data"] == '{"a": 1}' and row["text"] == "bad \ufffd"


def _stored(con) -> list[str]:
    return sorted(r[0] for r in con.execute("SELECT id FROM runs").fetchall())


@pytest.mark.parametrize("size", [3, 40], ids=["values", "arrow"])
def test_a_row_duckdb_refuses_is_returned_alone_with_the_real_error(nbp_home, size):
    good = [rows.to_row(RunResult(id=f"ok-{i:03d}", model="m"), nbp_home) for i in range(size)]
    bad = list(good[1])
    bad[0], bad[rows.COLUMNS.index("messages")] = "bad-json", "{not json"  # bypasses the repair on purpose
    batch = [good[0], tuple(bad), *good[1:]]
    with db.connect(write=True) as con:
        refused = rows.insert_robust(con, batch)
        assert [r[0] for r, _ in refused] == ["bad-json"]
        assert "Malformed JSON" in refused[0][1] and "aborted" not in refused[0][1]
        assert _stored(con) == sorted(r[0] for r in good)
        assert rows.insert_robust(con, batch)[0][0][0] == "bad-json"  # again: nothing stored twice
        assert _stored(con) == sorted(r[0] for r in good)


def test_a_store_failure_is_raised_not_blamed_on_a_row(nbp_home):
    row = rows.to_row(RunResult(id="r-1", model="m"), nbp_home)
    with db.connect(write=True) as con:
        con.execute("DROP TABLE runs")  # not any row's fault: a catalog error, raised as it is
        with pytest.raises(duckdb.CatalogException):
            rows.insert_robust(con, [row])


def test_a_run_recorded_twice_in_one_batch_is_stored_once(nbp_home):
    row = rows.to_row(RunResult(id="twice-1", model="m"), nbp_home)
    with db.connect(write=True) as con:
        assert rows.insert_robust(con, [row, row]) == []
        assert rows.insert_robust(con, [row]) == []
        assert _stored(con) == ["twice-1"]


def test_counts_are_bigint_after_migrating_an_old_store(nbp_home):
    con = duckdb.connect(str(nbp_home / db.DB_FILE))
    migrations.migrate(con, upto=5)
    con.execute("INSERT INTO runs (id, created_at, tokens_in, attempts) VALUES ('old-1', now(), 7, 2)")
    con.close()
    history.record(RunResult(id="new-1", model="m", tokens_in=3_000_000_000, tokens_out=2**62))
    assert history.flush()
    got = history.sql("SELECT id, tokens_in, tokens_out, attempts FROM runs ORDER BY id")
    assert got.to_dict("list") == {"id": ["new-1", "old-1"], "tokens_in": [3_000_000_000, 7],
                                   "tokens_out": [2**62, None], "attempts": [1, 2]}  # fmt: skip


def test_a_template_shared_by_a_batch_is_still_scrubbed_with_the_secrets_known_now(nbp_home, monkeypatch):
    template = {"messages": [{"role": "user", "content": "use zq-shared-template-0123 for {{q}}"}]}
    first = rows.to_row(RunResult(id="tmpl-0001", model="m", template=template), nbp_home)
    col = rows.COLUMNS.index("template")
    assert "zq-shared-template-0123" in first[col]  # not a secret yet: stored as it is
    monkeypatch.setenv("NBP_TEST_API_KEY", "zq-shared-template-0123")  # now it is
    second = rows.to_row(RunResult(id="tmpl-0002", model="m", template=template), nbp_home)
    assert "zq-shared-template-0123" not in second[col] and json.loads(second[col])["messages"][0]["content"]
    third = rows.to_row(RunResult(id="tmpl-0003", model="m", template={"messages": []}), nbp_home)
    assert json.loads(third[col]) == {"messages": []}  # another template: its own JSON
