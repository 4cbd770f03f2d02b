"""The DuckDB store: round trips, migrations, failures that lose nothing, many processes at once."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import duckdb
import pytest

import nbplayground as nbp
from nbplayground.core import errors as E
from nbplayground.core.errors import PromptNotFoundError, StoreError
from nbplayground.core.types import Media, RunResult, ToolCall
from nbplayground.storage import db, history, migrations, registry

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _result(i: int = 0, **kw) -> RunResult:
    base = dict(
        id=f"run{i:05d}" + "0" * 24, model="mock/echo", text=f"answer {i} — ünïcode ✓", tokens_in=3, tokens_out=4,
        cost_usd=1.5e-5, latency_ms=12.5, ttft_ms=3.25, surface="python", provider="mock",
        messages=[{"role": "user", "content": f"q {i}"}], params={"temperature": 0.1}, variables={"n": i},
    )  # fmt: skip
    base.update(kw)
    return RunResult(**base)


def test_round_trip_every_field(nbp_home):
    r = _result(
        1, data={"a": [1, 2]}, group_id="g1", thread_id="t1", parent_id="p1", prompt_ref="ns/x@2",
        tool_calls=[ToolCall(id="c1", name="f", arguments='{"x": 1}', result={"ok": True})],
        media=[Media(mime="image/png", data=b"\x89PNG fake", params={"size": "64x64"}, revised_prompt="rp")],
        template={"messages": [{"role": "user", "content": "q {{n}}"}]}, finish_reason="stop", attempts=2,
    )  # fmt: skip
    history.record(r)
    back = nbp.get_run(r.id)
    assert back.text == r.text and back.data == {"a": [1, 2]}
    assert back.tool_calls[0].result == {"ok": True} and back.tool_calls[0].arguments == '{"x": 1}'
    assert back.media[0].data == b"\x89PNG fake" and (nbp_home / back.media[0].path).exists()
    assert back.messages == r.messages and back.variables == {"n": 1} and back.template == r.template
    assert (back.tokens_in, back.tokens_out, back.cost_usd, back.latency_ms, back.ttft_ms) == (
        3,
        4,
        1.5e-5,
        12.5,
        3.25,
    )
    assert (back.group_id, back.thread_id, back.parent_id, back.prompt_ref, back.attempts) == (
        "g1",
        "t1",
        "p1",
        "ns/x@2",
        2,
    )
    assert nbp.get_run(r.id[:8]).id == r.id
    with pytest.raises(E.RunNotFoundError, match="No run 'nope-not-there' in the history") as info:
        nbp.get_run("nope-not-there")
    assert "\n" not in str(info.value) and "nbp.history()" in str(info.value)
    typo = r.id[:7] + ("0" if r.id[7] != "0" else "1") + r.id[8:12]  # one character off
    with pytest.raises(E.RunNotFoundError, match=f"Did you mean {r.id[:12]}"):
        nbp.get_run(typo)


def test_unknown_cost_is_null_not_zero(nbp_home):
    history.record(_result(2, cost_usd=None))
    df = nbp.sql("select cost_usd is null as isnull from runs")
    assert bool(df["isnull"][0])


def test_ambiguous_prefix(nbp_home):
    history.record(_result(1, id="abcdef01" + "0" * 24))
    history.record(_result(2, id="abcdef02" + "0" * 24))
    with pytest.raises(StoreError, match="ambiguous"):
        nbp.get_run("abcdef")


def test_sql_is_read_only(nbp_home):
    history.record(_result(1))
    with pytest.raises(StoreError, match="read-only"):
        nbp.sql("delete from runs")
    with pytest.raises(StoreError, match="SQL error"):
        nbp.sql("select nope from runs")
    assert len(nbp.history()) == 1


def test_migrations_blank_to_current(nbp_home):
    path = nbp_home / "blank.duckdb"
    con = duckdb.connect(str(path))
    applied = migrations.migrate(con)
    assert applied == [n for n, _ in migrations.MIGRATIONS]
    assert migrations.migrate(con) == []
    tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
    assert {"runs", "prompts", "prompt_labels", "_migrations"} <= tables
    con.close()


def test_migrations_old_to_current_keeps_rows(nbp_home):
    path = nbp_home / db.DB_FILE
    con = duckdb.connect(str(path))
    assert migrations.migrate(con, upto=1) == ["0001_runs"]
    con.execute(
        "INSERT INTO runs (id, created_at, model, status, text, messages) VALUES (?, now(), ?, ?, ?, ?)",
        ["old-run-0000000000000000000000000", "mock/echo", "ok", "from an old store", "[]"],
    )
    con.close()
    assert nbp.history()["text"].tolist() == [
        "from an old store"
    ]  # opening the store applies the missing steps
    assert nbp.get_run("old-run-0000000000000000000000000").row_key is None
    names = nbp.sql("select name from _migrations order by 1")["name"].tolist()
    assert names == [n for n, _ in migrations.MIGRATIONS]
    nbp.prompts.save("a/b", content="x")


def test_locked_store_warns_once_loses_nothing(nbp_home, monkeypatch):
    monkeypatch.setattr(db, "LOCK_TIMEOUT", 0.2)
    db.ensure_ready()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import fcntl, os, sys, time
            fd = os.open({str(nbp_home / db.LOCK_FILE)!r}, os.O_RDWR)
            fcntl.flock(fd, fcntl.LOCK_EX)
            print("locked", flush=True)
            time.sleep(30)
        """)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t0 = time.perf_counter()
            results = [nbp.run(f"r{i}", model="mock/echo") for i in range(5)]
            assert time.perf_counter() - t0 < 2  # the caller never waits for the store
            assert all(r.status == "ok" for r in results)
            assert history.flush(timeout=3) is False
            time.sleep(0.5)
            assert history.flush(timeout=3) is False
        store_warnings = [w for w in caught if "nbplayground history" in str(w.message)]
        assert len(store_warnings) == 1
        assert "kept in memory" in str(store_warnings[0].message)
    finally:
        holder.kill()
        holder.wait()
    assert history.flush(timeout=15)
    assert sorted(nbp.history()["text"]) == [f"r{i}" for i in range(5)]


def test_unwritable_runs_stay_in_the_journal_at_exit_and_are_taken_in(nbp_home):
    db.ensure_ready()
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {SRC!r})
        import fcntl, os
        fd = os.open({str(nbp_home / db.LOCK_FILE)!r}, os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)  # hold the store's lock: this process's writer cannot get in
        from nbplayground.storage import db
        db.LOCK_TIMEOUT = 0.1
        import nbplayground as nbp
        for i in range(3):
            nbp.run(f"spilled {{i}}", model="mock/echo")
    """)
    # the lock is per open file description: the child's own writer opens a new one and waits in vain
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    journals = list((nbp_home / "journal").glob("*.jsonl"))
    assert len(journals) == 1 and len(journals[0].read_text().splitlines()) == 3
    assert not (nbp_home / "pending").exists()
    df = nbp.history()
    assert sorted(df["text"]) == ["spilled 0", "spilled 1", "spilled 2"]
    assert not journals[0].exists()


# ---------------------------------------------------------------------------------------------------
# Prompt registry
# ---------------------------------------------------------------------------------------------------
def test_registry_versions_labels_and_diff(nbp_home):
    p1 = nbp.prompts.save("support/greeting", content="Hello {{name}}", model="mock/echo", labels=["prod"])
    assert (p1.version, p1.labels, p1.ref) == (1, ["prod"], "support/greeting@1")
    same = nbp.prompts.save("support/greeting", content="Hello {{name}}", model="mock/echo")
    assert same.version == 1  # identical content: no new version
    p2 = nbp.prompts.save(
        "support/greeting",
        messages=[{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi {{name}}"}],
        model="mock/echo", params={"temperature": 0.3}, labels=["staging"],
    )  # fmt: skip
    assert p2.version == 2
    assert nbp.prompts.get("support/greeting").version == 2
    assert nbp.prompts.get("support/greeting@latest").version == 2
    assert nbp.prompts.get("support/greeting@prod").version == 1
    assert nbp.prompts.get("support/greeting@1").messages == [{"role": "user", "content": "Hello {{name}}"}]
    nbp.prompts.save("support/greeting", content="Hey {{name}}", labels=["prod"])  # labels move
    assert nbp.prompts.get("support/greeting@prod").version == 3
    nbp.prompts.set_label("support/greeting", "prod", 2)
    assert nbp.prompts.get("support/greeting@prod").version == 2
    d = nbp.prompts.diff("support/greeting@1", "support/greeting@2")
    assert (
        d.changed
        and "+[system]" in d.text
        and "-Hello {{name}}" in d.text
        and '+params: {"temperature": 0.3}' in d.text
    )
    assert "<pre>" in d._repr_html_() and "+[system]" in d._repr_html_()
    assert not nbp.prompts.diff("support/greeting@1", "support/greeting@1").changed
    listing = nbp.prompts.list()
    assert listing["name"].tolist() == ["support/greeting"] and listing["latest_version"][0] == 3
    assert listing["labels"][0] == "prod=2, staging=2"
    assert nbp.prompts.versions("support/greeting")["version"].tolist() == [3, 2, 1]


def test_registry_errors_are_helpful(nbp_home):
    nbp.prompts.save("support/greeting", content="x")
    with pytest.raises(PromptNotFoundError, match="Did you mean: support/greeting"):
        nbp.prompts.get("support/greting")
    with pytest.raises(PromptNotFoundError, match="Versions: 1; labels: none"):
        nbp.prompts.get("support/greeting@prod")
    with pytest.raises(ValueError, match="namespace/slug"):
        registry.save("NoSlash", content="x")
    with pytest.raises(ValueError, match="exactly one"):
        registry.save("a/b")


def test_registry_never_stores_keys(nbp_home):
    nbp.prompts.save("a/b", content="x", params={"api_key": "sk-registry-secret-123", "temperature": 0})
    assert nbp.prompts.get("a/b").params == {"temperature": 0}
    assert b"sk-registry-secret" not in (nbp_home / db.DB_FILE).read_bytes()


def test_history_rows_are_json_readable(nbp_home):
    r = nbp.run("hi {{x}}", model="mock/echo", variables={"x": {"deep": [1]}})
    row = nbp.sql("select messages, variables, params from runs where id = ?", [r.id])
    assert json.loads(row["variables"][0]) == {"x": {"deep": [1]}}
    assert json.loads(row["messages"][0])[0]["content"] == 'hi {"deep": [1]}'


def test_large_batches_round_trip(nbp_home):
    """Batches above the executemany threshold go through Arrow: every field must survive the same way."""
    results = [
        _result(i, cost_usd=None if i % 3 == 0 else 1e-6 * i, data={"i": i} if i % 2 else None,
                error=None if i % 4 else f"err {i}", status="ok" if i % 4 else "error",
                tokens_in=None if i % 5 == 0 else i, latency_ms=float(i), ttft_ms=None)
        for i in range(40)
    ]  # fmt: skip
    with db.connect(write=True) as con:
        history.insert_rows(con, [history.to_row(r, nbp_home) for r in results])
    for r in results:
        back = nbp.get_run(r.id)
        assert (back.cost_usd, back.data, back.error, back.status, back.tokens_in, back.text) == (
            r.cost_usd, r.data, r.error, r.status, r.tokens_in, r.text)  # fmt: skip
    assert len(nbp.history(limit=100)) == 40
