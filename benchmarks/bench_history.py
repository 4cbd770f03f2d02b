"""History store: ``history()`` over 1,000,000 runs, and what ``record()`` costs the caller.

    python benchmarks/bench_history.py [--rows 1000000] [--db DIR] [--rounds 20]

The database is built once in DIR (default: a folder under the system temp dir) by one bulk SQL insert
generating realistic rows with ``range()`` (answers of 200-500 characters, ~300-character message JSON),
and reused by later runs. Baselines measured in the same process:

- ``history()``: a bare ``duckdb.connect(read_only=True)`` + the same SELECT (what the store adds:
  the cross-process lock, the flush of this process's own runs, the pending-file check);
- ``record()``: an empty function call with the same argument (the caller's side; writing is async).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def build(home: Path, rows: int) -> None:
    """Create (or top up) the benchmark store with ``rows`` runs."""
    from nbplayground.storage import db

    path = db.ensure_ready()
    import duckdb

    con = duckdb.connect(str(path))
    have = con.execute("SELECT count(*) FROM runs").fetchone()[0]
    if have >= rows:
        con.close()
        return
    t0 = time.perf_counter()
    # One INSERT ... SELECT over range(): ~1 s per 100k rows, no Python loop.
    con.execute(
        f"""
        INSERT INTO runs (id, created_at, surface, provider, model, kind, status, error, error_type, text,
                          messages, params, variables, tokens_in, tokens_out, cost_usd, latency_ms, ttft_ms,
                          finish_reason, thread_id, group_id, target_index, attempts)
        SELECT md5(i::VARCHAR),
               TIMESTAMPTZ '2025-01-01 00:00:00+00' + to_seconds(i * 20),
               ['python', 'magic', 'widget', 'dataframe'][1 + i % 4],
               'mock',
               ['mock/echo', 'mock/lorem', 'openai/gpt-4o-mini'][1 + i % 3],
               'chat',
               CASE WHEN i % 50 = 0 THEN 'error' ELSE 'ok' END,
               CASE WHEN i % 50 = 0 THEN 'rate limited (429): try again later' END,
               CASE WHEN i % 50 = 0 THEN 'RateLimitError' END,
               'Answer ' || i || ': ' || repeat('lorem ipsum dolor sit amet ', 7 + i % 12),
               '[{{"role": "system", "content": "You are a terse assistant."}}, {{"role": "user", "content": "'
                   || repeat('question text ', 16) || i || '"}}]',
               '{{"temperature": 0.2, "max_tokens": 512}}',
               '{{"topic": "item ' || i || '"}}',
               20 + i % 50, 100 + i % 400, 0.0001 * (1 + i % 7), 200.0 + i % 900, 50.0 + i % 100, 'stop',
               CASE WHEN i % 100 = 0 THEN 'thread-' || (i // 1000) END,
               CASE WHEN i % 10 = 0 THEN 'group-' || (i // 5000) END,
               0, 1
        FROM range({have}, {rows}) t(i)
        """
    )
    con.execute("CHECKPOINT")
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
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--db", type=Path, default=Path(tempfile.gettempdir()) / "nbp-bench-history")
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    os.environ["NBPLAYGROUND_HOME"] = str(args.db)
    build(args.db, args.rows)

    import duckdb

    from nbplayground.core.types import RunResult
    from nbplayground.storage import db, history

    path = db.db_path()
    size_mb = path.stat().st_size / 1e6
    cols = ", ".join(history.HISTORY_COLUMNS)
    query = f"SELECT {cols} FROM runs ORDER BY created_at DESC, id DESC LIMIT 50 OFFSET 0"

    def bare() -> None:
        con = duckdb.connect(str(path), read_only=True)
        con.execute(query).df()
        con.close()

    def open_only() -> None:
        duckdb.connect(str(path), read_only=True).close()

    history.history()  # warm imports (duckdb, pandas, pyarrow) before timing
    bare()
    n = args.rounds
    ours = median_ms(history.history, n)
    base = median_ms(bare, n)
    opening = median_ms(open_only, n)
    page = median_ms(lambda: history.history(offset=10_000), n)
    filtered = median_ms(lambda: history.history(model="mock/lorem", status="error"), n)
    by_thread = median_ms(lambda: history.history(thread_id="thread-500"), n)
    some_id = history.sql("SELECT id FROM runs LIMIT 1 OFFSET 123456")["id"][0]
    by_id = median_ms(lambda: history.get_run(some_id), n)
    by_prefix = median_ms(lambda: history.get_run(some_id[:10]), n)
    count = int(history.sql("SELECT count(*) AS n FROM runs")["n"][0])
    with duckdb.connect(str(path), read_only=True) as con:
        plan = "\n".join(r[1] for r in con.execute("EXPLAIN " + query).fetchall())
    top_n = "Top N" in plan or "TOP_N" in plan

    # record(): the caller's cost against an empty call with the same argument, in a scratch home so the
    # benchmark store keeps exactly --rows runs.
    scratch = tempfile.TemporaryDirectory(prefix="nbp-bench-record-")
    os.environ["NBPLAYGROUND_HOME"] = scratch.name
    calls = 1000
    results = [
        RunResult(id=f"bench-{time.time_ns()}-{i}", model="mock/echo", text="hello " * 60,
                  messages=[{"role": "user", "content": "hi " * 100}], params={"temperature": 0.2})
        for i in range(calls)
    ]  # fmt: skip

    def noop(r: RunResult) -> None:
        pass

    def per_call(fn) -> float:
        times = []
        for r in results:
            t0 = time.perf_counter()
            fn(r)
            times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1000

    history.record(results[0])  # start the writer thread outside the timing
    history.flush()
    empty = per_call(noop)
    rec = per_call(history.record)
    t0 = time.perf_counter()
    history.flush(timeout=120)
    drain = (time.perf_counter() - t0) * 1000

    history.reset_for_tests()  # stop the writer before its scratch home goes away
    scratch.cleanup()

    print(f"store: {count:,} runs, {size_mb:.0f} MB at {path}")
    print(f"history() over {count:,} runs: {ours:.1f} ms (budget 100 ms); bare duckdb open+query {base:.1f} ms "
          f"(open alone {opening:.1f} ms); plan uses TOP_N: {top_n}")  # fmt: skip
    print(f"history(offset=10_000): {page:.1f} ms")
    print(f"history(model=..., status=...): {filtered:.1f} ms")
    print(f"history(thread_id=...): {by_thread:.1f} ms")
    print(f"get_run(id): {by_id:.1f} ms; get_run(10-char prefix): {by_prefix:.1f} ms")
    print(f"record() caller cost: {rec:.4f} ms (budget 5 ms); empty call {empty:.4f} ms")
    print(f"background writer: {calls:,} queued runs on disk {drain:.0f} ms after the last record()")


if __name__ == "__main__":
    main()
