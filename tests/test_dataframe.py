"""DataFrame runs: templates per row, kinds, structured columns, faults, resume, interrupt, budget."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from pydantic import BaseModel

import nbplayground as nbp
from nbplayground.core import errors as E
from nbplayground.core.types import Media
from support.oai_server import Behaviour, OpenAIServer

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture
def frame():
    return pd.DataFrame(
        {
            "question": ["why?", "how?", "what?"],
            "config": [
                '{"lang": "en", "tone": {"x": 1}}',
                '{"lang": "fr", "tone": {"x": 2}}',
                '{"lang": "de", "tone": {"x": 3}}',
            ],
            "meta": [{"k": "a"}, {"k": "b"}, {"k": "c"}],
        },
        index=[10, 20, 30],
    )


def test_column_filled_per_row_with_dot_paths(frame):
    before = frame.copy()
    out = frame.prompt.run("answer", prompt="{{question}} {{config.lang}} {{config.tone.x}} {{meta.k}}",
                           model="mock/echo", progress=False)  # fmt: skip
    assert out["answer"].tolist() == ["why? en 1 a", "how? fr 2 b", "what? de 3 c"]
    assert list(out.index) == [10, 20, 30]
    pd.testing.assert_frame_equal(frame, before)  # input untouched
    info = out.attrs["nbplayground"]
    runs = nbp.sql("select row_key, group_id, surface from runs order by row_key")
    assert runs["row_key"].tolist() == ["10", "20", "30"]
    assert set(runs["group_id"]) == {info["group_id"]} and set(runs["surface"]) == {"dataframe"}


def test_inplace_and_details(frame):
    assert nbp.run_prompt(frame, "a", prompt="{{question}}", model="mock/echo", inplace=True, details=True,
                          progress=False) is None  # fmt: skip
    assert frame["a"].tolist() == ["why?", "how?", "what?"]
    for suffix in ("status", "error", "tokens_in", "tokens_out", "cost_usd", "latency_ms", "run_id"):
        assert f"a__{suffix}" in frame.columns
    assert frame["a__status"].tolist() == ["ok"] * 3


def test_missing_columns_listed_before_any_call(frame):
    with pytest.raises(E.MissingColumnsError) as info:
        frame.prompt.run("x", prompt="{{nope}} {{question}} {{other.field}}", model="mock/echo")
    assert info.value.missing == ["nope", "other"]
    assert "The frame has: config, meta, question" in str(info.value)
    assert len(nbp.history()) == 0


def test_all_four_kinds(frame):
    img = frame.prompt.run("img", kind="image", prompt="{{question}}", model="mock/image", progress=False)
    assert all(isinstance(m, Media) and m.data.startswith(b"\x89PNG") for m in img["img"])
    audio = frame.prompt.run("audio", kind="speech", input="say {{question}}", model="mock/tts",
                             params={"voice": "alloy"}, progress=False)  # fmt: skip
    assert all(m.mime == "audio/wav" and m.path for m in audio["audio"])
    text = audio.prompt.run("text", kind="transcription", input="{{audio}}", model="mock/stt", progress=False)
    assert text["text"].tolist() == ["say why?", "say how?", "say what?"]
    chat = frame.prompt.run(
        "c", prompt="{{question}}", model="mock/lorem", params={"max_tokens": 2}, progress=False
    )
    assert all(len(v.split()) == 2 for v in chat["c"])
    from nbplayground import frames

    html = frames.frame_html(img)
    assert '<img src="data:image/png;base64,' in html


class Invoice(BaseModel):
    number: str
    total: float
    paid: bool


def test_structured_dicts_and_typed_expansion(frame):
    out = frame.prompt.run(
        "inv", prompt="{{question}}", model="mock/json", response_format=Invoice, progress=False
    )
    assert all(isinstance(v, dict) and set(v) == {"number", "total", "paid"} for v in out["inv"])
    wide = frame.prompt.run("inv", prompt="{{question}}", model="mock/json", response_format=Invoice, expand=True,
                            progress=False)  # fmt: skip
    assert str(wide["inv.total"].dtype) == "Float64" and str(wide["inv.paid"].dtype) == "boolean"
    assert wide["inv.number"].tolist() == ["why?", "how?", "what?"]


def test_tool_error_affects_only_its_row():
    df = pd.DataFrame({"city": ["Paris", "Atlantis", "Rome"]})

    def weather(city: str) -> str:
        """Weather for a city."""
        if city == "mock-city":
            raise ValueError("no such city")
        return "sunny"

    # mock/tools fills arguments from the prompt for the first string field
    out = df.prompt.run(
        "w", prompt="{{city}}", model="mock/tools", tools=[weather], details=True, progress=False
    )
    assert out["w__status"].tolist() == ["ok"] * 3
    assert all("sunny" in v for v in out["w"])


def test_resume_makes_zero_repeat_calls_and_retry_failed():
    df = pd.DataFrame({"q": [f"q{i}" for i in range(12)]})
    with OpenAIServer(tokens=2) as srv:
        nbp.configure(models={"local": {"model": "openai/m", "api_base": srv.url}})
        srv.script = [Behaviour()] * 3 + [Behaviour(status=400, error_message="bad row")] + [Behaviour()] * 20
        first = df.prompt.run("a", prompt="{{q}}", model="local", concurrency=1, progress=False)
        assert len(srv.bodies) == 12
        assert first["a__status"].tolist().count("error") == 1 and "bad row" in first["a__error"][3]
        again = df.prompt.run("a", prompt="{{q}}", model="local", concurrency=4, progress=False)
        assert len(srv.bodies) == 12  # nothing re-sent: ok and failed rows both come from the store
        assert again["a"].tolist() == first["a"].tolist()
        assert again.attrs["nbplayground"]["resumed"] == 12
        fixed = df.prompt.run("a", prompt="{{q}}", model="local", retry_failed=True, progress=False)
        assert len(srv.bodies) == 13 and srv.bodies[-1]["messages"][0]["content"] == "q3"
        assert "a__status" not in fixed.columns and fixed["a"].notna().all()
        changed = df.prompt.run(
            "a", prompt="Q: {{q}}", model="local", progress=False
        )  # another call: runs again
        assert len(srv.bodies) == 25 and changed["a"].notna().all()


def test_faults_429_retry_after_and_500_over_500_rows(llmock, monkeypatch):
    from nbplayground.core import retry

    monkeypatch.setattr(retry, "BACKOFF_BASE", 0.02)
    llmock.reset()
    nbp.configure(models={"llm": {"model": "openai/gpt-4o-mini", "api_base": llmock.base_url("openai"),
                                  "api_key_env": "OPENAI_API_KEY"}})  # fmt: skip
    df = pd.DataFrame({"q": [f"row {i}" for i in range(500)]})
    clean = df.prompt.run("a", prompt="{{q}}", model="mock/echo", progress=False)
    import random

    rng = random.Random(7)
    statuses = [429 if x < 0.10 else 500 if x < 0.15 else None for x in (rng.random() for _ in range(500))]
    for status in statuses:
        if status == 429:
            llmock.rate_limit(retry_after=0.05)
        elif status == 500:
            llmock.fail(500)
        else:
            llmock.delay(0.0)
    out = df.prompt.run("a", prompt="{{q}}", model="llm", concurrency=32, progress=False, details=True)
    assert out["a__status"].tolist() == ["ok"] * 500, out["a__error"].dropna().unique()[:3]
    assert out.attrs["nbplayground"]["ok"] == 500
    runs = nbp.sql("select row_key, text, attempts from runs where group_id = ?", [out.attrs["batch_id"]])
    assert len(runs) == 500 and runs["row_key"].nunique() == 500  # 0 rows lost or duplicated
    faults = sum(1 for s in statuses if s)
    failed = [r for r in llmock.requests if r.status >= 400]
    assert len(failed) == faults >= 50  # every injected fault happened...
    assert len(llmock.requests) == 500 + faults  # ...and cost exactly one retry, no more
    assert int(runs["attempts"].sum()) == 500 + faults
    assert {r.status for r in failed} == {429, 500}
    # every row's answer belongs to its own row: llmock answers mention the prompt's model; compare shapes
    assert out["a"].notna().all() and (out.index == clean.index).all()


def test_random_faults_never_misalign_rows(monkeypatch):
    """10 % 429 (Retry-After) and 5 % 500 at random: the column equals a fault-free run's, row by row."""
    from nbplayground.core import retry

    monkeypatch.setattr(retry, "BACKOFF_BASE", 0.02)
    df = pd.DataFrame(
        {"q": [f"row {i} says {i * 7}" for i in range(500)]}, index=[f"k{i}" for i in range(500)]
    )
    with OpenAIServer(echo=True, chaos={429: 0.10, 500: 0.05}, chaos_seed=3) as srv:
        nbp.configure(models={"echo": {"model": "openai/echo", "api_base": srv.url}})
        out = df.prompt.run("a", prompt="{{q}}", model="echo", concurrency=32, max_attempts=8, progress=False)
        faulted = len(srv.bodies) - 500
    clean = df.prompt.run("a", prompt="{{q}}", model="mock/echo", progress=False)
    assert faulted >= 50
    assert "a__status" not in out.columns  # every row ended ok
    pd.testing.assert_series_equal(out["a"], clean["a"])


def test_keyboard_interrupt_returns_partial_frame():
    df = pd.DataFrame({"q": [f"q{i}" for i in range(40)]})
    main = threading.main_thread().ident

    def interrupt():
        time.sleep(0.4)
        signal.pthread_kill(main, signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    t0 = time.perf_counter()
    out = df.prompt.run("a", prompt="{{q}}", model="mock/lorem", params={"max_tokens": 20, "mock_delay_ms": 10},
                        concurrency=2, progress=False)  # fmt: skip
    assert time.perf_counter() - t0 < 1.5
    status = out["a__status"].tolist()
    assert status.count("ok") >= 2 and "not run" in status
    assert out.attrs["nbplayground"]["interrupted"] is True
    done = [i for i, s in enumerate(status) if s == "ok"]
    assert all(len(out["a"][i].split()) == 20 for i in done)


def test_killed_process_resumes_without_repeating_finished_rows(nbp_home):
    with OpenAIServer(tokens=2, delay=0.0) as srv:
        script = textwrap.dedent(f"""
            import sys; sys.path.insert(0, {SRC!r})
            import pandas as pd, nbplayground as nbp
            nbp.configure(models={{"local": {{"model": "openai/m", "api_base": {srv.url!r}}}}})
            df = pd.DataFrame({{"q": [f"q{{i}}" for i in range(60)]}})
            print("start", flush=True)
            df.prompt.run("a", prompt="{{{{q}}}}", model="local", concurrency=1, progress=False)
        """)
        srv.latency = 0.03
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "NBPLAYGROUND_HOME": str(nbp_home)})  # fmt: skip
        assert proc.stdout.readline().strip() == "start"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # kill it once some rows are checkpointed, mid-batch
            if (nbp_home / "history.duckdb").exists() and int(
                nbp.sql("select count(*) as n from runs")["n"][0]
            ) >= 5:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        persisted = set(nbp.sql("select row_key from runs where status = 'ok'")["row_key"])
        assert 5 <= len(persisted) < 60
        sent_before = len(srv.bodies)
        srv.latency = 0.0
        nbp.configure(models={"local": {"model": "openai/m", "api_base": srv.url}})
        df = pd.DataFrame({"q": [f"q{i}" for i in range(60)]})
        out = df.prompt.run("a", prompt="{{q}}", model="local", concurrency=4, progress=False)
        assert out["a"].notna().all()
        resent = [b["messages"][0]["content"] for b in srv.bodies[sent_before:]]
        assert not {f"q{int(k)}" for k in persisted} & set(resent)  # 0 repeated calls for finished rows
        assert len(resent) == 60 - len(persisted)


def test_estimate_and_max_cost():
    df = pd.DataFrame({"q": ["one two three four"] * 10})
    est = df.prompt.estimate("a", prompt="{{q}}", model="mock/lorem", params={"max_tokens": 10})
    assert est.calls == 10 and est.tokens_out_max == 100 and est.cost_usd > 0
    assert str(est).startswith("10 calls to mock/lorem") and "10 calls" in est._repr_html_()
    assert len(nbp.history()) == 0
    per_row = 1e-6 * 2 + 2e-6 * 10  # mock prices: ~2 tokens in (chars/4 estimate), 10 out
    out = df.prompt.run("a", prompt="{{q}}", model="mock/lorem", params={"max_tokens": 10}, max_cost=per_row * 4.5,
                        concurrency=1, progress=False)  # fmt: skip
    info = out.attrs["nbplayground"]
    assert info["budget_exhausted"] and 1 <= info["ok"] <= 4 and info["cost_usd"] <= per_row * 4.5
    assert out["a__status"].tolist().count("not run") == 10 - info["ok"]


class NoUsageServer:
    """A real OpenAI-compatible endpoint on 127.0.0.1 whose answers carry no ``usage`` (some local servers)."""

    def __init__(self) -> None:
        import json
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.bodies: list[dict] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                bodies.append(body)
                choice = {"index": 0, "message": {"role": "assistant", "content": "an answer"},
                          "finish_reason": "stop"}  # fmt: skip
                out = json.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": body["model"],
                                  "choices": [choice]}).encode()  # fmt: skip
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/v1"

    def __enter__(self) -> NoUsageServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def test_unpriced_model_cost_is_unknown_not_zero(capsys):
    df = pd.DataFrame({"q": ["a", "b", "c"]})
    with OpenAIServer(tokens=2) as srv:
        nbp.configure(models={"local": {"model": "openai/my-model", "api_base": srv.url},
                              "priced": {"model": "openai/my-model", "api_base": srv.url,
                                         "input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}})  # fmt: skip
        out = df.prompt.run("a", prompt="{{q}}", model="local", details=True, progress=True)
        bar = capsys.readouterr().err
        priced = df.prompt.run("a", prompt="{{q}}", model="priced", details=True, progress=False)
        assert len(srv.bodies) == 6
    info = out.attrs["nbplayground"]
    assert out["a"].tolist() == ["tok0 tok1"] * 3 and out["a__tokens_out"].tolist() == [2] * 3
    assert info["cost_usd"] is None and info["unpriced_rows"] == 3  # not 0.0
    assert out["a__cost_usd"].isna().all()
    assert "cost unknown: 3 of 3 rows had no price" in info["summary"]
    assert "local has no price: set input_cost_per_token" in info["summary"]
    assert "cost=unknown (3 unpriced)" in bar  # the progress bar's last state
    # the same endpoint with a price: exact costs from the server's usage (5 tokens in, 2 out per row)
    per_row = 5 * 1e-6 + 2 * 2e-6
    assert priced.attrs["nbplayground"]["cost_usd"] == pytest.approx(3 * per_row)
    assert priced.attrs["nbplayground"]["unpriced_rows"] == 0
    assert priced["a__cost_usd"].tolist() == pytest.approx([per_row] * 3)
    assert priced.attrs["nbplayground"]["summary"].endswith(f"cost ${3 * per_row:.4f}")


def test_max_cost_without_a_price_refuses_before_any_request():
    df = pd.DataFrame({"q": ["a", "b", "c"]})
    with OpenAIServer(tokens=2) as srv:
        nbp.configure(models={"local": {"model": "openai/my-model", "api_base": srv.url}})
        with pytest.raises(E.BadParameterError) as info:
            df.prompt.run("a", prompt="{{q}}", model="local", max_cost=0.5, progress=False)
        message = str(info.value)
        assert "\n" not in message and "local has no price" in message and "cannot be enforced" in message
        assert "input_cost_per_token" in message and "output_cost_per_token" in message
        assert "drop max_cost" in message
        assert srv.bodies == [] and srv.connections == []  # the server never saw a request
        assert len(nbp.history()) == 0
        # a price of 0 (a free local model) is a price: the cap is enforceable and the batch runs
        nbp.configure(models={"local": {"model": "openai/my-model", "api_base": srv.url,
                                        "input_cost_per_token": 0, "output_cost_per_token": 0}})  # fmt: skip
        out = df.prompt.run("a", prompt="{{q}}", model="local", max_cost=0.5, progress=False)
        assert len(srv.bodies) == 3 and out.attrs["nbplayground"]["cost_usd"] == 0.0
    with pytest.raises(E.BadParameterError, match="max_cost must be a number"):
        df.prompt.run("a", prompt="{{q}}", model="mock/echo", max_cost=-1, progress=False)


def test_rows_without_usage_are_counted_here_and_the_cap_holds_by_those_counts():
    """Priced model, the server omits usage: each row's tokens are counted locally (marked) and charged."""
    df = pd.DataFrame({"q": ["x"] * 10})
    with NoUsageServer() as srv:
        nbp.configure(models={"nousage": {"model": "openai/m", "api_base": srv.url,
                                          "input_cost_per_token": 1e-6, "output_cost_per_token": 1e-6}})  # fmt: skip
        one = nbp.run("x", model="nousage", history=False)
        assert one.tokens_estimated and one.cost_usd is not None and one.cost_usd > 0
        out = df.prompt.run("a", prompt="{{q}}", model="nousage", params={"max_tokens": 10},
                            max_cost=one.cost_usd * 3.5, concurrency=1, progress=False)  # fmt: skip
        sent = len(srv.bodies) - 1
    info = out.attrs["nbplayground"]
    assert sent == 3 == info["ok"] and info["not_run"] == 7 and info["budget_exhausted"]
    assert info["cost_usd"] == pytest.approx(3 * one.cost_usd) and info["estimated_rows"] == 3
    assert info["unpriced_rows"] == 0 and not info["cost_unenforceable"]
    assert "3 rows sent no usage and were counted here" in info["summary"]


def test_max_cost_stops_the_batch_when_a_row_cost_cannot_be_bounded():
    """A transcription reports no input tokens: its cost is unknown and unbounded, so no new row starts."""
    from nbplayground.core import mock

    audio = mock.make_wav("hello there")
    df = pd.DataFrame({"audio": [audio] * 6})
    with pytest.warns(UserWarning, match="max_cost cannot be enforced") as caught:
        out = df.prompt.run("t", kind="transcription", input="{{audio}}", model="mock/stt", max_cost=100.0,
                            concurrency=1, progress=False)  # fmt: skip
    message = str(caught[0].message)
    assert "cannot be bounded" in message and "5 rows not run" in message and "\n" not in message
    info = out.attrs["nbplayground"]
    assert info["cost_unenforceable"] and not info["budget_exhausted"]
    assert info["ok"] == 1 and info["not_run"] == 5 and info["cost_usd"] is None
    assert out["t__status"].tolist().count("not run") == 5
    # without max_cost nothing needs enforcing: the rest runs (resumed), the cost still reported unknown
    rest = df.prompt.run("t", kind="transcription", input="{{audio}}", model="mock/stt", progress=False)
    assert rest["t"].notna().all() and rest.attrs["nbplayground"]["cost_usd"] is None
    assert rest.attrs["nbplayground"]["unpriced_rows"] == 5


def test_estimate_without_max_tokens_is_a_floor():
    df = pd.DataFrame({"q": ["one two three four"] * 4})
    est = df.prompt.estimate("a", prompt="{{q}}", model="mock/lorem")
    assert est.tokens_out_max is None and est.cost_usd is not None
    assert "est. cost at least $" in str(est) and "output unbounded" in str(est)
    nbp.configure(models={"local": {"model": "openai/my-model", "api_base": "http://127.0.0.1:9/v1"}})
    unpriced = df.prompt.estimate("a", prompt="{{q}}", model="local", max_cost=1.0, params={"max_tokens": 5})
    assert unpriced.cost_usd is None and "unknown (no price for this model)" in str(unpriced)
