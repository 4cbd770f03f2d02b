"""An experiment at scale: 2 variants x 5,000 rows x 2 evaluators (one an LLM judge), against the ideal.

    python benchmarks/bench_experiment.py [--rows 5000] [--latency 0.05] [--concurrency 64] [--memory-rows 10000]

Every call (the variants' answers and the judge's verdicts) goes to one local OpenAI-compatible server in
its own process, which waits ``latency`` before each answer and echoes the prompt (so the judge's prompt,
a JSON verdict, comes back as its answer). The ideal is calls x latency / concurrency: a scheduler that
keeps ``concurrency`` requests in flight and costs nothing. Also reports the RSS growth of a 10 variants x
``--memory-rows`` experiment on ``mock/echo``, measured in a fresh process from its own start (as
bench_dataframe.py does).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from bench_dataframe import peak_memory
from bench_stream import start_server

VERDICT = '{"reason": "it answers", "choice": "yes"}'


def run_experiment(url: str, rows: int, concurrency: int) -> tuple[float, float, int]:
    import pandas as pd

    import nbplayground as nbp

    nbp.configure(models={"bench": {"model": "openai/bench", "api_base": url}})
    df = pd.DataFrame({"q": [f"question {i}" for i in range(rows)], "expected": [str(i) for i in range(rows)]})
    w0, c0 = time.perf_counter(), time.process_time()
    exp = nbp.experiment(
        df,
        {"a": {"prompt": "{{q}}", "model": "bench"}, "b": {"prompt": "Please: {{q}}", "model": "bench"}},
        [nbp.evals.contains("{{expected}}"), nbp.evals.judge(VERDICT, model="bench")],
        concurrency=concurrency, name="bench", progress=False,
    )  # fmt: skip
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    res = exp.results
    assert len(res) == 2 * rows and res["status"].eq("ok").all(), res["status"].value_counts()
    assert res["judge"].eq(1.0).all() and res["contains"].eq(1.0).all()
    return wall, cpu, 4 * rows


#: What the memory figure measures (``df``: ``rows`` questions, in a fresh process; see bench_dataframe.py).
EXPERIMENT_RUN = """
variants = {f"v{k}": {"prompt": f"{k}: {{{{q}}}}", "model": "mock/echo"} for k in range(10)}
exp = nbp.experiment(df, variants, [nbp.evals.contains("question")], concurrency=64, name="mem", progress=False)
assert len(exp.results) == 10 * len(df)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=5_000)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--memory-rows", type=int, default=10_000)
    args = ap.parse_args()
    os.environ.setdefault("NBPLAYGROUND_HOME", tempfile.mkdtemp(prefix="nbp-bench-exp-"))
    proc, url = start_server(tokens=5, delay=0.0, latency=args.latency, echo=True)
    try:
        wall, cpu, calls = run_experiment(url, args.rows, args.concurrency)
    finally:
        proc.terminate()
    ideal = calls * args.latency / args.concurrency
    print(f"2 variants x {args.rows:,} rows x 2 evaluators (one judge): {calls:,} calls at "
          f"{args.latency * 1000:g} ms, concurrency {args.concurrency}; ideal {ideal:.2f} s")  # fmt: skip
    print(f"  nbp.experiment {wall:7.2f} s  {wall / ideal:5.2f}x ideal (goal <= 1.25x)   "
          f"client CPU {cpu * 1000 / calls:.2f} ms/call")  # fmt: skip
    if args.memory_rows and Path("/proc/self/status").exists():
        peak, final, _ = peak_memory(args.memory_rows, EXPERIMENT_RUN)
        print(f"peak memory, 10 variants x {args.memory_rows:,} rows on mock/echo, fresh process: +{peak:.0f} MB RSS "
              f"above the frame at peak, +{final:.0f} MB at the end (budget 300 MB, the DataFrame budget)")  # fmt: skip


if __name__ == "__main__":
    main()
