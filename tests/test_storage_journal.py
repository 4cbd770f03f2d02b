"""The per-process journal: emptied once stored, rewritten when it grows, taken in only when its process is gone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

import nbplayground as nbp
from nbplayground.core.types import RunResult
from nbplayground.storage import history, intake, journal, rows, writer

SRC = str(Path(__file__).resolve().parents[1] / "src")


def line(i: int) -> str:
    return json.dumps({"id": f"j-{i:04d}", "text": "x" * 100})


def test_the_journal_is_named_by_pid_and_start_and_emptied_once_everything_is_stored(tmp_path):
    j = journal.Journal(tmp_path)
    with j.lock:
        refs = [j.append(line(i)) for i in range(3)]
    [path] = j.paths
    assert path.parent == tmp_path / "journal" and path.name == f"{os.getpid()}-{journal.own_start()}.jsonl"
    assert path.read_text().splitlines() == [line(i) for i in range(3)]
    j.release(refs[:2])  # the last line is not stored yet: nothing can be cut from the file
    assert len(path.read_text().splitlines()) == 3
    j.release(refs[2:])
    assert path.read_bytes() == b""
    with j.lock:
        ref = j.append(line(3))
    assert path.read_text() == line(3) + "\n"  # appends start over at the beginning
    j.release([ref])
    j.close()
    assert not path.exists()  # a clean close removes a journal with nothing left in it


def test_a_journal_that_never_catches_up_is_rewritten_without_its_stored_part(tmp_path, monkeypatch):
    monkeypatch.setattr(journal, "COMPACT_BYTES", 1000)
    j = journal.Journal(tmp_path)
    with j.lock:
        refs = [j.append(line(i)) for i in range(30)]
    [path] = j.paths
    inode = path.stat().st_ino
    j.release(refs[:20])  # stored: 20 lines (over 1000 bytes); 10 are still waiting
    assert path.read_text().splitlines() == [line(i) for i in range(20, 30)]
    assert path.stat().st_ino != inode  # a new file, renamed into place whole
    with j.lock:
        more = [j.append(line(i)) for i in range(30, 32)]
    assert path.read_text().splitlines() == [line(i) for i in range(20, 32)]
    j.release(refs[20:] + more)
    assert path.read_bytes() == b""
    assert not [p for p in (tmp_path / "journal").iterdir() if p.name.startswith(".")]
    j.close()


def test_a_live_journal_is_never_taken_for_an_orphan_a_dead_one_is(tmp_path):
    j = journal.Journal(tmp_path)
    with j.lock:
        j.append(line(1))
    assert not journal.has_orphans(tmp_path)  # its lock is held: even this process cannot take it
    j.forget_in_child()  # the descriptor closes as if the process had died: its lock goes with it
    taken = [[raw for _, raw in orphan.lines()] for orphan in journal.orphans(tmp_path)]
    assert taken == [[line(1).encode()]]


def test_without_flock_a_journal_is_an_orphan_when_its_pid_is_gone_or_was_reused(tmp_path, monkeypatch):
    monkeypatch.setattr(journal, "_try_lock", lambda fd: None)  # a file system without flock
    folder = tmp_path / "journal"
    folder.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    parent = os.getppid()
    names = {
        f"{dead}-123.jsonl": True,  # its process exited
        f"{parent}-1.jsonl": journal.process_start(parent) is not None,  # alive, but started at another time
        f"{parent}-{journal.process_start(parent)}.jsonl": False,  # alive, same start: its owner runs
        f"{os.getpid()}-{journal.own_start()}.jsonl": False,  # this process's own
        "not-a-journal.txt": False,
    }
    for name in names:
        (folder / name).write_text(line(0) + "\n")
    taken = []
    for orphan in journal.orphans(tmp_path):
        taken.append(orphan.path.name)
        orphan.release()
    assert sorted(taken) == sorted(n for n, orphan in names.items() if orphan)


def test_a_torn_last_line_is_ignored_and_a_stale_temporary_file_cleaned(tmp_path, monkeypatch):
    folder = tmp_path / "journal"
    folder.mkdir()
    (folder / "1-1.jsonl").write_bytes(f"{line(1)}\n\n{line(2)}\n{line(3)[:20]}".encode())
    stale = folder / ".2-2.jsonl.abcd.tmp"
    stale.write_text("")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    fresh = folder / ".3-3.jsonl.abcd.tmp"  # being created right now by a live process
    fresh.write_text("")
    taken = [list(orphan.lines()) for orphan in journal.orphans(tmp_path)]
    assert taken == [[(1, line(1).encode()), (3, line(2).encode())]]
    assert not stale.exists() and fresh.exists()


def test_the_fallback_home_is_private_per_user_and_per_home(tmp_path, monkeypatch):
    runtime = tmp_path / "runtime"
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    a, b = journal.fallback_home(tmp_path / "a"), journal.fallback_home(tmp_path / "b")
    assert a is not None and b is not None and a != b and a.parent == b.parent == runtime / "nbplayground"
    assert (a / "home.txt").read_text() == f"{tmp_path / 'a'}\n"
    assert journal.fallback_homes(tmp_path / "a") == [a]
    if os.name == "posix":
        assert (a.stat().st_mode & 0o777, (a / "home.txt").stat().st_mode & 0o777) == (0o700, 0o600)
    # a folder someone prepared in a shared temp dir (here a symlink) is no place for runs
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setattr(journal.tempfile, "gettempdir", lambda: str(tmp_path / "shared"))
    (tmp_path / "shared").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "shared" / f"nbplayground-{os.getuid()}").symlink_to(tmp_path / "elsewhere")
    assert journal.fallback_home(tmp_path / "a") is None


def test_record_writes_the_scrubbed_row_to_the_journal_before_returning(nbp_home, monkeypatch):
    monkeypatch.setenv("NBP_TEST_KEY", "sk-journal-SECRET-0123456789")
    monkeypatch.setattr(writer, "COALESCE_S", 5.0)  # the writer waits: only the journal has it now
    history.record(RunResult(id="warm-0001", model="m"))
    assert history.flush()
    r = RunResult(id="journaled-0001", model="m", text="key sk-journal-SECRET-0123456789",
                  params={"api_key": "sk-journal-SECRET-0123456789", "temperature": 0})  # fmt: skip
    history.record(r)
    [path] = (nbp_home / "journal").glob("*.jsonl")
    raw = path.read_bytes()
    assert b"journaled-0001" in raw and raw.endswith(b"\n") and b"SECRET" not in raw
    assert rows.from_json(raw.decode().splitlines()[-1])[0] == "journaled-0001"
    assert history.flush()
    assert path.read_bytes() == b""  # stored: the journal is empty again


FORKER = """
import os, sys
sys.path.insert(0, {src!r})
from nbplayground.core.types import RunResult
from nbplayground.storage import history, journal
from nbplayground import config
history.record(RunResult(id="parent-0001", model="m"))
assert history.flush()
pid = os.fork()
if pid == 0:
    history.record(RunResult(id="child-0001", model="m"))
    os._exit(0 if history.flush() else 1)
_, status = os.waitpid(pid, 0)
assert status == 0, status
mine = f"{{os.getpid()}}-"
assert not [o.path for o in journal.orphans(config.home()) if o.path.name.startswith(mine)]  # still locked
print(sorted(history.sql("SELECT id FROM runs")["id"]))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_forked_child_journals_in_its_own_file_and_the_parent_keeps_its_lock(nbp_home):
    proc = subprocess.run([sys.executable, "-c", FORKER.format(src=SRC)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "NBPLAYGROUND_HOME": str(nbp_home)})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['child-0001', 'parent-0001']"


def test_store_status_lists_what_waits_and_what_was_set_aside(nbp_home):
    history.record(RunResult(id="ok-0001", model="m"))
    assert history.flush()
    assert nbp.store_status().ok
    folder = nbp_home / "journal"
    (folder / "999999-1.jsonl").write_text(rows.to_json(rows.to_row(RunResult(id="left-0001", model="m"),
                                                                     nbp_home)) + "\n{broken\n")  # fmt: skip
    (nbp_home / "history.corrupt-20260101T000000Z.duckdb").write_bytes(b"damaged")
    status = nbp.store_status()
    assert not status.ok and status.journal_backlog == 2 and status.corrupt_files
    assert (folder / "999999-1.jsonl") in status.journals
    assert "2 run(s) in journals" in str(status) and "store_recover" in str(status)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert history.ingest_pending() == 1  # what a gone process left: taken in line by line
    assert any("quarantined" in str(w.message) for w in caught)
    status = nbp.store_status()
    assert status.journal_backlog == 0 and [q.id for q in status.quarantined] == [None]
    assert "line 2 is not a run" in status.quarantined[0].error
    assert status.to_dict()["quarantined"][0]["source"] == str(folder / "999999-1.jsonl")
    assert nbp.get_run("left-0001") is not None


def test_orphans_of_the_fallback_home_are_taken_in_too(nbp_home, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "runtime"))
    fallback = journal.fallback_home(nbp_home)
    assert fallback is not None
    (fallback / "journal").mkdir()
    row = rows.to_row(RunResult(id="from-fallback", model="m"), nbp_home)
    (fallback / "journal" / "999998-1.jsonl").write_text(rows.to_json(row) + "\n")
    assert intake.waiting(nbp_home)
    assert nbp.get_run("from-fallback") is not None  # a reader took it in
    assert not list((fallback / "journal").iterdir())


def test_the_writer_gathers_a_batch_into_few_writes_and_a_flush_does_not_wait_out_the_window(nbp_home, monkeypatch):
    history.record(RunResult(id="warm-0002", model="m"))
    assert history.flush()
    writes = []
    real = intake.write_rows
    monkeypatch.setattr(intake, "write_rows", lambda batch, *a, **k: writes.append(len(batch)) or real(batch, *a, **k))
    monkeypatch.setattr(writer, "COALESCE_S", 5.0)
    monkeypatch.setattr(writer, "BUSY_COALESCE_S", 5.0)
    for i in range(300):
        history.record(RunResult(id=f"gathered-{i:04d}", model="m"))
    t0 = time.monotonic()
    assert history.flush()
    assert time.monotonic() - t0 < 2.5  # the flush ended the 5 s window
    assert sum(writes) == 300 and len(writes) <= 2  # not one write per run
    assert history.count() >= 301
