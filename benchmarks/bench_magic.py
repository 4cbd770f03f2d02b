"""``%%prompt`` in a real kernel: its overhead over a direct ``nbp.run``, and what a long stream sends.

    python benchmarks/bench_magic.py [--rounds 200] [--tokens 2000] [--delay-ms 1]

Everything runs in one python3 kernel started for the benchmark (its own temporary nbplayground home):

- overhead: the same prompt on ``mock/echo``, alternating ``nbp.run(...)`` and the cell magic
  (``--no-stream``, and streaming), timed inside the kernel with ``perf_counter``; both record history,
  the magic also parses its line, resolves variables and publishes its display (IOPub messages included);
- messages: a 2,000-token ``mock/lorem`` stream (1 ms a token), counting the IOPub display messages the
  front end receives and their rate, against the one-message-per-token a naive magic would send;
- stop: interrupting the kernel mid-stream, the time until the final ("stopped") display arrives.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.kernel import Kernel  # noqa: E402

TIMING = """
import time, statistics, nbplayground as nbp
ip = get_ipython()
name = "Ada"
def _time(fn, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter(); fn(); out.append((time.perf_counter() - t0) * 1000)
    return out
_direct, _magic, _magic_stream = [], [], []
for _ in range({rounds}):
    _direct += _time(lambda: nbp.run("Say hi to {{{{name}}}}", model="mock/echo", variables={{"name": name}}), 1)
    _magic += _time(lambda: ip.run_cell_magic("prompt", "mock/echo --no-stream", "Say hi to {{{{name}}}}"), 1)
    _magic_stream += _time(lambda: ip.run_cell_magic("prompt", "mock/echo", "Say hi to {{{{name}}}}"), 1)
nbp.history(limit=1)  # let the writer drain before the next figure
print(repr({{"direct": statistics.median(_direct), "magic": statistics.median(_magic),
            "magic_stream": statistics.median(_magic_stream)}}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--tokens", type=int, default=2000)
    ap.add_argument("--delay-ms", type=float, default=1.0)
    args = ap.parse_args()

    home = Path(tempfile.mkdtemp(prefix="nbp-bench-magic-")) / "home"
    k = Kernel({"NBPLAYGROUND_HOME": str(home)})
    try:
        assert k.run("%load_ext nbplayground").error is None
        k.run(TIMING.format(rounds=20))  # warm-up: imports, first store open
        ex = k.run(TIMING.format(rounds=args.rounds), timeout=600)
        assert ex.error is None, ex.error
        fig = eval(ex.stdout.strip().splitlines()[-1])
        print(f"overhead over nbp.run (mock/echo, median of {args.rounds}):")
        print(f"  nbp.run                 {fig['direct']:.3f} ms")
        print(f"  %%prompt --no-stream    {fig['magic']:.3f} ms   (+{fig['magic'] - fig['direct']:.3f} ms, "
              f"{fig['magic'] / fig['direct']:.2f}x)")  # fmt: skip
        print(
            f"  %%prompt (streaming)    {fig['magic_stream']:.3f} ms   (+{fig['magic_stream'] - fig['direct']:.3f} ms)"
        )

        cell = f"%%prompt mock/lorem -p max_tokens={args.tokens} -p mock_delay_ms={args.delay_ms}\nWrite at length."
        t0 = time.perf_counter()
        ex = k.run(cell, timeout=600)
        wall = time.perf_counter() - t0
        displays = ex.of("display_data", "update_display_data")
        sent = sum(len(str(m["content"]["data"])) for m in displays)
        span = ex.arrived[-1] - ex.arrived[0]
        print(f"\n{args.tokens}-token stream at {args.delay_ms} ms/token ({wall:.2f} s):")
        print(f"  display messages        {len(displays)}   (one per token would be {args.tokens})")
        print(f"  rate                    {(len(displays) - 1) / span:.1f} /s   (budget ~20 /s)")
        print(f"  bytes of display data   {sent / 1e6:.2f} MB")

        stops = []
        for _ in range(5):
            msg_id = k.send("%%prompt mock/lorem -p max_tokens=5000 -p mock_delay_ms=2\nlong")
            ex = k.collect(msg_id, until=lambda ex: len(ex.of("update_display_data")) >= 5)
            t0 = time.monotonic()
            k.interrupt()
            k.collect(msg_id, into=ex, timeout=30)
            final = ex.of("update_display_data")[-1]
            assert final["content"]["metadata"]["nbplayground"]["status"] == "stopped"
            stops.append((ex.arrived[-1] - t0) * 1000)
        print(f"\ninterrupt -> final 'stopped' display: median {statistics.median(stops):.0f} ms, "
              f"max {max(stops):.0f} ms (budget 250 ms)")  # fmt: skip
    finally:
        k.shutdown()


if __name__ == "__main__":
    main()
