"""Never lose a run (issue 12): hostile values, poisoned spill files and journals, a corrupt store, a
read-only home, a full disk, and a script that exits right after its last run.

Each test ends with every run that was returned to a caller in the history, and with the original
bytes of anything that could not be stored kept on disk. Multi-process tests are marked ``slow``;
SIGKILL tests are in ``test_durability_kill.py``.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import subprocess
import sys
import warnings
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import nbplayground as nbp
from nbplayground.core import secrets
from nbplayground.core.errors import StoreError
from nbplayground.core.types import Media, RunResult, ToolCall
from nbplayground.storage import db, history
from support.durability import (
    ID,
    child_env,
    damage_a_runs_block,
    files_containing,
    journal_lines,
    pending_files,
    printed_ids,
    read_only,
    run_python,
    sha256,
    small_tmpfs,
    snapshot,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def make(i: int, **kw: Any) -> RunResult:
    base: dict[str, Any] = dict(
        id=f"run-{i:05d}", model="mock/echo", text=f"answer {i} " + "ünïcode ✓ " * 200, tokens_in=3,
        tokens_out=4, messages=[{"role": "user", "content": f"q {i}"}], created_at=T0 + timedelta(seconds=i),
    )  # fmt: skip
    base.update(kw)
    return RunResult(**base)


def stored_ids() -> set[str]:
    """Ids in the store, read as any process reads (which takes in what dead processes left behind)."""
    return set(history.sql("SELECT id FROM runs")["id"])


def no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr[-3000:]


# ---------------------------------------------------------------------------------------------------
# 1. Any value a RunResult can hold is stored, and read back by another process
# ---------------------------------------------------------------------------------------------------
NAN, INF = float("nan"), float("inf")
NASTY_TEXT = ["bad \ud800", "\ud83d", "\ude00 tail", "\ud83d\ude00", "nul \x00 byte", "", "NaN", "\\u0000",
              "'; DROP TABLE runs; --", '{"json": "in a string"}', "\u2028\u2029", "日本語 👋"]  # fmt: skip
CHARS = st.one_of(
    st.characters(), st.characters(categories=["Cs"]), st.sampled_from(["\x00", "\ufffd", "\U0001f600"])
)
TEXT = st.one_of(st.text(CHARS, max_size=30), st.sampled_from(NASTY_TEXT))
KEY = TEXT.filter(lambda k: not secrets.is_secret_name(k))  # keys named like secrets are dropped by design
INT = st.one_of(
    st.integers(-(2**31), 2**31 - 1),
    st.integers(-(2**80), 2**80),
    st.sampled_from([3_000_000_000, 2**31, -(2**31) - 1, 2**63 - 1, 2**63, -(2**63) - 1, 2**70, -(2**70)]),
)
FLOAT = st.one_of(st.floats(), st.sampled_from([NAN, INF, -INF, -0.0, 1e308, 5e-324]))
LEAF = st.one_of(
    st.none(), st.booleans(), INT, FLOAT, TEXT, st.binary(max_size=6), st.datetimes(), st.decimals(),
    st.sets(st.integers(0, 9), max_size=3),
)  # fmt: skip
NESTED = st.recursive(
    LEAF,
    lambda kids: st.lists(kids, max_size=3) | st.tuples(kids, kids) | st.dictionaries(KEY, kids, max_size=3),
    max_leaves=10,
)
OBJECT = st.dictionaries(KEY, NESTED, max_size=3)


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


ZONES = (
    st.none() | st.just(UTC) | st.builds(timezone, st.timedeltas(timedelta(hours=-23), timedelta(hours=23)))
)
FIELDS = st.fixed_dictionaries({
    "model": TEXT, "status": TEXT, "text": TEXT, "error": optional(TEXT), "error_type": optional(TEXT),
    "error_status": optional(INT), "data": NESTED,
    "tool_calls": st.lists(st.builds(ToolCall, id=TEXT, name=TEXT, arguments=TEXT, result=NESTED,
                                     error=optional(TEXT)), max_size=2),
    "media": st.lists(st.builds(Media, mime=TEXT, data=st.binary(max_size=32), params=OBJECT,
                                revised_prompt=optional(TEXT)), max_size=2),
    "tokens_in": optional(INT), "tokens_out": optional(INT), "cost_usd": optional(FLOAT),
    "latency_ms": optional(FLOAT), "ttft_ms": optional(FLOAT), "finish_reason": optional(TEXT),
    "provider": optional(TEXT), "kind": TEXT, "surface": TEXT, "messages": st.lists(OBJECT, max_size=3),
    "params": OBJECT, "variables": OBJECT, "template": optional(OBJECT), "prompt_ref": optional(TEXT),
    "thread_id": optional(TEXT), "parent_id": optional(TEXT), "group_id": optional(TEXT),
    "row_key": optional(TEXT), "target_index": INT, "attempts": INT,
    "created_at": st.datetimes(datetime(1971, 1, 1), datetime(2200, 1, 1), timezones=ZONES),
})  # fmt: skip

#: The values the issue saw lose runs, all in one run.
ISSUE_VALUES: dict[str, Any] = {
    "model": "m\x00", "status": "ok", "text": "bad \ud800", "error": "half an emoji \ud83d", "error_type": None,
    "error_status": 2**70, "data": {"emoji": "\ud83d", "n": 2**70, "x": NAN, "nul": "\x00", "when": T0,
                                    "raw": b"\xff", "deep": [[[{"k": -(2**80)}]]]},
    "tool_calls": [ToolCall(id="c\udfff", name="t", arguments="{\ud800", result={"big": 10**30, "inf": INF})],
    "media": [Media(mime="image/png\ud800", data=b"\x89PNG", params={"n": 2**64}, revised_prompt="\x00")],
    "tokens_in": 3_000_000_000, "tokens_out": -(2**63) - 1, "cost_usd": NAN, "latency_ms": INF,
    "ttft_ms": -INF, "finish_reason": "\udc80", "provider": "p", "kind": "chat", "surface": "python",
    "messages": [{"role": "user", "content": "bad \ud800"}], "params": {"temperature": NAN, "n": 2**70},
    "variables": {"v": "\udfff", "d": Decimal("NaN")}, "template": {"t": "\x00"}, "prompt_ref": None,
    "thread_id": "t\ud800", "parent_id": None, "group_id": None, "row_key": "r\x00",
    "target_index": 2**31, "attempts": 3_000_000_000, "created_at": T0,
}  # fmt: skip

STRINGS = ("model", "status", "text", "error", "error_type", "finish_reason", "provider", "kind", "surface",
           "prompt_ref", "thread_id", "parent_id", "group_id", "row_key")  # fmt: skip
INTS = ("tokens_in", "tokens_out", "error_status", "target_index", "attempts")
FLOATS = ("cost_usd", "latency_ms", "ttft_ms")

READ_BACK = """
import json, os
import nbplayground as nbp
ids = json.load(open(os.environ["NBP_TEST_IDS"]))
out = {"count": None, "runs": {}, "errors": {}}
try:
    df = nbp.sql("SELECT count(*) AS n, count(DISTINCT id) AS d FROM runs")
    out["count"] = [int(df["n"][0]), int(df["d"][0])]
except Exception as exc:
    out["errors"]["<count>"] = repr(exc)
for i in ids:
    try:
        r = nbp.get_run(i)
    except Exception as exc:
        out["errors"][i] = repr(exc)
        continue
    out["runs"][i] = None if r is None else {
        **{f: getattr(r, f) for f in %r}, "data": r.data, "created_at": r.created_at.isoformat(),
        "media": [m.data.hex() for m in r.media],
    }
with open(os.environ["NBP_TEST_OUT"], "w") as fh:
    json.dump(out, fh, ensure_ascii=True, default=repr)
""" % (STRINGS + INTS + FLOATS,)  # noqa: UP031 (the script itself uses braces)


def repairs(s: str) -> set[str]:
    """What a string may be stored as: lone surrogates become U+FFFD (a valid pair may be joined first)."""
    lone = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in s)
    joined = s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return {lone, joined}


def plain(value: Any) -> bool:
    """JSON that every store keeps exactly: no surrogates, NaN, infinities, huge ints, tuples or objects."""
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, str):
        return not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, int):
        return abs(value) < 2**53
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(plain(v) for v in value)
    if isinstance(value, dict):
        return all(plain(k) and plain(v) for k, v in value.items())
    return False


def mismatches(run_id: str, sent: dict[str, Any], back: dict[str, Any]) -> list[str]:
    """How a run read back differs from what was recorded, beyond the repairs the issue allows."""
    bad = []
    for name in STRINGS:
        want, got = sent[name], back[name]
        if want is None:
            ok = got is None
        elif name == "text" and want == "":
            ok = got == ""
        else:
            ok = got in repairs(want)
        if not ok:
            bad.append(f"{run_id}.{name}: sent {want!r}, read {got!r}")
    for name in INTS:
        want, got = sent[name], back[name]
        null = {"target_index": 0, "attempts": 1}.get(name)  # what get_run shows for a NULL
        if want is None:
            ok = got == null
        elif -(2**31) <= want < 2**31:  # fits any integer column: must be kept exactly
            # (get_run has always read 0 attempts as 1)
            ok = got == want or (name == "attempts" and want == 0 and got == 1)
        else:  # may not fit: NULL, never a wrong number
            ok = got in (want, null)
        if not ok:
            bad.append(f"{run_id}.{name}: sent {want!r}, read {got!r}")
    for name in FLOATS:
        want, got = sent[name], back[name]
        if want is None or math.isnan(want):
            ok = got is None or (isinstance(got, float) and math.isnan(got))
        else:
            ok = got == want or (math.isinf(want) and got is None)
        if not ok:
            bad.append(f"{run_id}.{name}: sent {want!r}, read {got!r}")
    if plain(sent["data"]) and back["data"] != sent["data"]:
        bad.append(f"{run_id}.data: sent {sent['data']!r}, read {back['data']!r}")
    created = sent["created_at"] if sent["created_at"].tzinfo else sent["created_at"].replace(tzinfo=UTC)
    if datetime.fromisoformat(back["created_at"]) != created:
        bad.append(f"{run_id}.created_at: sent {created!r}, read {back['created_at']!r}")
    if back["media"] != [m.data.hex() for m in sent["media"]]:
        bad.append(f"{run_id}.media: sent {[m.data for m in sent['media']]!r}, read {back['media']!r}")
    return bad


@pytest.mark.slow
def test_any_run_result_is_stored_and_read_back_by_a_new_process(nbp_home, tmp_path):
    sent: dict[str, dict[str, Any]] = {}
    numbers = itertools.count()

    @settings(max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(FIELDS)
    @example(ISSUE_VALUES)
    def record(fields: dict[str, Any]) -> None:
        result = RunResult(id=f"prop-{next(numbers):05d}", **fields)
        sent[result.id] = {**fields, "media": [Media(mime=m.mime, data=m.data) for m in fields["media"]]}
        history.record(result)  # must never raise to the caller, whatever the values

    # The store exists and its libraries are loaded before Hypothesis starts: Hypothesis looks numpy up
    # in sys.modules while drawing, and must not see it half-imported by the writer thread.
    history.sql("SELECT 1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # what a warning says is tested elsewhere; here only what is stored
        record()
        flushed = history.flush(timeout=120)

    ids_file, out_file = tmp_path / "ids.json", tmp_path / "out.json"
    ids_file.write_text(json.dumps(list(sent)))
    proc = run_python(READ_BACK, nbp_home, NBP_TEST_IDS=str(ids_file), NBP_TEST_OUT=str(out_file))
    assert proc.returncode == 0, proc.stderr[-3000:]
    back = json.loads(out_file.read_text())
    assert not back["errors"], dict(itertools.islice(back["errors"].items(), 5))
    missing = [i for i, run in back["runs"].items() if run is None]
    assert not missing, (
        f"{len(missing)} of {len(sent)} runs not stored, e.g. {[sent[i] for i in missing[:2]]!r}"
    )
    assert back["count"] == [len(sent), len(sent)]
    assert flushed, "history.flush() said some runs could not be written"
    bad = [m for i in sent for m in mismatches(i, sent[i], back["runs"][i])]
    assert not bad, f"{len(bad)} values stored wrongly:\n" + "\n".join(bad[:10])


# ---------------------------------------------------------------------------------------------------
# 2. Poisoned spill files and journals are taken in line by line
# ---------------------------------------------------------------------------------------------------
def pending_line(run_id: str, **fields: Any) -> str:
    """One line of ``pending/*.jsonl`` as earlier versions wrote them (JSON columns hold JSON text)."""
    row: dict[str, Any] = {
        "id": run_id, "created_at": T0.isoformat(), "surface": "python", "provider": "mock", "model": "mock/echo",
        "kind": "chat", "status": "ok", "text": f"text of {run_id}", "tokens_in": 3, "tokens_out": 4,
        "messages": json.dumps([{"role": "user", "content": "q"}]), "params": "{}", "variables": "{}",
        "target_index": 0, "attempts": 1,
    }  # fmt: skip
    row.update(fields)
    return json.dumps(row)  # ASCII: a lone surrogate is written as its \\ud800 escape, as json.dumps does


GARBAGE = b"{not json at all"


def test_a_poisoned_pending_file_is_taken_in_line_by_line(nbp_home):
    good = ["pp-good-1", "pp-good-2"]
    lines = [
        pending_line("pp-good-1"),
        pending_line("pp-words", tokens_in="lots"),  # not a number
        pending_line("pp-int32", tokens_in=3_000_000_000),  # does not fit INTEGER
        pending_line("pp-huge", tokens_out=2**70, target_index=-(2**70)),  # fits no integer column
        pending_line("pp-floats", cost_usd=NAN, latency_ms=INF),  # NaN / Infinity literals
        pending_line("pp-surrogate", text="bad \ud800", model="m\udfff"),
        pending_line("pp-object", data={"a": [1, 2]}),  # an object where JSON text was expected
        GARBAGE.decode(),
        "[1, 2, 3]",  # JSON, but not a run
        pending_line("pp-good-2"),
    ]
    torn = pending_line("pp-torn")[:30]  # the writer died mid-line: no newline
    poisoned = ("\n".join(lines) + "\n" + torn).encode()
    pending = nbp_home / "pending"
    pending.mkdir(mode=0o700, parents=True)  # private, as nbplayground keeps its home
    nbp_home.chmod(0o700)
    (pending / "111-poisoned.jsonl").write_bytes(poisoned)
    (pending / "222-other.jsonl").write_text(pending_line("pp-other") + "\n")
    for spilled in pending.iterdir():
        spilled.chmod(0o600)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        history.record(make(1))
        assert history.flush(timeout=60), "a poisoned pending file blocked this process's own run"
    runs = ["pp-words", "pp-int32", "pp-huge", "pp-floats", "pp-surrogate", "pp-object", *good, "pp-other"]
    assert set(runs) | {make(1).id} <= stored_ids()
    for run_id in [*good, "pp-other", "pp-words", "pp-int32", "pp-huge", "pp-floats", "pp-object"]:
        assert history.get_run(run_id).text == f"text of {run_id}"
    assert history.get_run("pp-words").tokens_in is None
    assert history.get_run("pp-int32").tokens_in in (None, 3_000_000_000)
    assert history.get_run("pp-huge").tokens_out is None
    floats = history.get_run("pp-floats")
    assert floats.cost_usd is None and floats.latency_ms in (None, INF)
    surrogate = history.get_run("pp-surrogate")
    assert (surrogate.text, surrogate.model) == ("bad \ufffd", "m\ufffd")
    assert history.get_run("pp-object").data == {"a": [1, 2]}

    assert not [n for n in pending_files(nbp_home) if n.endswith(".jsonl")], pending_files(nbp_home)
    for bad_line in (GARBAGE, b"[1, 2, 3]"):  # lines that are not runs: kept, byte for byte, in quarantine
        assert files_containing(nbp_home / "quarantine", bad_line), (bad_line, snapshot(nbp_home))
    status = nbp.store_status()
    shown = f"{status!r}\n{status!s}"
    assert files_containing(nbp_home / "quarantine", GARBAGE)[0].name in shown, (
        shown
    )  # it says where they are

    # the next process is not blocked, and is not told about it again
    later = run_python("import nbplayground as nbp; nbp.run('later', model='mock/echo'); "
                       "print(len(nbp.history(limit=1000)))", nbp_home)  # fmt: skip
    assert (later.returncode, later.stderr) == (0, ""), later.stderr[-3000:]
    assert int(later.stdout) == len(runs) + 2


KILLED_WITH_A_JOURNAL = f"""
import os, signal
import nbplayground as nbp
for i in range(5):
    r = nbp.run("journal %d" % i, model="mock/echo")
    print({ID!r} + r.id, flush=True)
print("pid", os.getpid(), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""

HOLD_DUCKDB = (
    "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('locked', flush=True); sys.stdin.read()"
)


@pytest.mark.slow
def test_a_dead_process_journal_with_a_bad_and_a_torn_line_is_taken_in(nbp_home):
    history.record(make(0))
    assert history.flush()
    history.reset_for_tests()
    # Another program holds the database open, so the child's runs can only reach its journal.
    holder = subprocess.Popen([sys.executable, "-c", HOLD_DUCKDB, str(nbp_home / db.DB_FILE)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        proc = run_python(KILLED_WITH_A_JOURNAL, nbp_home)
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        ids = printed_ids(proc.stdout)
        pid = next(line.split()[1] for line in proc.stdout.splitlines() if line.startswith("pid "))
        journals = list((nbp_home / "journal").glob(f"{pid}-*.jsonl"))
        assert len(journals) == 1, sorted(p.name for p in (nbp_home / "journal").glob("*"))
        raw = journals[0].read_bytes()
        assert len(ids) == 5 and all(i.encode() in raw for i in ids), raw[:500]
        assert raw.endswith(b"\n"), "each journal line is complete when its call returns"
        lines = raw.split(b"\n")[:-1]
        journals[0].write_bytes(
            b"\n".join([lines[0], GARBAGE, *lines[1:]]) + b"\n" + lines[-1][: len(lines[-1]) // 2]
        )
    finally:
        holder.stdin.close()
        holder.wait(60)

    with pytest.warns(RuntimeWarning, match="quarantined in .*quarantine"):  # the garbage line, said once
        stored = stored_ids()
    assert set(ids) <= stored  # this process opened the store: it took in the dead one's journal
    left = journal_lines(nbp_home)
    assert not [line for line in left if any(i.encode() in line for i in ids)], left[:3]
    assert files_containing(nbp_home / "quarantine", GARBAGE), snapshot(nbp_home)


# ---------------------------------------------------------------------------------------------------
# 3. A corrupt store is set aside (never deleted), a new one is made, rows can be recovered
# ---------------------------------------------------------------------------------------------------
AFTER_DAMAGE = f"""
import json
import nbplayground as nbp
def read(tag):
    try:
        print(tag + " " + json.dumps(sorted(nbp.history(limit=100)["id"])), flush=True)
    except Exception as exc:  # only an nbplayground error naming the file is acceptable
        print(tag + "-error " + type(exc).__module__ + "." + type(exc).__name__ + ": " + str(exc), flush=True)
if {{read_first}}:
    read("first-read")
for i in range(3):
    r = nbp.run("after the damage %d" % i, model="mock/echo")
    print({ID!r} + r.id, flush=True)
read("read")
for i in range(3, 5):
    r = nbp.run("after the damage %d" % i, model="mock/echo")
    print({ID!r} + r.id, flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["garbage", "bad-block"])
def test_a_corrupt_store_is_set_aside_and_every_new_run_is_stored(nbp_home, tmp_path, damage):
    old = [make(i) for i in range(30)]
    for r in old:
        history.record(r)
    assert history.flush()
    history.reset_for_tests()  # closed: DuckDB checkpointed everything into the file
    path = nbp_home / db.DB_FILE
    assert not path.with_name(db.DB_FILE + ".wal").exists()
    if damage == "garbage":
        path.write_bytes(os.urandom(path.stat().st_size))
    else:
        damage_a_runs_block(path, tmp_path)
    damaged = sha256(path)

    # Garbage is met by the first write (the file does not open). A damaged block opens and accepts
    # inserts; only a read finds it, so there the child reads first: runs committed into a file before
    # anyone could know it is damaged are beyond this promise.
    proc = run_python(AFTER_DAMAGE.format(read_first=damage == "bad-block"), nbp_home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    no_traceback(proc.stderr)
    ids = printed_ids(proc.stdout)
    lines = proc.stdout.splitlines()
    for line in lines:
        if line.startswith("first-read-error "):  # said as an nbplayground error naming the file
            assert line.startswith("first-read-error nbplayground.") and db.DB_FILE in line, line
    assert "read" in [line.split(" ")[0] for line in lines], proc.stdout  # the second read works
    read = json.loads(next(line[5:] for line in lines if line.startswith("read ")))
    assert len(ids) == 5 and set(ids[:3]) <= set(read), proc.stdout

    aside = sorted(nbp_home.glob("history.corrupt-*.duckdb"))
    assert len(aside) == 1, sorted(p.name for p in nbp_home.iterdir())
    assert sha256(aside[0]) == damaged  # set aside, byte for byte
    # one warning, saying where the old file is and how to recover from it
    warned = [line for line in proc.stderr.splitlines() if aside[0].name in line]
    assert len(warned) == 1 and "store_recover" in warned[0], proc.stderr

    old_ids = {r.id for r in old}
    stored = stored_ids()
    assert set(ids) <= stored and stored <= set(ids) | old_ids

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # it may say that nothing could be read: fine
            copied = nbp.store_recover(aside[0])
    except StoreError as exc:  # nothing readable: said as an nbplayground error naming the file
        assert aside[0].name in str(exc) and damage == "garbage", exc
        copied = 0
    assert isinstance(copied, int) and 0 <= copied <= len(old)
    if damage == "garbage":
        assert copied == 0
    stored = stored_ids()
    assert set(ids) <= stored and stored <= set(ids) | old_ids
    for r in old:
        if r.id in stored:
            assert history.get_run(r.id).text == r.text  # what is recovered is intact
    assert sha256(aside[0]) == damaged  # recovering reads the file, never changes it


def test_store_recover_copies_every_readable_row_once(nbp_home, tmp_path):
    old = [make(i) for i in range(10)]
    for r in old:
        history.record(r)
    assert history.flush()
    history.reset_for_tests()
    aside = tmp_path / "history.corrupt-20260101T120000.duckdb"
    (nbp_home / db.DB_FILE).rename(aside)
    before = sha256(aside)
    history.record(make(100))
    assert history.flush()

    assert nbp.store_recover(str(aside)) == len(old)
    texts = dict(history.sql("SELECT id, text FROM runs")[["id", "text"]].itertuples(index=False))
    assert texts == {r.id: r.text for r in [*old, make(100)]}
    assert sha256(aside) == before
    nbp.store_recover(aside)  # again: nothing is stored twice
    assert int(history.sql("SELECT count(*) AS n FROM runs")["n"][0]) == len(old) + 1


# ---------------------------------------------------------------------------------------------------
# 3b. Read-only home, full disk
# ---------------------------------------------------------------------------------------------------
@contextmanager
def read_only_home(home: Path):
    """An argv prefix under which ``home`` is read-only: a read-only mount, or file modes for non-root."""
    prefix = read_only(home)
    if prefix is not None:
        yield prefix
        return
    if os.geteuid() == 0:
        pytest.skip("root ignores file modes, and unshare cannot mount the home read-only here")
    modes = {p: p.stat().st_mode for p in [home, *home.rglob("*")]}
    for p in modes:
        p.chmod(0o500 if p.is_dir() else 0o400)
    try:
        yield ()
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


IN_A_READ_ONLY_HOME = f"""
import json
import nbplayground as nbp
print("seen " + json.dumps(sorted(nbp.history(limit=100)["id"])), flush=True)
print("one " + nbp.get_run({make(1).id!r}).text[:9], flush=True)
for i in range(3):
    r = nbp.run("read-only home %d" % i, model="mock/echo")
    print({ID!r} + r.id, flush=True)
print("status " + repr(nbp.store_status()), flush=True)
"""


@pytest.mark.slow
def test_a_read_only_home_is_read_and_new_runs_survive_in_a_fallback(nbp_home, tmp_path, monkeypatch):
    old = [make(i) for i in range(3)]
    for r in old:
        history.record(r)
    assert history.flush()
    history.reset_for_tests()
    before = snapshot(nbp_home)
    runtime = tmp_path / "xdg-runtime"
    runtime.mkdir(mode=0o700)

    with read_only_home(nbp_home) as prefix:
        proc = run_python(IN_A_READ_ONLY_HOME, nbp_home, prefix=prefix, XDG_RUNTIME_DIR=str(runtime))
    assert proc.returncode == 0, proc.stderr[-3000:]
    no_traceback(proc.stderr)
    lines = proc.stdout.splitlines()
    assert json.loads(lines[0].removeprefix("seen ")) == sorted(r.id for r in old)  # reads work
    assert lines[1] == "one " + make(1).text[:9]
    ids = printed_ids(proc.stdout)
    assert len(ids) == 3
    assert snapshot(nbp_home) == before  # nothing in the home was touched
    warned = [line for line in proc.stderr.splitlines() if str(runtime) in line]
    assert len(warned) == 1, proc.stderr  # one warning, naming the fallback folder
    status = next(line for line in lines if line.startswith("status "))
    assert str(runtime) in status, status
    for run_id in ids:  # kept in a journal under the fallback folder
        assert files_containing(runtime, run_id.encode()), (run_id, snapshot(runtime))

    # The home is writable again: the next process on it takes in what was kept for it.
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    assert set(ids) | {r.id for r in old} <= stored_ids()


DISK_FULL_SCRIPT = f"""
import os, time
import nbplayground as nbp
r = nbp.run("before the disk filled", model="mock/echo")
print({ID!r} + r.id, flush=True)
nbp.history()  # written once: the store exists and this process's writer is warm
print("ready", flush=True)
while not os.path.exists(os.environ["NBP_TEST_GO"]):
    time.sleep(0.01)
for i in range(3):
    r = nbp.run("disk full %d" % i, model="mock/echo")
    print({ID!r} + r.id, flush=True)
"""

DISK_FULL_READER = """
import json, os
import nbplayground as nbp
ids = json.loads(os.environ["NBP_TEST_IDS"])
print(json.dumps([i for i in ids if nbp.get_run(i) is not None]))
"""

#: Runs inside the mount namespace, with a small tmpfs as the home: fill it while a script runs, let the
#: script exit, free the space, and read back with a new process. Prints what it saw as JSON.
DISK_FULL_DRIVER = """
import errno, json, os, subprocess, sys
home = os.environ["NBPLAYGROUND_HOME"]
script = subprocess.Popen([sys.executable, "-c", os.environ["NBP_TEST_SCRIPT"]], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
head = script.stdout.readline() + script.stdout.readline()
assert head.endswith("ready\\n"), head + script.stderr.read()
filler = os.path.join(home, "filler")
with open(filler, "wb", buffering=0) as fh:
    for size in (1 << 20, 1 << 12, 1):
        block = b"\\0" * size
        while True:
            try:
                fh.write(block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
free = os.statvfs(home).f_bavail
open(os.environ["NBP_TEST_GO"], "w").close()
rest, err = script.communicate(timeout=120)
pending = os.path.join(home, "pending")
left = sorted(os.listdir(pending)) if os.path.isdir(pending) else []
os.remove(filler)
ids = [line[3:] for line in (head + rest).split("\\n") if line.startswith("id ")]
reader = subprocess.run([sys.executable, "-c", os.environ["NBP_TEST_READER"]], capture_output=True, text=True,
                        timeout=120, env={**os.environ, "NBP_TEST_IDS": json.dumps(ids)})
print(json.dumps({"free": free, "rc": script.returncode, "stderr": err, "ids": ids, "pending": left,
                  "reader_rc": reader.returncode, "found": reader.stdout, "reader_stderr": reader.stderr}))
"""


@pytest.mark.slow
def test_a_full_disk_at_exit_loses_no_run_and_leaves_no_partial_file(nbp_home, tmp_path):
    nbp_home.mkdir(parents=True, exist_ok=True)
    prefix = small_tmpfs(nbp_home, "16m")
    if prefix is None:
        pytest.skip("cannot mount a small tmpfs here (no unshare, or mount namespaces are not allowed)")
    runtime = tmp_path / "xdg-runtime"
    runtime.mkdir(mode=0o700)
    proc = subprocess.run(
        [*prefix, sys.executable, "-c", DISK_FULL_DRIVER], capture_output=True, text=True, timeout=300,
        env=child_env(nbp_home, XDG_RUNTIME_DIR=str(runtime), NBP_TEST_GO=str(tmp_path / "go"),
                      NBP_TEST_SCRIPT=DISK_FULL_SCRIPT, NBP_TEST_READER=DISK_FULL_READER),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.splitlines()[-1])
    assert seen["free"] == 0, "the disk was not full"
    assert seen["rc"] == 0, seen["stderr"][-3000:]
    no_traceback(seen["stderr"])
    assert len(seen["ids"]) == 4, seen
    assert not [n for n in seen["pending"] if n.endswith(".tmp")], seen["pending"]  # no partial file left
    assert seen["reader_rc"] == 0, seen["reader_stderr"][-3000:]
    # the run made before the disk filled, and the three made while it was full
    assert json.loads(seen["found"]) == seen["ids"], seen


# ---------------------------------------------------------------------------------------------------
# 4. A script whose last run ends just before exit
# ---------------------------------------------------------------------------------------------------
LAST_RUN_THEN_EXIT = """
import nbplayground as nbp
nbp.run("first", model="mock/echo")
nbp.history()  # the script has written once: its writer thread and DuckDB are warm
for i in range(3):
    nbp.run("last %d" % i, model="mock/echo")
"""


@pytest.mark.slow
def test_a_script_ending_right_after_its_last_run_has_it_in_the_store(nbp_home):
    proc = run_python(LAST_RUN_THEN_EXIT, nbp_home)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert pending_files(nbp_home) == []
    assert journal_lines(nbp_home) == []  # committed, so the journal was emptied
    import duckdb

    con = duckdb.connect(str(nbp_home / db.DB_FILE), read_only=True)  # the file itself, no take-in
    try:
        texts = sorted(row[0] for row in con.execute("SELECT text FROM runs").fetchall())
    finally:
        con.close()
    assert texts == ["first", "last 0", "last 1", "last 2"]
