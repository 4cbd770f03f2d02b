"""Several processes on one history file: writers lose nothing, readers never see a lock error.

Each process is a plain ``python -c`` script (the way kernels and the Jupyter server share a home).
All start together on a go-file, so their writes and reads really overlap.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nbplayground.storage import history

SRC = str(Path(__file__).resolve().parents[1] / "src")

PRELUDE = """
import os, sys, time
sys.path.insert(0, {src!r})
from nbplayground.storage import history
history.sql("SELECT 1")  # warm up (imports, migrations) before the race starts
print("ready", flush=True)
while not os.path.exists({go!r}):
    time.sleep(0.005)
"""

WRITER = """
from nbplayground.core.types import RunResult
ok = True
for i in range({n}):
    history.record(RunResult(id="w{w}-%05d" % i, model="mock/echo", text="writer {w} run %d" % i,
                             messages=[{{"role": "user", "content": "q" * 300}}], params={{"temperature": 0.1}}))
    if i % 25 == 24:  # many small transactions, interleaved with the other processes
        ok = history.flush(timeout=120) and ok
ok = history.flush(timeout=120) and ok
print("ok" if ok else "pending", flush=True)
"""

READER = """
reads = 0
while True:
    done = os.path.exists({done!r})
    n = int(history.sql("SELECT count(*) AS n FROM runs")["n"][0])
    page = history.history(limit=20)
    assert min(20, n) <= len(page) <= 20, (len(page), n)  # rows only ever arrive between the two reads
    reads += 1
    if done:
        break
print(reads, n, flush=True)
"""


def spawn(script: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ})  # fmt: skip


@pytest.mark.slow
def test_four_writers_and_a_reader(nbp_home, tmp_path):
    n, writers = 500, 4
    go, done = str(tmp_path / "go"), str(tmp_path / "done")
    prelude = PRELUDE.format(src=SRC, go=go)
    procs = [spawn(prelude + WRITER.format(n=n, w=w)) for w in range(writers)]
    reader = spawn(prelude + READER.format(done=done))
    try:
        for p in [*procs, reader]:
            assert p.stdout.readline().strip() == "ready", p.stderr.read()
        t0 = time.perf_counter()
        Path(go).touch()
        outs = [p.communicate(timeout=120) for p in procs]
        writers_s = time.perf_counter() - t0
        Path(done).touch()
        r_out, r_err = reader.communicate(timeout=60)
    finally:
        for p in [*procs, reader]:
            p.kill()
    for (out, err), p in zip(outs, procs, strict=True):
        assert p.returncode == 0 and out.strip() == "ok" and not err.strip(), err
    assert reader.returncode == 0 and not r_err.strip(), r_err
    reads, last_count = map(int, r_out.split())
    assert reads >= 3 and last_count == n * writers

    counts = history.sql("SELECT count(*) AS n, count(DISTINCT id) AS d FROM runs")
    assert int(counts["n"][0]) == n * writers == int(counts["d"][0])
    per_writer = history.sql(
        "SELECT split_part(id, '-', 1) AS w, count(*) AS n FROM runs GROUP BY 1 ORDER BY 1"
    )
    assert per_writer.to_dict("list") == {"w": [f"w{w}" for w in range(writers)], "n": [n] * writers}
    print(
        f"\n{writers} x {n} runs, {writers * n // 25} flushes, with a reader ({reads} reads) in {writers_s:.1f} s"
    )


@pytest.mark.slow
def test_processes_opening_a_blank_home_at_once(nbp_home, tmp_path):
    go = str(tmp_path / "go")
    script = (
        f"import os, sys, time; sys.path.insert(0, {SRC!r})\n"
        "print('ready', flush=True)\n"
        f"while not os.path.exists({go!r}): time.sleep(0.002)\n"
        "from nbplayground.storage import registry, history\n"
        "history.history()\n"
        "print(registry.save('race/p' + sys.argv[1], content='x').version, flush=True)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(i)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(4)]  # fmt: skip
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    Path(go).touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert [(p.returncode, out.strip(), err.strip()) for p, (out, err) in zip(procs, outs, strict=True)] == [
        (0, "1", "")
    ] * 4
    names = history.sql("SELECT name FROM _migrations")["name"].tolist()
    assert len(names) == len(set(names))
