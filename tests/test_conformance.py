"""Every provider, the same guarantees: one table of outcomes, asserted on every wire format.

Each target is a model configured the way a user would (``nbp.configure(models=...)``) against a small
real server on 127.0.0.1 speaking that provider's wire format (``tests/support/fakes``): OpenAI chat
(native, and through litellm), Anthropic Messages, Gemini, Azure OpenAI, Ollama chat, Cohere v2 and
Bedrock Converse. The same answer, tool round trip, structured output and fault must end the same way
everywhere: status, error type, retries, partial text kept, and the row in the history.
"""

from __future__ import annotations

import pandas as pd
import pytest

import nbplayground as nbp
from nbplayground.core import retry
from nbplayground.storage import history
from support.fakes import Reply, WireFake

#: target -> (wire, transport)
TARGETS = {
    "openai": ("openai", "native"),
    "openai-litellm": ("openai", "litellm"),
    "anthropic": ("anthropic", "auto"),  # native_anthropic
    "anthropic-litellm": ("anthropic", "litellm"),
    "gemini": ("gemini", "auto"),  # native_gemini
    "gemini-litellm": ("gemini", "litellm"),
    "azure": ("azure", "auto"),
    "ollama": ("ollama", "auto"),
    "cohere": ("cohere", "auto"),
    "bedrock": ("bedrock", "auto"),
}
ALL = list(TARGETS)
#: litellm sends no tool_choice / response_format for these providers (dropped), so there is nothing to force
NO_FORCED_TOOL = {"ollama", "cohere"}
NO_STRUCTURED = {"cohere"}
WEATHER_CALLS: list[str] = []


def get_weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: the city's name
    """
    WEATHER_CALLS.append(city)
    return f"sunny in {city}"


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(retry, "BACKOFF_BASE", 0.02)
    WEATHER_CALLS.clear()


@pytest.fixture(params=ALL)
def target(request, monkeypatch):
    """A configured model ``t`` talking to a fake of the target's wire format."""
    wire, transport = TARGETS[request.param]
    with WireFake(wire) as fake:
        spec = fake.spec
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK"):
            monkeypatch.delenv(name, raising=False)
        for name, value in spec.env.items():
            monkeypatch.setenv(name, value)
        key_env = next((k for k in spec.env if k.endswith(("_API_KEY", "_KEY")) and not k.startswith("AWS")), None)
        model: dict = {"model": spec.model, "api_base": spec.api_base, "transport": transport}
        if key_env:
            model["api_key_env"] = key_env
        if "api_version" in spec.extra:
            model["params"] = {"api_version": spec.extra["api_version"]}
        nbp.configure(models={"t": model})
        fake.target = request.param  # type: ignore[attr-defined]
        yield fake


def stored(r):
    history.flush()
    row = nbp.get_run(r.id)
    assert row is not None, "every returned run is in the history"
    return row


# -- answers ------------------------------------------------------------------------------------------
def test_a_streamed_answer(target):
    target.script(Reply(text="The quick brown fox jumps."))
    h = nbp.stream("Say something", model="t")
    deltas = [e.text for e in h if e.type == "delta"]
    r = h.result()
    assert r.status == "ok", r.error
    assert r.text == "The quick brown fox jumps." == "".join(deltas) and len(deltas) >= 2
    sent_in, sent_out = target.requests[-1].usage
    assert r.finish_reason and r.tokens_in == sent_in and not r.tokens_estimated
    if target.target == "cohere":  # litellm recounts Cohere's streamed output tokens itself (tiktoken)
        assert abs(r.tokens_out - sent_out) <= 2
    else:
        assert r.tokens_out == sent_out
    assert r.attempts == 1 and r.ttft_ms is not None and 0 < r.ttft_ms <= r.latency_ms
    assert stored(r).status == "ok" and stored(r).text == r.text
    assert target.requests[-1].stream


def test_whole_answers_for_a_batch(target):
    target.script(Reply(text="A whole answer."))
    df = pd.DataFrame({"q": ["one", "two"]})
    out = df.prompt.run("a", prompt="{{q}}", model="t", progress=False)
    assert out["a"].tolist() == ["A whole answer.", "A whole answer."]
    assert out.attrs["nbplayground"]["ok"] == 2
    assert not any(r.stream for r in target.requests)  # nobody watches a batch's tokens


def test_a_tool_round_trip(target):
    target.script(Reply(tool_call=("get_weather", {"city": "Paris"})), Reply(text="unused: the tool result decides"))
    r = nbp.run("Weather in Paris?", model="t", tools=[get_weather])
    assert r.status == "ok", r.error
    assert WEATHER_CALLS == ["Paris"]
    assert [tc.name for tc in r.tool_calls] == ["get_weather"] and r.tool_calls[0].result == "sunny in Paris"
    assert r.text == "Tool said: sunny in Paris"
    assert len(target.requests) == 2


def test_a_forced_tool_is_called_once_then_the_model_answers(target):
    if target.target in NO_FORCED_TOOL:
        pytest.skip("litellm sends no tool_choice to this provider")
    r = nbp.run("Weather?", model="t", tools=[get_weather], params={"tool_choice": "required"})
    assert r.status == "ok", r.error
    assert len(WEATHER_CALLS) == 1 and len(target.requests) == 2  # forced on the first round only
    assert r.text.startswith("Tool said: sunny in")


def test_structured_output(target):
    if target.target in NO_STRUCTURED:
        pytest.skip("litellm drops response_format for this provider")
    schema = {"type": "object", "properties": {"n": {"type": "integer"}, "label": {"type": "string"}},
              "required": ["n", "label"], "additionalProperties": False}  # fmt: skip
    target.script(Reply(json={"n": 7, "label": "seven"}))
    r = nbp.run("Give me a number", model="t", response_format=schema)
    assert r.status == "ok", r.error
    assert r.data == {"n": 7, "label": "seven"}


def test_reasoning_is_kept_apart_from_the_answer(target):
    if target.target in ("cohere", "azure", "bedrock"):
        pytest.skip("no reasoning on this wire's fake")
    target.script(Reply(text="Forty-two.", reasoning="Six times seven is forty-two."))
    r = nbp.run("Think first", model="t")
    assert r.status == "ok", r.error
    assert r.text == "Forty-two." and r.reasoning == "Six times seven is forty-two."
    assert stored(r).reasoning == r.reasoning


# -- faults -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [429, 503])
def test_a_retryable_status_is_retried_honouring_retry_after(target, status):
    target.script(Reply(fault="status", status=status, retry_after=0.3), Reply(text="Second time lucky."))
    h = nbp.stream("hi", model="t")
    events = list(h)
    r = h.result()
    assert r.status == "ok", r.error
    assert r.text == "Second time lucky." and r.attempts == 2
    retry = next(e for e in events if e.type == "retry")
    assert retry.attempt == 2 and retry.reason in ("RateLimitError", "ServerError") and retry.wait >= 0.3
    gap = target.requests[1].time - target.requests[0].time
    assert gap >= 0.28, f"Retry-After 0.3 s not honoured ({gap:.3f} s)"
    assert stored(r).attempts == 2


def test_a_client_error_is_not_retried_and_keeps_the_providers_message(target):
    target.script(Reply(fault="status", status=400, error_message="temperature is out of range for this model"))
    r = nbp.run("hi", model="t")
    assert r.status == "error" and r.error_type == "BadParameterError" and r.error_status == 400
    assert "temperature is out of range" in r.error and r.attempts == 1 and len(target.requests) == 1
    assert stored(r).error_type == "BadParameterError"


@pytest.mark.parametrize("fault", ["html_page", "malformed_body"])
def test_an_unreadable_answer_is_an_error_not_an_empty_success(target, fault):
    target.script(Reply(fault=fault))
    r = nbp.run("hi", model="t")
    assert r.status == "error", f"{fault} came back ok with text {r.text!r}"
    assert r.error_type in ("EmptyAnswerError", "StreamError"), r.error
    assert r.attempts == 1 and stored(r).status == "error"
    assert "<" not in (r.error or "")  # the body's bytes are not the message


def test_a_json_error_body_to_a_streaming_request_is_reported_with_its_message(target):
    target.script(Reply(fault="json_error_stream", status=400, error_message="max_tokens is too large: 99999999"))
    r = nbp.run("hi", model="t")
    assert r.status == "error" and r.error_type == "BadParameterError", r.error
    assert "max_tokens is too large" in r.error and r.attempts == 1
    assert stored(r).error_status == 400


def test_a_disconnect_mid_answer_keeps_the_partial_text(target):
    target.script(Reply(text="alpha beta gamma delta epsilon zeta", fault="disconnect", cut_after=2))
    r = nbp.run("hi", model="t")
    assert r.status == "error" and r.error_type in ("ConnectionLostError", "StreamError"), r.error
    assert r.text.strip() == "alpha beta" and "incomplete" in r.error
    assert r.attempts == 1  # output was shown: not retried unless asked
    assert stored(r).text == r.text


def test_keepalives_after_some_text_end_in_a_timeout_not_a_hang(target):
    target.script(Reply(text="alpha beta gamma delta", fault="keepalive_stall", cut_after=2))
    r = nbp.run("hi", model="t", params={"timeout": 1.0})
    assert r.status == "error" and r.error_type == "ProviderTimeoutError", r.error
    assert r.text.strip() == "alpha beta" and "stalled" in r.error and r.attempts == 1
    assert r.latency_ms < 8000
    assert stored(r).error_type == "ProviderTimeoutError" and stored(r).text == r.text


def test_a_stall_before_the_first_byte_is_retried_once(target):
    target.script(Reply(fault="stall_first_byte"))
    r = nbp.run("hi", model="t", params={"timeout": 1.0})
    assert r.status == "error" and r.error_type == "ProviderTimeoutError", r.error
    assert r.attempts == 2 and len(target.requests) == 2
    assert r.latency_ms < 10_000
    assert stored(r).status == "error" and stored(r).attempts == 2


# -- a local server's quirks (llama-cpp-python) ------------------------------------------------------
@pytest.fixture
def local(monkeypatch):
    """A llama-cpp-python-like server: content null rejected, json_object+schema only, no stream usage."""
    with WireFake("openai", quirks=frozenset({"null_content_rejected", "json_object_schema_only",
                                              "no_stream_usage"})) as fake:  # fmt: skip
        nbp.configure(models={"local": {"model": "openai/local-model", "api_base": fake.spec.api_base,
                                        "input_cost_per_token": 0, "output_cost_per_token": 0}})  # fmt: skip
        yield fake


def test_local_server_tool_round_trip_sends_empty_content_not_null(local):
    local.script(Reply(tool_call=("get_weather", {"city": "Oslo"})), Reply())
    r = nbp.run("Weather in Oslo?", model="local", tools=[get_weather])
    assert r.status == "ok", r.error
    assert r.text == "Tool said: sunny in Oslo" and WEATHER_CALLS == ["Oslo"]
    turn = local.requests[1].body["messages"][-2]
    assert turn["role"] == "assistant" and turn["content"] == "" and turn["tool_calls"]
    # no usage in the stream: counted here, and said so
    assert r.tokens_estimated and r.tokens_in > 0 and r.tokens_out > 0 and r.cost_usd == 0


def test_local_server_takes_json_object_with_a_schema_as_given(local):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    local.script(Reply(json={"city": "Oslo"}))
    r = nbp.run("Where?", model="local", response_format={"type": "json_object", "schema": schema})
    assert r.status == "ok", r.error
    assert r.data == {"city": "Oslo"}
    assert local.requests[-1].body["response_format"] == {"type": "json_object", "schema": schema}


def test_local_server_validation_error_keeps_the_line_that_matters(local):
    history_with_null = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]  # fmt: skip
    nbp.configure(models={"local-litellm": {"model": "openai/local-model", "api_base": local.spec.api_base,
                                            "transport": "litellm"}})  # fmt: skip
    r = nbp.run(messages=history_with_null, model="local-litellm", params={"max_tokens": 5})
    if r.status == "ok":  # litellm sent "" itself: nothing to report
        assert r.text.startswith("Tool said")
        return
    relevant = "messages.1.ChatCompletionRequestAssistantMessage.content: Input should be a valid string"
    assert relevant in r.error, r.error
    assert "literal_error" not in r.error and "For further information" not in r.error and len(r.error) < 800


def test_a_stream_ended_by_done_without_a_finish_is_incomplete(monkeypatch):
    """llama-cpp-python's interrupt_requests ends a concurrent stream with [DONE] and no finish reason."""
    with WireFake("openai", Reply(text="one two three"), quirks=frozenset({"done_without_finish"})) as fake:
        nbp.configure(models={"local": {"model": "openai/local-model", "api_base": fake.spec.api_base}})
        r = nbp.run("hi", model="local")
    assert r.status == "error" and r.error_type == "StreamError" and "incomplete" in r.error
    assert r.text == "one two three"  # what came is kept


def test_geminis_wait_in_the_error_body_is_honoured_without_a_retry_after_header(monkeypatch):
    with WireFake("gemini", Reply(fault="status", status=429, retry_after=0.4, retry_after_header=False),
                  Reply(text="ok now")) as fake:  # fmt: skip
        for name, value in fake.spec.env.items():
            monkeypatch.setenv(name, value)
        nbp.configure(models={"g": {"model": fake.spec.model, "api_base": fake.spec.api_base,
                                    "api_key_env": "GEMINI_API_KEY"}})  # fmt: skip
        r = nbp.run("hi", model="g")
        assert r.status == "ok" and r.attempts == 2, r.error
        assert fake.requests[1].time - fake.requests[0].time >= 0.38
