"""DataFrame runs at scale: 10,000 rows at 50 ms server latency, concurrency 64, side by side.

    python benchmarks/bench_dataframe.py [--rows 10000] [--latency 0.05] [--concurrency 64] [--skip-litellm]

Compared in one run against the same local server (its own process):
  (a) the ideal, rows x latency / concurrency;
  (b) ``litellm.batch_completion`` (thread pool, max_workers = concurrency);
  (c) asyncio + the ``openai`` SDK behind a semaphore.
Also reports the RSS growth of a 100,000-row run on the mock model (--memory-rows), measured inside a
fresh process from its own start.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from bench_stream import start_server


def run_nbp(url: str, rows: int, concurrency: int) -> tuple[float, float]:
    import pandas as pd

    import nbplayground as nbp

    nbp.configure(models={"bench": {"model": "openai/bench", "api_base": url}})
    df = pd.DataFrame({"q": [f"question {i}" for i in range(rows)]})
    w0, c0 = time.perf_counter(), time.process_time()
    out = df.prompt.run("a", prompt="{{q}}", model="bench", concurrency=concurrency, progress=False)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    assert out["a"].notna().all(), out.attrs
    return wall, cpu


def run_sdk(url: str, rows: int, concurrency: int) -> tuple[float, float]:
    import openai

    async def main() -> None:
        client = openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0)
        sem = asyncio.Semaphore(concurrency)

        async def one(i: int) -> str:
            async with sem:
                r = await client.chat.completions.create(
                    model="bench", messages=[{"role": "user", "content": f"question {i}"}]
                )
                return r.choices[0].message.content or ""

        await asyncio.gather(*(one(i) for i in range(rows)))
        await client.close()

    w0, c0 = time.perf_counter(), time.process_time()
    asyncio.run(main())
    return time.perf_counter() - w0, time.process_time() - c0


def run_litellm(url: str, rows: int, concurrency: int) -> tuple[float, float]:
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import litellm

    litellm.suppress_debug_info = True
    w0, c0 = time.perf_counter(), time.process_time()
    out = litellm.batch_completion(
        model="openai/bench", api_base=url, api_key="x", timeout=60,
        messages=[[{"role": "user", "content": f"question {i}"}] for i in range(rows)], max_workers=concurrency,
    )  # fmt: skip
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    bad = [o for o in out if isinstance(o, Exception)]
    assert not bad, bad[:1]
    return wall, cpu


#: Runs in a fresh process and measures there, from that process's own start. ``ru_maxrss`` cannot:
#: on Linux it survives exec, so a child started by a large parent reports the parent's peak.
#: VmHWM belongs to the address space, which exec replaces; writing 5 to clear_refs resets it to the
#: current RSS (Linux >= 4.0), so the peak is the run's alone.
_MEMORY_CHILD = """
import sys
from pathlib import Path

import pandas as pd

import nbplayground as nbp


def status_mb(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"no {field} in /proc/self/status")


rows = int(sys.argv[1])
df = pd.DataFrame({"q": [f"question number {i} about something" for i in range(rows)]})
base = status_mb("VmRSS")
try:
    Path("/proc/self/clear_refs").write_text("5")
    reset = True
except OSError:  # older kernels: the peak may include startup, before the frame existed
    reset = False
__WORK__
print(status_mb("VmHWM") - base, status_mb("VmRSS") - base, reset)
"""
#: What the child measures by default: a DataFrame run over the frame ``df`` of ``rows`` questions.
DATAFRAME_RUN = """
out = df.prompt.run("a", prompt="{{q}}", model="mock/echo", concurrency=64, progress=False)
assert out["a"].notna().all()
"""


def peak_memory(rows: int, work: str = DATAFRAME_RUN) -> tuple[float, float, bool]:
    """Peak and final RSS growth (MB) of ``work`` (code over ``df``: ``rows`` questions) above the frame, in a
    fresh process."""
    import subprocess
    import sys

    if not Path("/proc/self/status").exists():
        raise SystemExit("the memory figure reads /proc/self/status (Linux); pass --memory-rows 0 elsewhere")
    env = {**os.environ, "NBPLAYGROUND_HOME": tempfile.mkdtemp(prefix="nbp-mem-")}
    code = _MEMORY_CHILD.replace("__WORK__", work)
    out = subprocess.check_output([sys.executable, "-c", code, str(rows)], env=env, text=True)
    peak, final, reset = out.split()
    return float(peak), float(final), reset == "True"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--skip-litellm", action="store_true")
    ap.add_argument("--memory-rows", type=int, default=100_000)
    args = ap.parse_args()
    os.environ.setdefault("NBPLAYGROUND_HOME", tempfile.mkdtemp(prefix="nbp-bench-df-"))
    proc, url = start_server(tokens=5, delay=0.0, latency=args.latency)
    ideal = args.rows * args.latency / args.concurrency
    print(f"{args.rows:,} rows, {args.latency * 1000:g} ms server latency, concurrency {args.concurrency}; "
          f"ideal {ideal:.2f} s", flush=True)  # fmt: skip
    runs = [("nbplayground", run_nbp), ("asyncio + openai SDK", run_sdk)]
    if not args.skip_litellm:
        runs.append(("litellm.batch_completion", run_litellm))
    try:
        for name, fn in runs:
            wall, cpu = fn(url, args.rows, args.concurrency)
            print(f"  {name:28s} {wall:7.2f} s  {wall / ideal:5.2f}x ideal   client CPU {cpu * 1000 / args.rows:.2f} ms/row",
                  flush=True)  # fmt: skip
    finally:
        proc.terminate()
    if args.memory_rows:
        peak, final, reset = peak_memory(args.memory_rows)
        note = "" if reset else " (peak not reset: includes the child's start)"
        print(f"peak memory, {args.memory_rows:,} rows on mock/echo, fresh process: +{peak:.0f} MB RSS above the "
              f"frame at peak, +{final:.0f} MB at the end (budget 300 MB){note}")  # fmt: skip


if __name__ == "__main__":
    main()
