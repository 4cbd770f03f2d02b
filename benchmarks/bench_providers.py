"""Client CPU per streamed chunk, per wire format and transport, against the raw openai SDK.

Each wire's fake (tests/support/fakes) runs in its own process and streams 500 pieces with no delay,
so the figures count only the client: nbplayground through each transport (native OpenAI, litellm for
OpenAI, Anthropic and Gemini, and any native parser registered for those), and the baseline, the
``openai`` SDK reading the same 500 pieces from the OpenAI fake. Rounds alternate; medians are printed
with their ratio to the SDK.

    python benchmarks/bench_providers.py [--rounds 7] [--pieces 500]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVE = """
import json, sys, time
sys.path.insert(0, {tests!r})
from support.fakes import Reply, WireFake
with WireFake({wire!r}, Reply(text=" ".join(f"w{{i}}" for i in range({pieces})), pieces={pieces})) as fake:
    print(json.dumps({{"url": fake.spec.api_base, "model": fake.spec.model, "env": fake.spec.env,
                      "extra": fake.spec.extra}}), flush=True)
    sys.stdin.read()
"""


def serve(wire: str, pieces: int) -> tuple[subprocess.Popen[str], dict]:
    code = SERVE.format(tests=str(ROOT / "tests"), wire=wire, pieces=pieces)
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    info = json.loads(proc.stdout.readline()) if proc.stdout else {}
    return proc, info


def run_sdk(client) -> tuple[float, int]:
    c0 = time.process_time()
    chunks = 0
    stream = client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "go"}], stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    for _ in stream:
        chunks += 1
    return time.process_time() - c0, chunks


def run_nbp(nbp, model: str) -> tuple[float, int]:
    c0 = time.process_time()
    handle = nbp.stream("go", model=model, history=False)
    deltas = sum(1 for ev in handle if ev.type == "delta")
    result = handle.result()
    assert result.status == "ok", result.error
    return time.process_time() - c0, deltas


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--pieces", type=int, default=500)
    args = ap.parse_args()
    os.environ.setdefault("NBPLAYGROUND_HOME", str(Path("/tmp") / "nbp-bench-providers"))

    import openai

    import nbplayground as nbp
    from nbplayground.core import transports

    procs, models = [], {}
    targets = [("openai", "openai", "native"), ("openai", "openai-litellm", "litellm"),
               ("anthropic", "anthropic-litellm", "litellm"), ("gemini", "gemini-litellm", "litellm")]  # fmt: skip
    for extra in ("anthropic", "gemini"):  # native parsers, when they exist
        if f"native_{extra}" in transports.names():
            targets.append((extra, f"{extra}-native", f"native_{extra}"))
    infos = {}
    for wire in {t[0] for t in targets}:
        proc, info = serve(wire, args.pieces)
        procs.append(proc)
        infos[wire] = info
        os.environ.update(info["env"])
    for wire, name, transport in targets:
        info = infos[wire]
        key_env = next((k for k in info["env"] if k.endswith("_API_KEY")), None)
        models[name] = {"model": info["model"], "api_base": info["url"], "transport": transport,
                        **({"api_key_env": key_env} if key_env else {})}  # fmt: skip
    nbp.configure(models=models)
    client = openai.OpenAI(base_url=infos["openai"]["url"], api_key="sk-fake", max_retries=0)
    try:
        for name in models:  # warm every path (imports, pools) before timing
            run_nbp(nbp, name)
        run_sdk(client)
        samples: dict[str, list[float]] = {name: [] for name in ["openai SDK", *models]}
        for r in range(args.rounds):
            order = ["openai SDK", *models] if r % 2 == 0 else [*models, "openai SDK"]
            for name in order:
                cpu, n = run_sdk(client) if name == "openai SDK" else run_nbp(nbp, name)
                samples[name].append(cpu / max(1, n) * 1e6)
    finally:
        for proc in procs:
            proc.stdin.close()  # type: ignore[union-attr]
            proc.wait(10)
    base = statistics.median(samples["openai SDK"])
    print(f"client CPU per chunk, {args.pieces} pieces, median of {args.rounds} rounds:")
    for name, values in samples.items():
        med = statistics.median(values)
        print(f"  {name:18s} {med:8.1f} µs  {med / base:5.2f}× the openai SDK")


if __name__ == "__main__":
    main()
