"""Run history on real DuckDB files: round trips, queries, secrets, failures that lose nothing."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nbplayground.core.errors import StoreError
from nbplayground.core.types import Media, RunResult, ToolCall
from nbplayground.storage import db, history

SRC = str(Path(__file__).resolve().parents[1] / "src")
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def make(i: int = 0, **kw) -> RunResult:
    base = dict(
        id=f"{i:08x}" + "ab" * 12, model="mock/echo", text=f"answer {i} — ünïcode ✓ 日本語", tokens_in=3,
        tokens_out=4, cost_usd=1.5e-5, latency_ms=12.5, ttft_ms=3.25, surface="python", provider="mock",
        messages=[{"role": "user", "content": f"q {i}"}], params={"temperature": 0.1}, variables={"n": i},
        created_at=T0 + timedelta(seconds=i),
    )  # fmt: skip
    base.update(kw)
    return RunResult(**base)


def stored_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if "nbplayground history" in str(w.message)]


# ---------------------------------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------------------------------
def test_round_trip_of_a_fully_populated_run(nbp_home):
    png, wav = b"\x89PNG\r\n\x1a\n fake image", b"RIFF fake wave"
    r = make(
        1, status="error", error="boom ✗", error_type="ProviderError", data={"a": [1, 2], "b": {"c": None}},
        tool_calls=[ToolCall(id="c1", name="lookup", arguments='{"x": 1}', result={"ok": True}),
                    ToolCall(id="c2", name="fail", arguments="{}", error="tool raised")],
        media=[Media(mime="image/png", data=png, params={"size": "64x64"}, revised_prompt="a cat"),
               Media(mime="audio/wav", data=wav)],
        template={"messages": [{"role": "user", "content": "q {{n}}"}], "tool_mode": "auto"},
        prompt_ref="ns/x@2", thread_id="t1", parent_id="p1", group_id="g1", target_index=2, attempts=3,
        finish_reason="tool_calls", kind="chat", surface="magic", row_key="row-7",
        messages=[{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Grüße 👋"}],
        variables={"n": 1, "deep": {"list": [1, "two"]}},
    )  # fmt: skip
    history.record(r)
    assert history.flush()
    assert r.media[0].path == f"media/{r.id}-0.png" and r.media[1].path == f"media/{r.id}-1.wav"
    assert (nbp_home / r.media[0].path).read_bytes() == png
    assert (nbp_home / r.media[1].path).read_bytes() == wav

    back = history.get_run(r.id)
    assert back is not None
    for name in ("id", "model", "status", "text", "error", "error_type", "data", "tokens_in", "tokens_out",
                 "cost_usd", "latency_ms", "ttft_ms", "finish_reason", "provider", "kind", "surface",
                 "messages", "variables", "template", "prompt_ref", "thread_id", "parent_id", "group_id",
                 "target_index", "attempts", "row_key", "params"):  # fmt: skip
        assert getattr(back, name) == getattr(r, name), name
    assert back.created_at == r.created_at and back.created_at.utcoffset() == timedelta(0)
    assert [(t.id, t.name, t.arguments, t.result, t.error) for t in back.tool_calls] == [
        ("c1", "lookup", '{"x": 1}', {"ok": True}, None),
        ("c2", "fail", "{}", None, "tool raised"),
    ]
    assert [(m.mime, m.data, m.path, m.params, m.revised_prompt) for m in back.media] == [
        ("image/png", png, r.media[0].path, {"size": "64x64"}, "a cat"),
        ("audio/wav", wav, r.media[1].path, {}, None),
    ]
    media_json = json.loads(history.sql("SELECT media FROM runs")["media"][0])
    assert media_json[0] == {"mime": "image/png", "path": r.media[0].path, "size": len(png),
                             "params": {"size": "64x64"}, "revised_prompt": "a cat"}  # fmt: skip


def test_minimal_run_keeps_nulls(nbp_home):
    history.record(RunResult(id="minimal-run-0001", model="mock/echo"))
    back = history.get_run("minimal-run-0001")
    assert back.cost_usd is None and back.tokens_in is None and back.data is None and back.template is None
    assert back.tool_calls == [] and back.media == [] and back.params == {} and back.text == ""
    isnull = history.sql("SELECT cost_usd IS NULL AS c, data IS NULL AS d FROM runs")
    assert bool(isnull["c"][0]) and bool(isnull["d"][0])  # unknown cost is NULL, not 0


@pytest.mark.parametrize(
    ("mime", "ext"),
    [("image/png", "png"), ("image/jpeg", "jpg"), ("audio/wav", "wav"), ("audio/mpeg", "mp3"),
     ("audio/mp3", "mp3"), ("application/octet-stream", "bin"), ("audio/wav; codecs=1", "wav")],
)  # fmt: skip
def test_media_extensions(mime, ext):
    assert history.media_extension(mime) == ext


def test_naive_created_at_is_taken_as_utc(nbp_home):
    history.record(make(1, created_at=datetime(2026, 3, 4, 5, 6, 7)))
    assert history.get_run(make(1).id).created_at == datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def test_same_run_recorded_twice_is_stored_once(nbp_home):
    r = make(1)
    history.record(r)
    history.record(r)
    assert history.flush()
    history.record(r)
    assert int(history.sql("SELECT count(*) AS n FROM runs")["n"][0]) == 1


def test_unserialisable_values_do_not_lose_the_run(nbp_home):
    loop: dict = {}
    loop["self"] = loop
    history.record(make(1, data=loop, variables={"obj": object()}))
    back = history.get_run(make(1).id)
    assert back is not None and back.text == make(1).text


# ---------------------------------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------------------------------
def test_empty_store_reads_and_creates_the_file(nbp_home):
    assert history.history() == []
    import nbplayground as nbp

    assert list(nbp.history().columns) == list(history.HISTORY_COLUMNS) and nbp.history().empty
    assert (nbp_home / db.DB_FILE).is_file()
    assert history.get_run("nothing-here") is None and history.thread_runs("t") == []


def test_history_order_filters_and_pagination(nbp_home):
    models, surfaces, statuses = ["mock/echo", "mock/lorem"], ["python", "magic", "widget"], ["ok", "error"]
    runs = [
        make(i, model=models[i % 2], surface=surfaces[i % 3], status=statuses[int(i % 5 == 0)],
             thread_id="t" if i % 4 == 0 else None, group_id="g" if i % 7 == 0 else None)
        for i in range(40)
    ]  # fmt: skip
    tie = [make(100 + k, created_at=T0 + timedelta(seconds=1000)) for k in range(3)]  # same timestamp
    for r in [*runs, *tie]:
        history.record(r)

    found = history.history(limit=1000)
    assert [f.name for f in dataclasses.fields(found[0])] == [
        "id", "created_at", "surface", "model", "status", "text", "error", "tokens_in", "tokens_out", "cost_usd",
        "latency_ms", "ttft_ms", "prompt_ref", "thread_id", "parent_id", "group_id",
    ]  # fmt: skip
    expected = sorted([*runs, *tie], key=lambda r: (r.created_at, r.id), reverse=True)
    assert [r.id for r in found] == [r.id for r in expected]
    assert found[0].text == expected[0].text  # full text, not truncated
    assert len(history.history()) == 43  # the default limit is 50

    pages = [[r.id for r in history.history(limit=10, offset=o)] for o in range(0, 50, 10)]
    assert [i for page in pages for i in page] == [r.id for r in expected]
    assert [len(p) for p in pages] == [10, 10, 10, 10, 3]

    def ids(**f) -> list[str]:
        return [r.id for r in history.history(limit=1000, **f)]

    def want(pred) -> list[str]:
        return [r.id for r in expected if pred(r)]

    assert ids(model="mock/lorem") == want(lambda r: r.model == "mock/lorem")
    assert ids(surface="magic", status="ok") == want(lambda r: r.surface == "magic" and r.status == "ok")
    assert ids(model="mock/echo", surface="python", status="error") == want(
        lambda r: (r.model, r.surface, r.status) == ("mock/echo", "python", "error")
    )
    assert ids(thread_id="t") == want(lambda r: r.thread_id == "t")
    assert ids(group_id="g", model="mock/echo") == want(
        lambda r: r.group_id == "g" and r.model == "mock/echo"
    )
    assert ids(model="nope") == []
    assert ids(model="x' OR '1'='1") == []  # parameterized: no injection


def test_get_run_by_prefix(nbp_home):
    a, b, c = (
        make(1, id="abcdef01" + "0" * 24),
        make(2, id="abcdef02" + "0" * 24),
        make(3, id="ffff" + "1" * 28),
    )
    for r in (a, b, c):
        history.record(r)
    assert history.get_run(a.id).id == a.id
    assert history.get_run("abcdef01").id == a.id
    assert history.get_run("ffff1111").id == c.id
    assert history.get_run("ffff") is None  # prefixes need 6 characters
    assert history.get_run("0123456789") is None
    with pytest.raises(StoreError, match="ambiguous") as err:
        history.get_run("abcdef")
    assert a.id in str(err.value) and b.id in str(err.value)


def test_thread_runs_oldest_first(nbp_home):
    for i in (5, 1, 3):
        history.record(make(i, thread_id="chat"))
    history.record(make(9, thread_id="other"))
    assert [r.id for r in history.thread_runs("chat")] == [make(i).id for i in (1, 3, 5)]


def test_sql_reads_with_parameters(nbp_home):
    for i in range(5):
        history.record(make(i, model="mock/lorem" if i % 2 else "mock/echo"))
    df = history.sql("SELECT model, count(*) AS n FROM runs WHERE tokens_in = ? GROUP BY 1 ORDER BY 1", [3])
    assert df.to_dict("list") == {"model": ["mock/echo", "mock/lorem"], "n": [3, 2]}
    assert history.sql("SELECT name FROM _migrations").shape[0] >= 2
    assert len(history.sql("EXPLAIN SELECT * FROM runs")) >= 1


@pytest.mark.parametrize(
    "statement",
    ["DELETE FROM runs", "UPDATE runs SET text = 'x'", "INSERT INTO runs (id, created_at) VALUES ('x', now())",
     "DROP TABLE runs", "CREATE TABLE evil (a INT)", "ALTER TABLE runs ADD COLUMN evil INT",
     "SELECT 1; DELETE FROM runs", "ATTACH ':memory:' AS other", "COPY runs TO 'out.csv'", "EXPORT DATABASE 'dump'"],
)  # fmt: skip
def test_sql_refuses_writes(nbp_home, statement):
    history.record(make(1))
    with pytest.raises(StoreError, match="read-only through sql"):
        history.sql(statement)
    assert len(history.history()) == 1


def test_sql_errors_are_store_errors(nbp_home):
    with pytest.raises(StoreError, match="SQL error"):
        history.sql("SELECT nope FROM runs")
    with pytest.raises(StoreError, match="SQL error"):
        history.sql("SELEC 1")


def test_reads_see_this_process_own_runs_at_once(nbp_home):
    for i in range(20):
        history.record(make(i))
        assert len(history.history(limit=100)) == i + 1


def test_record_costs_the_caller_microseconds(nbp_home):
    results = [make(i, text="x" * 500) for i in range(2000)]
    history.record(results[0])
    history.flush()
    t0 = time.perf_counter()
    for r in results[1:]:
        history.record(r)
    per_call_ms = (time.perf_counter() - t0) / (len(results) - 1) * 1000
    assert per_call_ms < 0.5, per_call_ms  # ~0.1 ms measured (the row and its journal line); a regression check
    assert history.flush()
    assert int(history.sql("SELECT count(*) AS n FROM runs")["n"][0]) == 2000


def test_threads_reading_and_writing_at_once(nbp_home):
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(15):
                history.history(limit=5)
                history.sql("SELECT count(*) FROM runs")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(200):
        history.record(make(i))
    for t in threads:
        t.join(60)
    assert not errors
    assert history.flush() and int(history.sql("SELECT count(*) AS n FROM runs")["n"][0]) == 200


def test_nested_connections_on_one_thread(nbp_home):
    with db.connect(write=True) as con:
        con.execute("INSERT INTO runs (id, created_at) VALUES ('nested-0001', now())")
        with db.connect(write=False) as inner:  # reuses the open connection, no self-deadlock
            assert inner.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
    with db.connect(write=False), pytest.raises(StoreError, match="read-only"), db.connect(write=True):
        pass


# ---------------------------------------------------------------------------------------------------
# Secrets
# ---------------------------------------------------------------------------------------------------
SECRET = "sk-test-SECRET123"


def test_params_never_hold_secrets(nbp_home):
    params = {
        "api_key": SECRET, "api_base": "http://secret-host.invalid/v1", "extra_headers": {"X-Api-Key": SECRET},
        "timeout": 5, "temperature": 0.5, "max_tokens": 10, "max_completion_tokens": 20,
        "client_secret": SECRET, "password": SECRET, "Authorization": f"Bearer {SECRET}", "access_token": SECRET,
        "extra_body": {"metadata": {"user": "u1", "api_token": SECRET}, "note": SECRET},
    }  # fmt: skip
    r = make(1, params=params)
    history.record(r)
    assert history.flush()
    assert r.params["api_key"] == SECRET  # the caller's object is left alone
    assert history.get_run(r.id).params == {
        "temperature": 0.5, "max_tokens": 10, "max_completion_tokens": 20,
        "extra_body": {"metadata": {"user": "u1"}, "note": "sk-***"},
    }  # fmt: skip
    history.reset_for_tests()  # close everything: DuckDB checkpoints the WAL into the file
    files = [p for p in nbp_home.rglob("*") if p.is_file()]
    assert any(p.name == db.DB_FILE for p in files)
    for path in files:
        raw = path.read_bytes()
        assert b"SECRET123" not in raw and b"secret-host" not in raw, path


@pytest.mark.parametrize(
    ("params", "kept"),
    [({"max_output_tokens": 5, "budget_tokens": 9, "top_logprobs": 2}, {"max_output_tokens", "budget_tokens", "top_logprobs"}),
     ({"key": 1, "token": 2, "api_version": "x", "organization": "o", "base_url": "u", "seed": 3}, {"seed"})],
)  # fmt: skip
def test_safe_params(params, kept):
    assert set(history.safe_params(params)) == kept


# ---------------------------------------------------------------------------------------------------
# Failures: warn once, never raise to the caller, lose nothing, write nothing twice
# ---------------------------------------------------------------------------------------------------
def test_broken_store_warns_once_and_writes_everything_later(nbp_home):
    (nbp_home / db.DB_FILE).mkdir()  # a directory where the database file should be
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        for i in range(5):
            history.record(make(i))
        assert time.perf_counter() - t0 < 0.1  # the caller never waits for the store
        assert history.flush(timeout=10) is False
        for i in range(5, 10):
            history.record(make(i))
        assert history.flush(timeout=10) is False
        with pytest.raises(StoreError, match="history store"):  # a reader is told, as a StoreError
            history.history()
    messages = stored_warnings(caught)
    assert len(messages) == 1, messages
    assert str(nbp_home / db.DB_FILE) in messages[0] and "kept in memory" in messages[0]

    (nbp_home / db.DB_FILE).rmdir()
    assert history.flush(timeout=10) is True
    assert sorted(r.id for r in history.history(limit=100)) == sorted(make(i).id for i in range(10))


def test_locked_store_warns_once_and_loses_nothing(nbp_home, monkeypatch):
    monkeypatch.setattr(db, "LOCK_TIMEOUT", 0.3)
    db.ensure_ready()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import fcntl, os, time
            fd = os.open({str(nbp_home / db.LOCK_FILE)!r}, os.O_RDWR)
            fcntl.flock(fd, fcntl.LOCK_EX)
            print("locked", flush=True)
            time.sleep(60)
        """)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t0 = time.perf_counter()
            for i in range(50):
                history.record(make(i))
            assert time.perf_counter() - t0 < 0.1
            assert history.flush(timeout=5) is False
            for i in range(50, 60):
                history.record(make(i))
            assert history.flush(timeout=5) is False
            with pytest.raises(StoreError, match="stayed locked"):  # never a raw DuckDB lock error
                history.sql("SELECT 1")
        messages = stored_warnings(caught)
        assert len(messages) == 1 and "kept in memory" in messages[0], messages
    finally:
        holder.kill()
        holder.wait()
    assert history.flush(timeout=10)
    assert sorted(r.id for r in history.history(limit=100)) == sorted(make(i).id for i in range(60))


def test_unwritable_media_folder_keeps_the_run_and_its_media_in_the_fallback_home(nbp_home, tmp_path,
                                                                                  monkeypatch):  # fmt: skip
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "runtime"))
    nbp_home.mkdir(parents=True, exist_ok=True)
    (nbp_home / "media").write_text("a file where the media folder should be")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history.record(make(1, media=[Media(mime="image/png", data=b"png")]))
        history.record(make(2))
        assert history.flush(timeout=10) is True  # neither run is held up
    messages = stored_warnings(caught)
    assert len(messages) == 1 and "media" in messages[0], messages
    back = history.get_run(make(1).id)
    path = Path(back.media[0].path)
    assert back.media[0].data == b"png" and path.is_absolute() and str(path.parent) in messages[0]
    assert path.is_relative_to(tmp_path / "runtime" / "nbplayground")
    assert sorted(history.sql("SELECT id FROM runs")["id"]) == sorted([make(1).id, make(2).id])


SPILLER = """
import sys; sys.path.insert(0, {src!r})
from datetime import datetime, timezone
from nbplayground.core.types import Media, RunResult
from nbplayground.storage import history
for i in range(3):
    history.record(RunResult(id="spilled-%02d" % i + "0" * 22, model="mock/echo", text="spilled %d" % i,
                             params={{"api_key": "sk-test-SECRET123", "temperature": 0}},
                             media=[Media(mime="image/png", data=b"png %d" % i)] if i == 0 else []))
print("recorded", flush=True)
"""


def test_unwritable_runs_stay_in_the_journal_at_exit_and_the_next_writer_takes_them_in(nbp_home):
    (nbp_home / db.DB_FILE).mkdir()  # the child cannot write: its runs must survive its exit
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", SPILLER.format(src=SRC)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.strip() == "recorded", proc.stderr
    journals = list((nbp_home / "journal").glob("*.jsonl"))
    assert len(journals) == 1 and len(journals[0].read_text().splitlines()) == 3
    assert b"SECRET123" not in journals[0].read_bytes()
    assert not (nbp_home / "pending").exists()
    assert (nbp_home / "media" / ("spilled-00" + "0" * 22 + "-0.png")).read_bytes() == b"png 0"

    (nbp_home / db.DB_FILE).rmdir()
    history.record(make(1))
    assert history.flush()
    assert not journals[0].exists()  # the writer took it in, then deleted it
    assert sorted(r.text for r in history.history()) == sorted(["spilled 0", "spilled 1", "spilled 2", make(1).text])
    assert history.get_run("spilled-00").media[0].data == b"png 0"


def test_a_reader_ingests_spilled_runs_and_nothing_is_written_twice(nbp_home):
    history.record(make(1))
    assert history.flush()
    # a spill file holding a run already stored (a writer that succeeded late) and a new one
    rows = [history.to_row(make(1), nbp_home), history.to_row(make(2), nbp_home)]
    (nbp_home / "pending").mkdir()
    (nbp_home / "pending" / "123-abc.jsonl").write_text(
        "".join(history._row_to_json(r) + "\n" for r in rows), encoding="utf-8"
    )
    assert sorted(r.id for r in history.history()) == sorted([make(1).id, make(2).id])
    assert not list((nbp_home / "pending").iterdir())


def test_a_bad_line_in_a_pending_file_is_quarantined_and_the_good_ones_stored(nbp_home):
    good = history._row_to_json(history.to_row(make(2), nbp_home))
    (nbp_home / "pending").mkdir(parents=True)
    (nbp_home / "pending" / "1-x.jsonl").write_text(f"{{not json\n{good}\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history.record(make(1))
        assert history.flush()
    assert not list((nbp_home / "pending").iterdir())
    messages = stored_warnings(caught)
    assert len(messages) == 1 and "quarantine" in messages[0], messages
    assert sorted(r.id for r in history.history()) == sorted([make(1).id, make(2).id])
    import nbplayground as nbp

    [bad] = nbp.store_status().quarantined
    assert "line 1" in bad.error and bad.source.endswith("1-x.jsonl") and bad.id is None


def test_importing_the_store_stays_cheap():
    code = (
        "import sys; import nbplayground.storage.history, nbplayground.storage.registry; "
        "print(sorted(m for m in ('duckdb', 'pandas', 'pyarrow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": SRC})  # fmt: skip
    assert out.stdout.strip() == "[]", out.stderr


def test_a_script_that_exits_right_after_its_run_writes_it_without_warnings(nbp_home):
    code = "import nbplayground as nbp; nbp.run('bye', model='mock/echo')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NBPLAYGROUND_HOME": str(nbp_home)})  # fmt: skip
    assert proc.returncode == 0 and proc.stderr == ""
    assert not (nbp_home / "pending").exists() or not list((nbp_home / "pending").iterdir())
    from nbplayground.storage import history

    assert [r.text for r in history.history()] == ["bye"]
