"""History store: ``nbp.history()`` over 1,000,000 runs, and what ``record()`` costs the caller.

    python benchmarks/bench_history.py [--rows 1000000] [--db DIR]

The database is built once (bulk SQL insert of realistic rows) in DIR, default a folder under the
system temp dir, and reused by later runs. Baselines measured in the same process:
- history(): a bare ``duckdb.connect(read_only) + the same SELECT`` (what the store adds: locking, flush);
- record(): an empty function call vs ``history.record(result)`` (the caller's side; writing is async).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def build(home: Path, rows: int) -> None:
    os.environ["NBPLAYGROUND_HOME"] = str(home)
    from nbplayground.storage import db

    path = db.ensure_ready()
    import duckdb

    con = duckdb.connect(str(path))
    have = con.execute("select count(*) from runs").fetchone()[0]
    if have >= rows:
        con.close()
        return
    t0 = time.perf_counter()
    con.execute(
        f"""
        INSERT INTO runs (id, created_at, surface, provider, model, kind, status, error, text, messages, params,
                          variables, tokens_in, tokens_out, cost_usd, latency_ms, ttft_ms, finish_reason,
                          target_index, attempts)
        SELECT md5(i::VARCHAR), TIMESTAMPTZ '2026-01-01' + to_seconds(i), ['python','magic','widget','dataframe'][1 + i % 4],
               'mock', ['mock/echo','mock/lorem','openai/gpt-4o-mini'][1 + i % 3], 'chat',
               CASE WHEN i % 50 = 0 THEN 'error' ELSE 'ok' END, NULL,
               repeat('lorem ipsum dolor sit amet ', 8 + i % 10),
               '[{{"role": "system", "content": "You are terse."}}, {{"role": "user", "content": "' ||
                   repeat('question text ', 15) || '"}}]',
               '{{"temperature": 0.2}}', '{{"n": 1}}', 20 + i % 50, 100 + i % 400, 0.0001, 200 + i % 900,
               50 + i % 100, 'stop', 0, 1
        FROM range({have}, {rows}) t(i)
        """
    )
    con.close()
    print(f"built {rows - have:,} rows in {time.perf_counter() - t0:.1f} s")


def median_ms(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--db", type=Path, default=Path(tempfile.gettempdir()) / "nbp-bench-history")
    args = ap.parse_args()
    build(args.db, args.rows)

    import duckdb

    import nbplayground as nbp
    from nbplayground.core.types import RunResult
    from nbplayground.storage import db, history

    path = db.db_path()
    size_mb = path.stat().st_size / 1e6
    query = f"SELECT {', '.join(history.HISTORY_COLUMNS)} FROM runs ORDER BY created_at DESC, id DESC LIMIT 50 OFFSET 0"

    def bare() -> None:
        con = duckdb.connect(str(path), read_only=True)
        con.execute(query).df()
        con.close()

    nbp.history()  # warm imports
    bare()
    ours = median_ms(nbp.history, 20)
    base = median_ms(bare, 20)
    filtered = median_ms(lambda: nbp.history(model="mock/lorem", status="error"), 20)
    count = int(nbp.sql("select count(*) as n from runs")["n"][0])

    result = RunResult(
        id="x", model="mock/echo", text="hello " * 50, messages=[{"role": "user", "content": "hi"}]
    )

    def noop(r: RunResult) -> None:
        pass

    n = 2000
    t0 = time.perf_counter()
    for _ in range(n):
        noop(result)
    empty = (time.perf_counter() - t0) / n * 1000
    results = [
        RunResult(id=f"bench-{i}-{time.time_ns()}", model="mock/echo", text="hello " * 50) for i in range(n)
    ]
    t0 = time.perf_counter()
    for r in results:
        history.record(r)
    rec = (time.perf_counter() - t0) / n * 1000
    t0 = time.perf_counter()
    history.flush(timeout=120)
    drain = (time.perf_counter() - t0) * 1000

    print(f"store: {count:,} runs, {size_mb:.0f} MB")
    print(f"history() newest 50 over {count:,} runs: {ours:.1f} ms median of 20 (budget 100 ms); "
          f"bare duckdb open+query {base:.1f} ms; ratio {ours / base:.2f}x")  # fmt: skip
    print(f"history(model=..., status=...) filtered: {filtered:.1f} ms")
    print(f"record() caller cost: {rec * 1000:.1f} us per run vs empty call {empty * 1000:.2f} us (budget 5 ms); "
          f"background writer drained {n} runs in {drain:.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
