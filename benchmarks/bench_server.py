"""The server extension under load: 50 concurrent SSE runs against one Jupyter server.

    python benchmarks/bench_server.py [--runs 50] [--tokens 50] [--delay 0.01] [--rounds 3]

A local OpenAI-compatible server (its own process) streams ``tokens`` tokens at ``delay`` s each. In the
same run we measure, per run, the time from request to the final ``done``:

- baseline: the core engine in this process, 50 concurrent ``nbp.stream`` runs on the same server;
- API: 50 concurrent ``POST /playground/run`` with ``stream: true`` against a Jupyter server (own process),
  parsed as a client would (httpx), each to its ``event: done``.

It reports how many completed, p50/p95 of both and the added p95, and the server's event loop lag:
round trips of ``GET /api/status`` every 20 ms during the load, against the same probe idle.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_stream import start_server  # noqa: E402
from support.servers import start_jupyter  # noqa: E402


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def engine_round(runs: int) -> list[float]:
    import nbplayground as nbp

    async def one() -> float:
        t0 = time.perf_counter()
        h = nbp.stream("bench", model="local", history=True)
        async for _ in h:
            pass
        assert h.result().status == "ok", h.result().error
        return (time.perf_counter() - t0) * 1000

    return list(await asyncio.gather(*(one() for _ in range(runs))))


async def api_round(url: str, headers: dict[str, str], runs: int) -> tuple[list[float], int, list[float]]:
    import aiohttp

    # aiohttp rather than httpx: the client shares 2 cores with the server and the model, and its
    # per-line cost would otherwise be counted as the server's.
    connector = aiohttp.TCPConnector(limit=runs + 5)
    async with aiohttp.ClientSession(url, headers=headers, connector=connector) as client:
        done = 0
        lags: list[float] = []
        stop = asyncio.Event()

        async def probe() -> None:
            while not stop.is_set():
                t0 = time.perf_counter()
                async with client.get("/api/status") as r:
                    await r.read()
                lags.append((time.perf_counter() - t0) * 1000)
                await asyncio.sleep(0.02)

        async def one() -> float:
            nonlocal done
            t0 = time.perf_counter()
            body = {"model": "local", "prompt_text": "bench", "stream": True}
            async with client.post("/nbplayground/api/v1/playground/run", json=body) as r:
                event = None
                async for raw in r.content:
                    line = raw.decode().rstrip("\n")
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:") and event == "done":
                        assert json.loads(line[5:])["result"]["status"] == "ok"
                        done += 1
                        break
            return (time.perf_counter() - t0) * 1000

        prober = asyncio.create_task(probe())
        times = await asyncio.gather(*(one() for _ in range(runs)))
        stop.set()
        await prober
        return list(times), done, lags


async def idle_lag(url: str, headers: dict[str, str], n: int = 50) -> list[float]:
    import httpx

    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            await client.get("/api/status")
            out.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.02)
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--tokens", type=int, default=50)
    ap.add_argument("--delay", type=float, default=0.01)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    upstream, upstream_url = start_server(args.tokens, args.delay)
    base = Path(tempfile.mkdtemp(prefix="nbp-bench-server-"))
    (base / "home").mkdir()
    config = f'[models.local]\nmodel = "openai/local-model"\napi_base = "{upstream_url}"\n'
    (base / "home" / "config.toml").write_text(config)
    here = base / "client-home"
    here.mkdir()
    (here / "config.toml").write_text(config)
    os.environ["NBPLAYGROUND_HOME"] = str(here)
    server = start_jupyter(base)
    try:
        asyncio.run(engine_round(5))  # warm up both sides
        asyncio.run(api_round(server.url, server.headers, 5))
        idle = asyncio.run(idle_lag(server.url, server.headers))
        engine, api, lags, completed = [], [], [], 0
        for _ in range(args.rounds):
            engine += asyncio.run(engine_round(args.runs))
            times, done, lag = asyncio.run(api_round(server.url, server.headers, args.runs))
            api += times
            completed += done
            lags += lag
        ideal = args.tokens * args.delay * 1000
        print(f"{args.runs} concurrent SSE runs x {args.rounds} rounds, {args.tokens} tokens at {args.delay * 1000:.0f} ms "
              f"(ideal {ideal:.0f} ms per run)")  # fmt: skip
        print(f"  completed: {completed}/{args.runs * args.rounds}")
        print(
            f"  core engine, same process: p50 {statistics.median(engine):.0f} ms, p95 {pct(engine, 95):.0f} ms"
        )
        print(f"  API over SSE:              p50 {statistics.median(api):.0f} ms, p95 {pct(api, 95):.0f} ms")
        print(f"  added by the API: p50 {statistics.median(api) - statistics.median(engine):+.0f} ms, "
              f"p95 {pct(api, 95) - pct(engine, 95):+.0f} ms")  # fmt: skip
        print(f"  server loop lag (GET /api/status): idle p50 {statistics.median(idle):.1f} ms; under load "
              f"p50 {statistics.median(lags):.1f} ms, p95 {pct(lags, 95):.1f} ms, max {max(lags):.1f} ms "
              f"({len(lags)} probes)")  # fmt: skip
    finally:
        server.stop()
        upstream.terminate()


if __name__ == "__main__":
    main()
