"""The front end's stream reducer (js/lib/reducer.ts) and its Python twin (core/fold.py ``StreamFold``) fold
the engine's real events to the engine's result, and to the same state as each other.

Each case runs a real run (tool rounds, a retry after a 429, a stop, a compare), keeps its events as
``Event.to_dict()`` (what the widget comm and SSE carry), folds them in node through ``reducer.ts``, folds
the same events through ``StreamFold``, and compares both with the ``RunResult`` the engine returned.
The fold *before* the results land (text, calls, tokens from the events alone) is compared too, since that
is what a viewer shows while a run streams.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import nbplayground as nbp
from nbplayground.core import retry
from nbplayground.core.fold import StreamFold
from nbplayground.core.types import Event, ToolCall, Usage
from support.oai_server import Behaviour, OpenAIServer

JS = Path(__file__).resolve().parents[1] / "js"
pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is needed for the front end")

RUNNER = """
import { emptyState, runStarted, applyEvents, runFinished } from './reducer.mjs';
import { readFileSync } from 'node:fs';
const cases = JSON.parse(readFileSync(0, 'utf8'));
const out = cases.map(({ targets, events }) => {
  const s = emptyState();
  runStarted(s, { type: 'run_started', run: 1, targets });
  applyEvents(s, events, 0);
  runFinished(s, { type: 'run_finished', run: 1 });
  return s.targets.map(t => ({ text: t.text, status: t.status, tokens_in: t.tokens_in, tokens_out: t.tokens_out,
                               calls: t.toolCalls.map(c => c.name), error: t.error, attempt: t.attempt,
                               reason: t.retryReason }));
});
process.stdout.write(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def fold(tmp_path_factory):
    """Fold lists of events through reducer.ts in one node process."""
    out = tmp_path_factory.mktemp("reducer")
    esbuild = JS / "node_modules" / ".bin" / "esbuild"
    subprocess.run([str(esbuild), str(JS / "lib" / "reducer.ts"), "--bundle", "--format=esm",
                    f"--outfile={out / 'reducer.mjs'}"], check=True, capture_output=True, timeout=120)  # fmt: skip
    (out / "run.mjs").write_text(RUNNER)

    def run(cases: list[dict]) -> list[list[dict]]:
        proc = subprocess.run(["node", str(out / "run.mjs")], input=json.dumps(cases), capture_output=True,
                              text=True, timeout=60, check=True)  # fmt: skip
        return json.loads(proc.stdout)

    return run


def _case(handle) -> tuple[dict, list, list[Event]]:
    objects = list(handle)
    results = handle.results()
    targets = [{"index": r.target_index, "run_id": r.id, "model": r.model} for r in results]
    events = json.loads(json.dumps([e.to_dict() for e in objects], default=str))
    return {"targets": targets, "events": events}, results, objects


def _expected(r) -> dict:
    return {"text": r.text, "status": r.status, "tokens_in": r.tokens_in, "tokens_out": r.tokens_out,
            "calls": [c.name for c in r.tool_calls], "error": r.error}  # fmt: skip


def _python_fold(case: dict, events: list[Event]) -> list[dict]:
    """What ``StreamFold`` makes of the same events, in the shape the node runner prints."""
    fold = StreamFold([t["model"] for t in case["targets"]], [t["run_id"] for t in case["targets"]])
    fold.apply_all(events)
    fold.finish()
    return [{"text": t.text, "status": t.status, "tokens_in": t.tokens_in, "tokens_out": t.tokens_out,
             "calls": [c.name for c in t.tool_calls], "error": t.error, "attempt": t.attempt,
             "reason": t.retry_reason} for t in fold.targets]  # fmt: skip


def _streaming_only(case: dict) -> dict:
    """The case without its results: what a viewer has folded while the run streams."""
    events = [{k: v for k, v in e.items() if k != "result"} for e in case["events"] if e["type"] != "done"]
    return {**case, "events": events}


def get_weather(city: str) -> str:
    """Weather.

    Args:
        city: City name.
    """
    return f"sunny in {city}"


def test_the_reducer_folds_real_runs_to_the_engines_results(fold, monkeypatch):
    monkeypatch.setattr(retry, "BACKOFF_BASE", 0.01)
    cases, expected, objects = [], [], []

    def add(handle) -> None:
        case, results, events = _case(handle)
        cases.append(case)
        objects.append(events)
        expected.append([_expected(r) for r in results])

    add(nbp.stream("What's the weather in Paris?", model="mock/tools", tools=[get_weather], history=False))
    add(nbp.stream("hi", models=["mock/echo", {"model": "mock/lorem", "params": {"max_tokens": 7}}], history=False))
    with OpenAIServer(tokens=6) as srv:
        nbp.configure(models={"local": {"model": "openai/m", "api_base": srv.url}})
        # a retry after output was shown: the round's partial text is void, the second try's text stays
        srv.script = [Behaviour(disconnect_after=2, tokens=6), Behaviour(text="second try wins")]
        add(nbp.stream("hi", model="local", history=False, retry_after_output=True))
        srv.script = [Behaviour(status=429, retry_after=0.01), Behaviour(text="after a 429")]
        add(nbp.stream("hi", model="local", history=False))
        srv.script = [Behaviour(status=400, error_message="bad temperature")]
        add(nbp.stream("hi", model="local", history=False))
    retries = [[e for e in c["events"] if e["type"] == "retry"] for c in cases]
    assert [len(r) for r in retries] == [0, 0, 1, 1, 0]  # retries after output and before it
    assert retries[2][0]["attempt"] == 2 and retries[2][0]["reason"] == "ConnectionLostError"
    assert retries[3][0]["reason"] == "RateLimitError" and retries[3][0]["wait"] >= 0.01
    assert all(sum(e["type"] == "start" for e in c["events"]) == len(c["targets"]) for c in cases)
    assert any(e["type"] == "delta" and e["text"].startswith("tok") for e in cases[2]["events"])
    folded = fold(cases)
    python = [_python_fold(c, evs) for c, evs in zip(cases, objects, strict=True)]
    assert python == folded  # the twins agree, attempt and reason included
    strip = [[{k: v for k, v in t.items() if k not in ("attempt", "reason")} for t in c] for c in folded]
    assert strip == expected  # and both agree with the engine
    assert folded[2][0]["text"] == "second try wins" and folded[3][0]["text"] == "after a 429"
    assert folded[2][0]["attempt"] == 2 and folded[3][0]["reason"] == "RateLimitError"
    assert folded[0][0]["calls"] == ["get_weather"] and folded[4][0]["status"] == "error"
    # while streaming (before any result lands) the twins agree too, and already show the engine's text
    live = [_streaming_only(c) for c in cases]
    live_events = [[Event(**_event_kwargs(e)) for e in c["events"]] for c in live]
    live_node = fold(live)
    live_python = [_python_fold(c, evs) for c, evs in zip(live, live_events, strict=True)]
    assert live_python == live_node
    for case_no in (0, 1, 2, 3):
        assert [t["text"] for t in live_node[case_no]] == [t["text"] for t in expected[case_no]]
    assert live_node[0][0]["tokens_out"] == expected[0][0]["tokens_out"]  # usage summed over tool rounds


def _event_kwargs(d: dict) -> dict:
    """An ``Event``'s constructor arguments from its ``to_dict()`` (results left out)."""
    out = {k: v for k, v in d.items() if k not in ("tool_call", "usage", "result")}
    if "tool_call" in d:
        out["tool_call"] = ToolCall(**d["tool_call"])
    if "usage" in d:
        out["usage"] = Usage(**d["usage"])
    return out
