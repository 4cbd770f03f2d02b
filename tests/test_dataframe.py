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

import numpy as np
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
    assert info.value.missing == ["nope", "other"] and info.value.field == "columns.nope"
    assert "The frame has: config, meta, question" in str(info.value)
    assert len(nbp.history()) == 0


def test_input_errors_name_their_field_and_the_surface_uses_only_public_names(frame):
    import ast

    for kw, field in [({"kind": "poem"}, "kind"), ({"on_missing": "drop"}, "on_missing"), ({}, "prompt"),
                      ({"kind": "speech"}, "input"), ({"max_cost": -1}, "max_cost"),
                      ({"tool_mode": "sometimes"}, "tool_mode")]:  # fmt: skip
        args = {"prompt": "{{question}}", **kw} if field != "prompt" and field != "input" else kw
        with pytest.raises(E.BadParameterError) as info:
            frame.prompt.run("x", model="mock/echo", progress=False, **args)
        assert info.value.field == field, kw
    assert len(nbp.history()) == 0
    src = Path(SRC) / "nbplayground"
    for name in ("dataframe.py", "batchrun.py"):
        assert len((src / name).read_text().splitlines()) <= 600, name
        for node in ast.walk(ast.parse((src / name).read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("nbplayground.core",
                                                                                     "nbplayground.storage")):  # fmt: skip
                assert not [a.name for a in node.names if a.name.startswith("_")], (name, node.module)


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
    summary: str


def test_structured_dicts_and_typed_expansion(frame):
    out = frame.prompt.run(
        "inv", prompt="{{question}}", model="mock/json", response_format=Invoice, progress=False
    )
    assert all(isinstance(v, dict) and set(v) == {"number", "total", "paid", "summary"} for v in out["inv"])
    wide = frame.prompt.run("inv", prompt="{{question}}", model="mock/json", response_format=Invoice, expand=True,
                            progress=False)  # fmt: skip
    assert str(wide["inv.total"].dtype) == "Float64" and str(wide["inv.paid"].dtype) == "boolean"
    assert wide["inv.summary"].tolist() == ["why?", "how?", "what?"]  # mock/json: free text from the prompt
    assert str(wide["inv.number"].dtype) == "string" and wide["inv.number"].notna().all()


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


# --- progress bars tell the truth ----------------------------------------------------------------------


@pytest.fixture
def bars(monkeypatch):
    """The real tqdm bars ``run_prompt`` makes, kept for a look after the batch (a pass-through spy)."""
    from nbplayground import batchrun

    made = []
    real = batchrun._progress

    def keep(*args, **kwargs):
        bar = real(*args, **kwargs)
        made.append(bar)
        return bar

    monkeypatch.setattr(batchrun, "_progress", keep)
    return made


def test_progress_bar_ends_at_the_true_count_fast_slow_and_resumed(bars):
    df = pd.DataFrame({"q": ["a", "b", "c"]})
    df.prompt.run("a", prompt="{{q}}", model="mock/echo")  # done before the update loop's first look
    slow = pd.DataFrame({"q": [f"s{i}" for i in range(5)]})
    slow.prompt.run("a", prompt="{{q}}", model="mock/lorem", params={"max_tokens": 2, "mock_delay_ms": 60},
                    concurrency=1)  # fmt: skip
    again = df.prompt.run("a", prompt="{{q}}", model="mock/echo")  # every row resumed
    assert again.attrs["nbplayground"]["resumed"] == 3
    assert [(b.n, b.total) for b in bars] == [(3, 3), (5, 5), (3, 3)]
    assert bars[2].initial == 3  # resumed rows count from the start
    assert all(b.disable for b in bars)  # closed


def test_progress_bar_counts_resumed_rows_then_the_retried_one(bars):
    df = pd.DataFrame({"q": ["q0", "q1", "q2"]})
    with OpenAIServer(tokens=2) as srv:
        nbp.configure(models={"local": {"model": "openai/m", "api_base": srv.url}})
        srv.script = [Behaviour(), Behaviour(status=400, error_message="bad row"), Behaviour()]
        first = df.prompt.run("a", prompt="{{q}}", model="local", concurrency=1)
        assert first["a__status"].tolist() == ["ok", "error", "ok"]
        df.prompt.run("a", prompt="{{q}}", model="local", retry_failed=True)
        assert len(srv.bodies) == 4
    assert (bars[0].n, bars[0].total) == (3, 3)  # a failed row is finished too
    assert (bars[1].initial, bars[1].n, bars[1].total) == (2, 3, 3)


def test_progress_in_a_script_ends_on_n_of_n(nbp_home):
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {SRC!r})
        import pandas as pd, nbplayground as nbp
        df = pd.DataFrame({{"q": ["a", "b", "c", "d", "e"]}})
        df.prompt.run("a", prompt="{{{{q}}}}", model="mock/echo")
        df.prompt.run("a", prompt="{{{{q}}}}", model="mock/echo")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120,
                          env={**os.environ, "NBPLAYGROUND_HOME": str(nbp_home)})  # fmt: skip
    stderr = proc.stderr.decode()  # bytes: text mode would turn tqdm's \r into new lines
    assert proc.returncode == 0, stderr
    lines = [line for line in stderr.split("\n") if "nbplayground" in line]
    assert len(lines) == 2, stderr  # one bar per batch, each ending on its own line
    for line in lines:
        last = [s for s in line.split("\r") if s.strip()][-1]  # what the terminal shows at the end
        assert "100%" in last and " 5/5 " in last and "ok=5" in last, last
    assert "0/5" not in lines[1]  # the resumed batch starts at 5/5


def test_notebook_progress_widgets_end_full_and_not_danger(tmp_path):
    """In a real kernel: tqdm.notebook's bars (FloatProgress in the container) end at max, style success."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in (
        "import pandas as pd, nbplayground as nbp\ndf = pd.DataFrame({'q': ['a', 'b', 'c']})",
        "out = df.prompt.run('a', prompt='{{q}}', model='mock/echo')",
        "out = df.prompt.run('a', prompt='{{q}}', model='mock/echo')",  # resumed: no work at all
        "slow = {'max_tokens': 2, 'mock_delay_ms': 50}\n"
        "out = df.prompt.run('b', prompt='{{q}}', model='mock/lorem', params=slow, concurrency=1)",
        "odd = pd.DataFrame({'q': ['a', None, '  ']})\nout = odd.prompt.run('a', prompt='{{q}}', model='mock/echo')",
    )]  # fmt: skip
    client = NotebookClient(nb, timeout=120, kernel_name="python3", store_widget_state=True,
                            resources={"metadata": {"path": str(tmp_path)}})  # fmt: skip
    client.execute()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    progress = [m["state"] for m in state.values() if m["model_name"] == "FloatProgressModel"]
    assert len(progress) == 4, progress
    assert [(p["value"], p["max"], p["bar_style"]) for p in progress] == [(3.0, 3.0, "success")] * 4
    labels = [" " + " ".join(m["state"]["value"].replace("\u2007", " ").split()) + " "
              for m in state.values() if m["model_name"] == "HTMLModel"]  # fmt: skip
    assert sum(" 3/3 " in label for label in labels) == 4 and "skipped=2" in " ".join(labels), labels


# --- missing values are not prompts --------------------------------------------------------------------


def _gappy() -> pd.DataFrame:
    return pd.DataFrame(
        {"q": ["hello", np.nan, None, pd.NA, pd.NaT, "   ", "bye"],
         "n": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, np.nan]},
        index=[f"r{i}" for i in range(7)], dtype=object,
    )  # fmt: skip


def test_missing_values_skip_the_row_without_a_call_by_default():
    df = _gappy()
    with OpenAIServer(echo=True) as srv:
        nbp.configure(models={"echo": {"model": "openai/echo", "api_base": srv.url,
                                       "input_cost_per_token": 1e-6, "output_cost_per_token": 1e-6}})  # fmt: skip
        out = df.prompt.run("a", prompt="{{q}} x{{n}}", model="echo", progress=False)
        sent = sorted(b["messages"][0]["content"] for b in srv.bodies)
    assert sent == ["    x6.0", "hello x1.0"]  # whitespace around a value is still a prompt
    assert out["a__status"].tolist() == ["ok", "skipped", "skipped", "skipped", "skipped", "ok", "skipped"]
    errors = out["a__error"]
    assert "'q' (nan)" in errors["r1"] and "row r1" in errors["r1"]
    assert "'q' (None)" in errors["r2"] and "'q' (<NA>)" in errors["r3"] and "'q' (NaT)" in errors["r4"]
    assert "'n' (nan)" in errors["r6"] and "on_missing='empty'" in errors["r6"]
    assert all("nan" not in str(v) and "None" not in str(v) for v in out["a"].dropna())
    info = out.attrs["nbplayground"]
    assert (info["ok"], info["skipped"], info["failed"], info["not_run"]) == (2, 5, 0, 0)
    assert "5 skipped" in info["summary"]
    runs = nbp.sql("select row_key, status from runs order by row_key")
    assert runs["row_key"].tolist() == ["r0", "r5"]  # nothing stored, nothing charged for skipped rows
    assert info["cost_usd"] == pytest.approx(float(nbp.sql("select sum(cost_usd) as c from runs")["c"][0]))


def test_an_empty_prompt_is_skipped():
    df = pd.DataFrame({"q": ["hi", "", "  \n", "ok"]})
    out = df.prompt.run("a", prompt="{{q}}", system="Be brief.", model="mock/echo", progress=False)
    assert out["a__status"].tolist() == ["ok", "skipped", "skipped", "ok"]
    assert out["a__error"][1].startswith("the prompt is empty at row 1")
    assert len(nbp.history()) == 2
    est = df.prompt.estimate("a", prompt="{{q}}", system="Be brief.", model="mock/echo")
    assert est.calls == 0 and est.already_done == 2  # the two ok rows are done, empty ones are never calls
    assert est.skipped == 2 and "2 already done, 2 skipped" in str(est)
    gappy = _gappy().prompt.estimate("a", prompt="{{q}} x{{n}}", model="mock/echo")
    assert (gappy.calls, gappy.skipped) == (2, 5)
    speech = df.prompt.run("s", kind="speech", input="{{q}}", model="mock/tts", progress=False)
    assert speech["s__status"].tolist() == ["ok", "skipped", "skipped", "ok"]


def test_a_json_null_under_a_dot_path_is_missing_too():
    df = pd.DataFrame({"cfg": ['{"lang": "en"}', '{"lang": null}', np.nan]})
    out = df.prompt.run("a", prompt="in {{cfg.lang}}", model="mock/echo", progress=False)
    assert out["a"].tolist()[0] == "in en"
    assert out["a__status"].tolist() == ["ok", "skipped", "skipped"]
    assert "'cfg.lang' (None)" in out["a__error"][1] and "'cfg' (nan)" in out["a__error"][2]
    empty = df.prompt.run(
        "a", prompt="in {{cfg.lang}}", model="mock/echo", on_missing="empty", progress=False
    )
    assert empty["a"].tolist() == ["in en", "in ", "in "]


def test_on_missing_empty_sends_blank_values_and_error_refuses_before_any_call():
    df = _gappy()
    with OpenAIServer(echo=True) as srv:
        nbp.configure(models={"echo": {"model": "openai/echo", "api_base": srv.url}})
        with pytest.raises(E.BadParameterError) as info:
            df.prompt.run("a", prompt="Q: {{q}} {{n}}", model="echo", on_missing="error", progress=False)
        message = str(info.value)
        assert "\n" not in message and "'q' at row r1 (nan)" in message and "'q' at row r2 (None)" in message
        assert "5 cells in 5 rows" in message and "on_missing='empty'" in message
        assert srv.bodies == [] and len(nbp.history()) == 0
        out = df.prompt.run("a", prompt="Q: {{q}} {{n}}", model="echo", on_missing="empty", progress=False)
        sent = [b["messages"][0]["content"] for b in srv.bodies]
    assert sorted(sent) == sorted(
        ["Q: hello 1.0", "Q:  2.0", "Q:  3.0", "Q:  4.0", "Q:  5.0", "Q:     6.0", "Q: bye "]
    )
    assert "a__status" not in out.columns and out.attrs["nbplayground"]["skipped"] == 0
    with pytest.raises(E.BadParameterError, match="on_missing must be one of 'skip', 'empty', 'error'"):
        df.prompt.run("a", prompt="{{q}}", model="echo", on_missing="drop")


def test_skipped_rows_are_looked_at_again_on_the_next_run():
    df = _gappy()
    with OpenAIServer(echo=True) as srv:
        nbp.configure(models={"echo": {"model": "openai/echo", "api_base": srv.url}})
        first = df.prompt.run("a", prompt="Q: {{q}}", model="echo", progress=False)
        assert len(srv.bodies) == 3 and first.attrs["nbplayground"]["skipped"] == 4
        same = df.prompt.run("a", prompt="Q: {{q}}", model="echo", progress=False)
        assert len(srv.bodies) == 3  # done rows come from the store; skipped rows are skipped again, no call
        assert same["a__status"].tolist() == first["a__status"].tolist()
        assert same.attrs["nbplayground"]["resumed"] == 3 and same.attrs["nbplayground"]["skipped"] == 4
        blank = df.prompt.run("a", prompt="Q: {{q}}", model="echo", on_missing="empty", progress=False)
        assert len(srv.bodies) == 7  # only the rows skipped before, now sent with ''
        assert blank.attrs["nbplayground"]["resumed"] == 3 and blank["a"].notna().all()
        # and back: rows done with '' are not taken as done when missing values are to be skipped
        back = df.prompt.run("a", prompt="Q: {{q}}", model="echo", progress=False)
        assert len(srv.bodies) == 7 and back["a__status"].tolist() == first["a__status"].tolist()


# --- row keys ------------------------------------------------------------------------------------------


def test_row_keys_are_unique_whatever_the_index_holds():
    labels = [1, "1", 1, np.nan, np.nan, "1#0", ("t", 2)]
    df = pd.DataFrame({"q": [f"q{i}" for i in range(7)]}, index=pd.Index(labels, dtype=object))
    out = df.prompt.run("a", prompt="{{q}}", model="mock/echo", progress=False)
    assert out["a"].tolist() == [f"q{i}" for i in range(7)] and "a__status" not in out.columns
    assert list(out.index[:3]) == [1, "1", 1]
    keys = nbp.sql("select row_key from runs")["row_key"]
    assert keys.nunique() == 7
    again = df.prompt.run("a", prompt="{{q}}", model="mock/echo", progress=False)
    assert again.attrs["nbplayground"]["resumed"] == 7 and again["a"].tolist() == out["a"].tolist()

    multi = pd.DataFrame(
        {"q": ["x", "y", "z"]}, index=pd.MultiIndex.from_tuples([(1, "a"), (1, "b"), (1, "a")])
    )
    wide = multi.prompt.run("a", prompt="{{q}}", model="mock/echo", progress=False, details=True)
    assert wide["a"].tolist() == ["x", "y", "z"] and wide["a__status"].tolist() == ["ok"] * 3
    assert wide["a__run_id"].nunique() == 3


# --- one missing marker --------------------------------------------------------------------------------


class Card(BaseModel):
    title: str
    score: int
    tags: list[str]


def test_failed_and_not_run_rows_use_one_missing_marker():
    df = pd.DataFrame(
        {"cfg": ['{"lang": "en"}', '{"nolang": 1}', None, '{"lang": "de"}'] + ['{"lang": "x"}'] * 4}
    )
    per_row = 1e-6 * 3 + 2e-6 * 5
    out = df.prompt.run("a", prompt="in {{cfg.lang}}", model="mock/lorem", params={"max_tokens": 5},
                        max_cost=per_row * 2.5, concurrency=1, details=True, progress=False)  # fmt: skip
    statuses = out["a__status"].tolist()
    assert statuses[:3] == ["ok", "error", "skipped"] and "not run" in statuses
    expected = {"a": "string", "a__status": "string", "a__error": "string", "a__tokens_in": "Int64",
                "a__tokens_out": "Int64", "a__cost_usd": "Float64", "a__latency_ms": "Float64",
                "a__run_id": "string"}  # fmt: skip
    assert {c: str(out[c].dtype) for c in expected} == expected
    for c in set(expected) - {"a__status"}:
        gaps = [v for v in out[c] if pd.isna(v)]
        assert gaps and all(v is pd.NA for v in gaps), (c, gaps)  # never None or NaN beside <NA>

    dicts = df.prompt.run(
        "c", prompt="in {{cfg.lang}}", model="mock/json", response_format=Card, progress=False
    )
    assert str(dicts["c"].dtype) == "object" and dicts["c"][1] is pd.NA and dicts["c"][2] is pd.NA
    wide = df.prompt.run("c", prompt="in {{cfg.lang}}", model="mock/json", response_format=Card, expand=True,
                         progress=False)  # fmt: skip
    assert [str(wide[f"c.{f}"].dtype) for f in ("title", "score", "tags")] == ["string", "Int64", "object"]
    for f in ("title", "score", "tags"):
        assert wide[f"c.{f}"][1] is pd.NA and wide[f"c.{f}"][2] is pd.NA
    assert isinstance(wide["c.tags"][0], list)
    imgs = df.prompt.run("i", kind="image", prompt="{{cfg.lang}}", model="mock/image", progress=False)
    assert imgs["i"][1] is pd.NA and isinstance(imgs["i"][0], Media)


def test_a_result_without_its_row_key_is_stored_not_lost(frame, monkeypatch):
    # on_result looked rows up with position[r.row_key]: a result whose key was lost raised KeyError inside
    # the engine's storage hook (a warning, and the run never reached the history)
    from nbplayground.core import engine

    execute = engine.Runner.execute

    async def without_key(self, req):
        if req.row_key == "20":
            req.row_key = None
        return await execute(self, req)

    monkeypatch.setattr(engine.Runner, "execute", without_key)
    out = nbp.run_prompt(frame, "a", prompt="Q: {{question}}", model="mock/echo", progress=False)
    assert out["a"].tolist()[0] == "Q: why?" and pd.isna(out["a"].tolist()[1])
    info = out.attrs["nbplayground"]
    assert info["ok"] == 2 and info["not_run"] == 1
    stored = nbp.history(limit=20)
    assert "Q: how?" in stored["text"].tolist()
