"""Playground widget: bytes and messages sent to the front end per stream, and kernel responsiveness.

    python benchmarks/bench_widget.py [--delay-ms 1]

- bytes: a 2,000- and an 8,000-token ``mock/lorem`` stream through a Playground whose ``send`` is
  recorded (JSON-encoded like the comm would), against the O(n²) bytes of re-sending a growing string
  trait at the same 50 ms cadence (what a naive widget does);
- messages per second while streaming;
- responsiveness: in a real kernel, the round-trip time of a trivial cell (``1 + 1``) while 3 targets
  stream from a Playground, against the same kernel idle.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def stream_bytes(tokens: int, delay_ms: float) -> dict[str, float]:
    from nbplayground.widgets import Playground

    pg = Playground(
        "Write", models=[{"model": "mock/lorem", "params": {"max_tokens": tokens, "mock_delay_ms": delay_ms}}]
    )
    sent: list[tuple[float, int, dict]] = []
    pg.send = lambda msg, buffers=None: sent.append((time.monotonic(), len(json.dumps(msg)), msg))  # type: ignore[method-assign]
    pg._handle_custom_msg({"type": "ready"}, [])
    t0 = time.monotonic()
    pg.run()
    pg.wait(600)
    wall = time.monotonic() - t0
    stream = [(t, n, m) for t, n, m in sent if m["type"] == "events"]
    text_len = len(pg.results[0].text)
    # a growing string trait re-sent at each of the same flushes: sum of prefix lengths
    naive, so_far = 0, 0
    for _, _, m in stream:
        so_far += sum(len(e.get("text", "")) for e in m["events"] if e["type"] == "delta")
        naive += so_far + 60
    return {
        "tokens": tokens,
        "chars": text_len,
        "messages": len(stream),
        "bytes": sum(n for _, n, _ in stream),
        "naive_bytes": naive,
        "wall": wall,
        "rate": len(stream) / wall,
    }


RESPONSIVE = """
import nbplayground as nbp
pg = nbp.Playground("Write", models=[{{"model": "mock/lorem", "params": {{"max_tokens": {tokens}, "mock_delay_ms": {delay}}}}}] * 3)
pg._ready = True  # as if a view were attached: the comm messages really go out on IOPub
pg.run()
"""


def responsiveness(delay_ms: float, probes: int = 40) -> tuple[float, float, int]:
    from support.kernel import Kernel

    home = Path(tempfile.mkdtemp(prefix="nbp-bench-widget-")) / "home"
    k = Kernel({"NBPLAYGROUND_HOME": str(home)})
    try:
        k.run("import nbplayground as nbp; nbp.Playground('warm', model='mock/echo')")

        def probe() -> float:
            t0 = time.perf_counter()
            ex = k.run("1 + 1")
            assert ex.error is None
            return (time.perf_counter() - t0) * 1000

        idle = [probe() for _ in range(probes)]
        tokens = int(20_000 / max(delay_ms, 0.5))  # long enough to outlast the probes
        ex = k.run(RESPONSIVE.format(tokens=tokens, delay=delay_ms))
        assert ex.error is None, ex.error
        busy = [probe() for _ in range(probes)]
        still = k.value("pg.status")
        k.run("pg.stop(); pg.wait(10)")
        return statistics.median(idle), statistics.median(busy), int(still == "running")
    finally:
        k.shutdown()


def stop_latency(rounds: int = 5) -> list[float]:
    """Stop pressed while 3 targets stream: ms until every target has its final 'stopped' result."""
    from nbplayground.widgets import Playground

    out = []
    for _ in range(rounds):
        pg = Playground(
            "Write", models=[{"model": "mock/lorem", "params": {"max_tokens": 5000, "mock_delay_ms": 2}}] * 3
        )
        pg.send = lambda msg, buffers=None: None  # type: ignore[method-assign]
        pg._handle_custom_msg({"type": "ready"}, [])
        pg.run()
        time.sleep(0.3)
        t0 = time.perf_counter()
        pg._handle_custom_msg({"type": "stop"}, [])
        pg.wait(10)
        out.append((time.perf_counter() - t0) * 1000)
        assert [o["status"] for o in pg.outputs] == ["stopped"] * 3
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--delay-ms", type=float, default=1.0)
    args = ap.parse_args()
    home = tempfile.mkdtemp(prefix="nbp-bench-widget-home-")
    import os

    os.environ["NBPLAYGROUND_HOME"] = home
    print(f"stream to the front end (mock/lorem at {args.delay_ms} ms/token):")
    rows = [stream_bytes(n, args.delay_ms) for n in (2000, 8000)]
    for r in rows:
        print(f"  {r['tokens']:>5} tokens ({r['chars']} chars): {r['messages']} messages in {r['wall']:.2f} s "
              f"({r['rate']:.1f}/s), {r['bytes'] / 1e3:.1f} kB sent; growing-string trait would send "
              f"{r['naive_bytes'] / 1e6:.2f} MB")  # fmt: skip
    ratio = rows[1]["bytes"] / rows[0]["bytes"]
    print(f"  bytes 8,000 / 2,000 tokens: {ratio:.2f}x (linear = {rows[1]['chars'] / rows[0]['chars']:.2f}x)")
    stops = stop_latency()
    print(f"\nStop while 3 targets stream -> all 'stopped' in outputs: median {statistics.median(stops):.1f} ms, "
          f"max {max(stops):.1f} ms (budget 250 ms)")  # fmt: skip
    idle, busy, streaming = responsiveness(args.delay_ms)
    print(f"\nkernel responsiveness, trivial cell round trip: idle {idle:.1f} ms, while 3 targets stream "
          f"{busy:.1f} ms (+{busy - idle:.1f} ms; still streaming at the end: {bool(streaming)})")  # fmt: skip


if __name__ == "__main__":
    main()
