"""Streaming overhead: nbplayground vs the raw openai SDK, side by side against one local server.

The server (tests/support/oai_server.py) runs in its own process and streams 500 tokens at 5 ms/token,
so CPU figures count only the client. Each round runs the SDK and nbplayground back to back (order
alternating); the medians and their ratios are printed.

    python benchmarks/bench_stream.py [--rounds 7] [--tokens 500] [--delay 0.005]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    tokens: int, delay: float, latency: float = 0.0, echo: bool = False
) -> tuple[subprocess.Popen[bytes], str]:
    """The local OpenAI-compatible server in its own process; returns it and its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "support" / "oai_server.py"), "--port", str(port),
         "--tokens", str(tokens), "--delay", str(delay), "--latency", str(latency), *(["--echo"] if echo else [])],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    url = proc.stdout.readline().decode().strip() if proc.stdout else ""
    return proc, url


def run_sdk(client, model: str) -> tuple[float, float, int]:
    w0, c0 = time.perf_counter(), time.process_time()
    chunks = 0
    text = []
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "go"}], stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    for chunk in stream:
        chunks += 1
        if chunk.choices and chunk.choices[0].delta.content:
            text.append(chunk.choices[0].delta.content)
    return time.perf_counter() - w0, time.process_time() - c0, chunks


def run_nbp(nbp, model: str) -> tuple[float, float, int]:
    w0, c0 = time.perf_counter(), time.process_time()
    handle = nbp.stream("go", model=model)
    deltas = 0
    for ev in handle:
        if ev.type == "delta":
            deltas += 1
    result = handle.result()
    assert result.status == "ok", result.error
    return time.perf_counter() - w0, time.process_time() - c0, deltas


def import_time(runs: int = 9) -> float:
    code = "import time; t=time.perf_counter(); import nbplayground; print(time.perf_counter()-t)"
    times = [float(subprocess.check_output([sys.executable, "-c", code]).decode()) for _ in range(runs)]
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--tokens", type=int, default=500)
    ap.add_argument("--delay", type=float, default=0.005)
    args = ap.parse_args()

    import tempfile

    os.environ.setdefault("NBPLAYGROUND_HOME", tempfile.mkdtemp(prefix="nbp-bench-"))
    proc, url = start_server(args.tokens, args.delay)
    try:
        import openai

        import nbplayground as nbp

        nbp.configure(models={"bench": {"model": "openai/bench", "api_base": url}})
        client = openai.OpenAI(base_url=url, api_key="bench", max_retries=0)
        run_sdk(client, "bench")  # warm both paths (connection pools, lazy imports)
        run_nbp(nbp, "bench")
        sdk, ours = [], []
        for i in range(args.rounds):
            pair = [("sdk", run_sdk, client), ("nbp", run_nbp, nbp)]
            for name, fn, arg in pair if i % 2 == 0 else reversed(pair):
                (sdk if name == "sdk" else ours).append(fn(arg, "bench"))
        from nbplayground.storage import history

        history.flush()
    finally:
        proc.terminate()

    def med(rows: list[tuple[float, float, int]], k: int) -> float:
        return statistics.median(r[k] for r in rows)

    sdk_wall, nbp_wall = med(sdk, 0), med(ours, 0)
    sdk_cpu_chunk = statistics.median(r[1] / r[2] for r in sdk)
    nbp_cpu_chunk = statistics.median(r[1] / r[2] for r in ours)
    imp = import_time()
    print(
        f"server: {args.tokens} tokens at {args.delay * 1000:g} ms/token, {args.rounds} rounds each, medians"
    )
    print(
        f"wall time   sdk {sdk_wall * 1000:8.1f} ms   nbp {nbp_wall * 1000:8.1f} ms   ratio {nbp_wall / sdk_wall:.3f}x (budget 1.10x)"
    )
    print(f"CPU / chunk sdk {sdk_cpu_chunk * 1e6:8.1f} us   nbp {nbp_cpu_chunk * 1e6:8.1f} us   "
          f"ratio {nbp_cpu_chunk / sdk_cpu_chunk:.3f}x (budget 2x)")  # fmt: skip
    print(f"import nbplayground: {imp * 1000:.1f} ms (budget 150 ms)")


if __name__ == "__main__":
    main()
