"""History store: ``history()`` over 1,000,000 runs, and what ``record()`` costs the caller.

    python benchmarks/bench_history.py [--rows 1000000] [--db DIR] [--rounds 20]

The database is built once in DIR (default: a folder under the system temp dir) by one bulk SQL insert
generating realistic rows with ``range()`` (answers of 200-500 characters, ~300-character message JSON),
and reused by later runs. Baselines measured in the same process:

- ``history()``: a bare ``duckdb.connect(read_only=True)`` + the same SELECT (what the store adds:
  the cross-process lock, the flush of this process's own runs, the pending-file check);
- ``record()``: an empty function call with the same argument (the caller's side: the row is built and
  its journal line written and flushed before it returns; storing it in DuckDB is async).

The store's CPU per run is the process CPU (``time.process_time``: the caller, the writer thread and
DuckDB's threads) of recording a batch of runs and flushing it, per run: for single runs (an interactive
session) and batches, into an empty store and into a copy of the big one.
"""

from __future__ import annotations

import argparse
import os
import shutil
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


def make_results(n: int) -> list:
    """Runs like an interactive one: a 360-character answer, a 300-character prompt."""
    from nbplayground.core.types import RunResult

    return [
        RunResult(id=f"bench-{time.time_ns()}-{i}", model="mock/echo", text="hello " * 60,
                  messages=[{"role": "user", "content": "hi " * 100}], params={"temperature": 0.2})
        for i in range(n)
    ]  # fmt: skip


def store_cpu(results: list, batch: int, rounds: int) -> float:
    """Median process CPU per run (caller, writer thread and DuckDB) to record ``batch`` runs and flush them."""
    from nbplayground.storage import history

    runs = iter(results)
    history.record(next(runs))  # the writer thread and the store are warm before timing
    history.flush()
    samples = []
    for _ in range(rounds):
        c0 = time.process_time()
        for _ in range(batch):
            history.record(next(runs))
        history.flush(timeout=120)
        samples.append((time.process_time() - c0) * 1000 / batch)
    return statistics.median(samples)


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

    from nbplayground import api

    api.history()  # warm imports (duckdb, pandas, pyarrow) before timing
    bare()
    n = args.rounds
    ours = median_ms(api.history, n)  # what a notebook gets: the typed rows made a DataFrame
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

    # record(): the caller's cost against an empty call with the same argument, and its parts (the row:
    # scrub and repair; the journal line: written and flushed), in a scratch home so the benchmark store
    # keeps exactly --rows runs. Then the store's CPU per run (every thread: caller, writer, DuckDB).
    scratch = tempfile.TemporaryDirectory(prefix="nbp-bench-record-")
    os.environ["NBPLAYGROUND_HOME"] = scratch.name
    calls = 1000
    results = make_results(calls + 4200)
    spare, results = results[calls:], results[:calls]

    def noop(r: RunResult) -> None:
        pass

    def per_call(fn) -> float:
        times = []
        for r in results:
            t0 = time.perf_counter()
            fn(r)
            times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1000

    from nbplayground.storage import journal, rows

    history.record(spare.pop())  # start the writer thread outside the timing
    history.flush()
    empty = per_call(noop)
    rec = per_call(history.record)
    t0 = time.perf_counter()
    history.flush(timeout=120)
    drain = (time.perf_counter() - t0) * 1000
    home = Path(scratch.name)
    row_ms = per_call(lambda r: rows.to_row(r, home))
    line = rows.to_json(rows.to_row(results[0], home))
    line_ms = per_call(lambda r: rows.to_json(rows.to_row(r, home))) - row_ms
    side = journal.Journal(home / "bench-journal")
    append_ms = per_call(lambda r: side.append(line))
    side.close()
    cpu = {n: store_cpu(spare, n, rounds) for n, rounds in ((1, 30), (10, 10), (100, 10), (1000, 3))}
    history.reset_for_tests()  # stop the writer before its scratch home goes away
    scratch.cleanup()

    # One run at a time into a copy of the big store: what an interactive run costs there.
    big = tempfile.TemporaryDirectory(prefix="nbp-bench-big-")
    os.environ["NBPLAYGROUND_HOME"] = big.name
    shutil.copy(path, Path(big.name) / db.DB_FILE)
    cpu_big = store_cpu(make_results(31), 1, 30)
    history.reset_for_tests()
    big.cleanup()

    print(f"store: {count:,} runs, {size_mb:.0f} MB at {path}")
    print(f"history() over {count:,} runs: {ours:.1f} ms (budget 100 ms); bare duckdb open+query {base:.1f} ms "
          f"(open alone {opening:.1f} ms); plan uses TOP_N: {top_n}")  # fmt: skip
    print(f"history(offset=10_000): {page:.1f} ms")
    print(f"history(model=..., status=...): {filtered:.1f} ms")
    print(f"history(thread_id=...): {by_thread:.1f} ms")
    print(f"get_run(id): {by_id:.1f} ms; get_run(10-char prefix): {by_prefix:.1f} ms")
    print(f"record() caller cost: {rec:.4f} ms (journal budget 0.2 ms); empty call {empty:.4f} ms; parts: "
          f"row {row_ms:.4f} ms, JSON line {line_ms:.4f} ms, journal append {append_ms:.4f} ms")  # fmt: skip
    print(f"background writer: {calls:,} queued runs on disk {drain:.0f} ms after the last record()")
    print("store CPU per run (process CPU, every thread, record() + flush() of a batch): "
          + ", ".join(f"batch of {n}: {ms:.2f} ms" for n, ms in cpu.items())
          + f"; one run into the {count:,}-run store: {cpu_big:.2f} ms (aim 5 ms)")  # fmt: skip


if __name__ == "__main__":
    main()
