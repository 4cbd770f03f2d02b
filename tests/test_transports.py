"""The transport interface: plugins, imports off the engine's loop, timings, and what every transport shares."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import nbplayground as nbp
from nbplayground.core import transports
from nbplayground.core.transports import http as H
from support.oai_server import Behaviour, OpenAIServer

TESTS = Path(__file__).resolve().parent


def _python(code: str, env: dict[str, str], timeout: float = 180) -> dict:
    """Run ``code`` in a fresh interpreter (nothing imported yet); it prints one JSON line last."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]), **env},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


PLUGIN = '''
from nbplayground.core.transports import Capabilities
from nbplayground.core.types import ProviderChunk, Usage


class Echo:
    name = "shout"
    capabilities = Capabilities(tools=False, structured_output=False)
    providers = frozenset({"shout"})

    async def stream(self, call):
        text = call.messages[-1]["content"].upper()
        for word in text.split():
            yield ProviderChunk(text=word + " ")
        yield ProviderChunk(usage=Usage(1, len(text.split())), finish_reason="stop")

    async def generate(self, call):
        raise NotImplementedError


def transport():
    return Echo()
'''


def test_a_plugin_adds_a_provider_through_its_entry_point(tmp_path, nbp_home):
    site = tmp_path / "site"
    (site / "nbp_shout-0.1.dist-info").mkdir(parents=True)
    (site / "nbp_shout.py").write_text(PLUGIN)
    (site / "nbp_shout-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: nbp-shout\nVersion: 0.1\n")
    (site / "nbp_shout-0.1.dist-info" / "entry_points.txt").write_text(
        "[nbplayground.transports]\nshout = nbp_shout:transport\n"
    )
    out = _python(
        """
        import json, nbplayground as nbp
        from nbplayground.core import transports
        r = nbp.run("hello plugin world", model="shout/any")
        print(json.dumps({"names": transports.names(), "status": r.status, "text": r.text,
                          "provider": r.provider, "stored": len(nbp.history())}))
        """,
        {"PYTHONPATH": str(site), "NBPLAYGROUND_HOME": str(nbp_home)},
    )
    assert "shout" in out["names"] and {"native", "litellm", "mock"} <= set(out["names"])
    assert out["status"] == "ok" and out["text"] == "HELLO PLUGIN WORLD " and out["provider"] == "shout"
    assert out["stored"] == 1


def test_register_rejects_what_is_not_a_transport():
    with pytest.raises(TypeError, match="not a transport"):
        transports.register(object())  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="no transport named 'nope'"):
        transports.get("nope")


def test_the_first_litellm_import_does_not_freeze_a_native_stream(nbp_home):
    """litellm's import takes seconds: it runs in a thread, so a stream in flight keeps flowing.

    On the loop the import froze a stream for ~3.7 s every time; in a thread the worst gap is what pydantic
    holds the GIL for (~125-175 ms). A loaded machine can stretch one measurement past 200 ms, so the best
    of two fresh interpreters is judged: a design regression fails both by seconds.
    """
    outs = [_gap_run(nbp_home)]
    if outs[0]["max_gap"] >= 0.2:
        outs.append(_gap_run(nbp_home))
    out = min(outs, key=lambda o: o["max_gap"])
    assert out["status"] == "ok" and out["n"] == 400 and out["litellm"] and out["other"]["status"] == "ok"
    assert out["max_gap"] < 0.2, f"the native stream stalled {out['max_gap'] * 1000:.0f} ms"
    # the litellm run's own first token is timed from its request, not from its imports
    assert out["other"]["ttft"] < 200


def _gap_run(nbp_home) -> dict:
    # The model server runs in its own process, as a provider would: in the measured process its thread
    # would compete for the GIL and its own stalls would count against the stream.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, str(TESTS / "support" / "oai_server.py"), "--port", str(port), "--tokens", "400",
         "--delay", "0.005"], stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = server.stdout.readline().strip() if server.stdout else ""
        return _python(
            f"""
            import json, sys, threading, time
            import nbplayground as nbp
            url = {url!r}
            nbp.configure(models={{"nat": {{"model": "openai/m", "api_base": url}},
                                  "lit": {{"model": "openai/m", "api_base": url, "transport": "litellm"}}}})
            h = nbp.stream("go", model="nat", history=False)
            arrivals, other = [], {{}}
            def second():
                time.sleep(0.2)
                r = nbp.run("x", model="lit", history=False)
                other.update(status=r.status, ttft=r.ttft_ms, end=time.perf_counter())
            t = threading.Thread(target=second)
            t.start()
            for ev in h:
                if ev.type == "delta":
                    arrivals.append(time.perf_counter())
            t.join()
            r = h.result()
            gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
            print(json.dumps({{"status": r.status, "n": len(arrivals), "max_gap": max(gaps),
                              "litellm": "litellm" in sys.modules, "other": other}}))
            """,
            {"NBPLAYGROUND_HOME": str(nbp_home)},
        )
    finally:
        server.kill()
        server.wait(10)


@pytest.mark.parametrize("transport", ["native", "litellm"])
def test_the_first_run_of_a_process_times_the_provider_not_the_imports(transport, nbp_home):
    out = _python(
        f"""
        import json
        from support.oai_server import OpenAIServer
        import nbplayground as nbp
        with OpenAIServer(tokens=3, delay=0.0) as srv:
            nbp.configure(models={{"m": {{"model": "openai/m", "api_base": srv.url, "transport": "{transport}"}}}})
            r = nbp.run("hi", model="m", history=False)
            print(json.dumps({{"status": r.status, "ttft": r.ttft_ms, "latency": r.latency_ms}}))
        """,
        {"NBPLAYGROUND_HOME": str(nbp_home)},
    )
    assert out["status"] == "ok"
    assert out["ttft"] < 200 and out["latency"] < 400, out


def test_long_validation_errors_keep_the_line_that_matters():
    body = "\n".join(
        ["1 validation error for ChatCompletionRequest"]
        + [f"  context line {i}: nothing to see here, just a long pydantic preamble" for i in range(20)]
        + ["messages.2.content", "  Input should be a valid string [type=string_type, input_value=None]"]
    )
    short = H.shorten(body)
    assert len(short) <= H.MAX_MESSAGE
    assert "messages.2.content" in short and "Input should be a valid string" in short
    assert H.error_message(json.dumps({"error": {"message": body}})) == short
    assert H.error_message(json.dumps({"detail": [{"loc": ["body", "messages", 2], "msg": "bad"}]})) == "body.messages.2: bad"


def test_usage_is_counted_here_when_a_server_omits_it_and_marked_estimated(nbp_home):
    with OpenAIServer(tokens=6) as srv:
        srv.script = [Behaviour(text="one two three four")]
        srv.no_usage = True
        nbp.configure(models={"local": {"model": "openai/m", "api_base": srv.url, "input_cost_per_token": 1e-6,
                                        "output_cost_per_token": 2e-6}})  # fmt: skip
        r = nbp.run("count me please", model="local")
    assert r.status == "ok" and r.text == "one two three four"
    assert r.tokens_estimated and r.tokens_out == 4 and 5 <= r.tokens_in <= 20
    assert r.cost_usd == pytest.approx(r.tokens_in * 1e-6 + r.tokens_out * 2e-6)
    stored = nbp.get_run(r.id)
    assert stored is not None and stored.tokens_estimated and stored.tokens_out == 4
    assert "~" in r._repr_html_()  # the footer says the count is ours


def test_errors_from_a_configured_endpoint_name_it_and_say_what_to_check(nbp_home):
    with OpenAIServer(tokens=3, root="/v1/") as srv:
        base = srv.url.removesuffix("/v1")
        nbp.configure(models={"local": {"model": "openai/my-model", "api_base": base}})  # forgot /v1
        r = nbp.run("hi", model="local")
        assert r.status == "error" and r.error_status == 404 and r.attempts == 1
        assert f"my-model at {base}" in r.error and "api_base" in r.error and "/v1" in r.error
        assert "openai failed" not in r.error and "nbp.configure" not in r.error and "Did you mean" not in r.error
        srv.script = [Behaviour(status=404, error_message="The model `my-model` does not exist")]
        nbp.configure(models={"local": {"model": "openai/my-model", "api_base": srv.url}})
        r = nbp.run("hi", model="local")
        assert r.error_type == "UnknownModelError" and "my-model" in r.error and "/models" in r.error
        assert "Did you mean" not in r.error and "nbp.configure" not in r.error
        srv.script = [Behaviour(status=503)] * 4
        r = nbp.run("hi", model="local")
        assert r.error_type == "ServerError" and r.error.startswith(f"my-model at {base}") and "openai" not in r.error


def test_a_schema_failure_on_a_complete_answer_does_not_claim_partial_text(nbp_home):
    r = nbp.run("not json at all", model="mock/echo", response_format={"type": "object", "required": ["a"]})
    assert r.status == "error" and r.error_type == "StructuredOutputError"
    assert "partial" not in r.error and r.text == "not json at all"


@pytest.mark.parametrize(
    ("api_base", "says"),
    [("htp://127.0.0.1:9/v1", "not a valid http(s) URL"), ("http://nbp-no-such-host.invalid/v1", "DNS")],
)
@pytest.mark.parametrize("transport", ["native", "litellm"])
def test_requests_that_never_reach_a_server_are_one_line_and_not_retried(api_base, says, transport):
    nbp.configure(models={"nowhere": {"model": "openai/m", "api_base": api_base, "transport": transport}})
    r = nbp.run("hi", model="nowhere", history=False)
    assert r.status == "error" and r.attempts == 1, r.error
    assert r.error_type in ("UnreachableError", "BadParameterError") and says in r.error and "\n" not in r.error


def test_a_missing_package_is_a_setup_error_naming_what_to_install():
    from nbplayground.core.errormap import from_litellm
    from nbplayground.core.types import ProviderCall

    call = ProviderCall(model="gemini-pro", provider="vertex_ai", messages=[])
    try:
        try:
            import google_auth_missing_for_the_test  # noqa: F401
        except ImportError as inner:
            inner.name = "google.auth"
            raise RuntimeError("litellm.APIConnectionError: No module named 'google.auth'\nTraceback ...") from inner
    except RuntimeError as exc:
        err = from_litellm(exc, call)
    assert type(err).__name__ == "SetupError" and not err.retryable
    assert "pip install google-auth" in str(err) and "Traceback" not in str(err)


def test_a_keyless_local_endpoint_through_litellm_needs_no_key(nbp_home, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with OpenAIServer(tokens=3) as srv:
        nbp.configure(models={"local": {"model": "openai/m", "api_base": srv.url, "transport": "litellm"}})
        r = nbp.run("hi", model="local", history=False)
    assert r.status == "ok", r.error
    assert srv.headers[-1].get("authorization") in (None, "Bearer no-key")


def test_total_timeout_bounds_a_slow_but_steady_stream(nbp_home):
    with OpenAIServer(tokens=200, delay=0.02) as srv:  # 4 s of steady progress
        nbp.configure(models={"slow": {"model": "openai/m", "api_base": srv.url}})
        r = nbp.run("hi", model="slow", params={"timeout": 1.0, "total_timeout": 1.0}, history=False)
    assert r.status == "error" and r.error_type == "ProviderTimeoutError" and "total_timeout" in r.error
    assert r.text and r.latency_ms < 3000 and r.attempts == 1
