"""The native Gemini transport against the Gemini fake (a real HTTP server on 127.0.0.1).

What is asserted: answers streamed and whole with the provider's usage, tool round trips (functionCall /
functionResponse), a forced tool, structured output, thought parts as reasoning, the request's shape
(key in a header, roles, systemInstruction, generationConfig) and every fault the conformance fakes inject.
"""

from __future__ import annotations

import socket

import pandas as pd
import pytest

import nbplayground as nbp
from nbplayground.core import errors as E
from nbplayground.core import retry
from nbplayground.core.transports import native_gemini as G
from nbplayground.core.types import ProviderCall
from nbplayground.storage import history
from support.fakes import Reply, WireFake

WEATHER_CALLS: list[str] = []
SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}, "label": {"type": "string"}},
          "required": ["n", "label"], "additionalProperties": False}  # fmt: skip


def get_weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: the city's name
    """
    WEATHER_CALLS.append(city)
    return f"sunny in {city}"


def get_time(zone: str) -> str:
    """The time in a zone."""
    return "noon"


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(retry, "BACKOFF_BASE", 0.02)
    WEATHER_CALLS.clear()


@pytest.fixture
def fake(monkeypatch):
    """A model ``g`` on the native Gemini transport, talking to the Gemini fake."""
    with WireFake("gemini") as server:
        for name, value in server.spec.env.items():
            monkeypatch.setenv(name, value)
        nbp.configure(models={"g": {"model": "gemini/gemini-2.0-flash", "api_base": server.spec.api_base,
                                    "api_key_env": "GEMINI_API_KEY", "transport": "native_gemini"}})  # fmt: skip
        yield server


def call_for(messages, model="gemini-2.0-flash", **kw) -> ProviderCall:
    return ProviderCall(model=model, provider="gemini", messages=messages, **kw)


# -- answers ------------------------------------------------------------------------------------------
def test_a_streamed_answer_with_the_providers_usage(fake):
    fake.script(Reply(text="The quick brown fox jumps.", tokens_in=11))
    h = nbp.stream("Say something", model="g")
    deltas = [e.text for e in h if e.type == "delta"]
    r = h.result()
    assert r.status == "ok", r.error
    assert r.text == "The quick brown fox jumps." == "".join(deltas) and len(deltas) == 5
    assert r.finish_reason == "stop" and (r.tokens_in, r.tokens_out) == fake.requests[-1].usage == (11, 5)
    assert not r.tokens_estimated and r.provider == "gemini" and r.attempts == 1
    req = fake.requests[-1]
    assert req.path == "/models/gemini-2.0-flash:streamGenerateContent" and req.query == {"alt": "sse"}
    assert req.headers.get("x-goog-api-key") == "fake-gemini-key"  # the key in a header, never in the URL
    assert "key" not in req.query and "Authorization" not in req.headers


def test_whole_answers_for_a_batch(fake):
    fake.script(Reply(text="A whole answer.", tokens_in=4))
    out = pd.DataFrame({"q": ["one", "two"]}).prompt.run(
        "a", prompt="{{q}}", model="g", progress=False, details=True
    )
    assert out["a"].tolist() == ["A whole answer.", "A whole answer."]
    assert out["a__tokens_in"].tolist() == [4, 4] and out["a__tokens_out"].tolist() == [3, 3]
    assert [r.path for r in fake.requests] == ["/models/gemini-2.0-flash:generateContent"] * 2
    assert not any(r.stream for r in fake.requests)


def test_system_turns_and_sampling_parameters_reach_gemini_in_its_own_names(fake):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Again"}]  # fmt: skip
    params = {"temperature": 0.3, "top_p": 0.9, "top_k": 20, "max_tokens": 50, "stop": "END", "seed": 7,
              "presence_penalty": 0.1, "frequency_penalty": 0.2, "logit_bias": {"1": 1}, "user": "u1", "n": 1,
              "parallel_tool_calls": False, "extra_body": {"safetySettings": [{"category": "X"}],
                                                           "generationConfig": {"candidateCount": 1}}}  # fmt: skip
    r = nbp.run(messages=messages, model="g", params=params)
    assert r.status == "ok", r.error
    body = fake.requests[-1].body
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["contents"][1]["parts"] == [{"text": "Hello."}]
    assert body["generationConfig"] == {
        "temperature": 0.3, "topP": 0.9, "topK": 20, "maxOutputTokens": 50, "stopSequences": ["END"], "seed": 7,
        "presencePenalty": 0.1, "frequencyPenalty": 0.2, "candidateCount": 1,
    }  # fmt: skip
    assert body["safetySettings"] == [{"category": "X"}]  # extra_body as given
    assert not {"logit_bias", "user", "parallel_tool_calls", "n"} & set(body)


def test_more_than_one_candidate_is_refused_before_sending(fake):
    r = nbp.run("hi", model="g", params={"n": 2})
    assert r.status == "error" and r.error_type == "BadParameterError" and "n must be 1" in r.error
    assert fake.requests == []


# -- tools, structured output, reasoning ---------------------------------------------------------------
def test_a_tool_round_trip(fake):
    fake.script(Reply(tool_call=("get_weather", {"city": "Paris"})), Reply())
    r = nbp.run("Weather in Paris?", model="g", tools=[get_weather])
    assert r.status == "ok", r.error
    assert WEATHER_CALLS == ["Paris"] and r.text == "Tool said: sunny in Paris"
    (tc,) = r.tool_calls
    assert tc.name == "get_weather" and tc.arguments == '{"city": "Paris"}'
    first, second = (req.body for req in fake.requests)
    decl = first["tools"][0]["functionDeclarations"][0]
    assert decl["name"] == "get_weather" and decl["description"].startswith("The weather in a city")
    assert decl["parametersJsonSchema"]["properties"]["city"]["type"] == "string"  # JSON schema, as given
    assert [c["role"] for c in second["contents"]] == ["user", "model", "user"]
    call = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
    assert second["contents"][1]["parts"] == [call]
    assert second["contents"][2]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"result": "sunny in Paris"}}}
    ]


def test_a_named_tool_is_forced_on_the_first_round_only(fake):
    choice = {"type": "function", "function": {"name": "get_weather"}}
    r = nbp.run("Weather?", model="g", tools=[get_time, get_weather], params={"tool_choice": choice})
    assert r.status == "ok", r.error
    assert len(WEATHER_CALLS) == 1 and r.text.startswith("Tool said: sunny in")
    first, second = (req.body["toolConfig"]["functionCallingConfig"] for req in fake.requests)
    assert first == {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    assert second == {"mode": "AUTO"}


def test_required_and_none_tool_choices():
    tool = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]

    def body(choice):
        return G.build_body(
            call_for([{"role": "user", "content": "x"}], tools=tool, params={"tool_choice": choice})
        )

    for choice, mode in (("required", "ANY"), ("none", "NONE"), ("auto", "AUTO")):
        assert body(choice)["toolConfig"] == {"functionCallingConfig": {"mode": mode}}
    with pytest.raises(E.BadParameterError, match="tool_choice must be"):
        body("sometimes")


def test_structured_output(fake):
    fake.script(Reply(json={"n": 7, "label": "seven"}))
    r = nbp.run("Give me a number", model="g", response_format=SCHEMA)
    assert r.status == "ok", r.error
    assert r.data == {"n": 7, "label": "seven"}
    config = fake.requests[-1].body["generationConfig"]
    assert config == {"responseMimeType": "application/json", "responseJsonSchema": SCHEMA}


def test_openai_shaped_response_formats():
    def config(fmt):
        body = G.build_body(call_for([{"role": "user", "content": "x"}], response_format=fmt))
        return body.get("generationConfig")

    wrapped = {"type": "json_schema", "json_schema": {"name": "out", "schema": SCHEMA, "strict": True}}
    assert config(wrapped) == {"responseMimeType": "application/json", "responseJsonSchema": SCHEMA}
    assert config({"type": "json_object"}) == {"responseMimeType": "application/json"}
    assert config({"type": "text"}) is None


def test_thought_parts_are_reasoning_apart_from_the_answer(fake):
    fake.script(Reply(text="Forty-two.", reasoning="Six times seven is forty-two."))
    r = nbp.run("Think first", model="g", params={"reasoning_effort": "low"})
    assert r.status == "ok", r.error
    assert r.text == "Forty-two." and r.reasoning == "Six times seven is forty-two."
    thinking = fake.requests[-1].body["generationConfig"]["thinkingConfig"]
    assert thinking == {"thinkingBudget": 1024, "includeThoughts": True}


def test_thinking_parameters_by_model_generation():
    def thinking(params, model="gemini-2.5-flash"):
        return G.thinking_config(params, model)

    assert thinking({"reasoning_effort": "none"}) == {"thinkingBudget": 0, "includeThoughts": False}
    level = thinking({"reasoning_effort": "high"}, "gemini-3-pro-preview")
    assert level == {"thinkingLevel": "high", "includeThoughts": True}
    budget = thinking({"thinking": {"type": "enabled", "budget_tokens": 2000}})
    assert budget == {"includeThoughts": True, "thinkingBudget": 2000}
    assert thinking({"thinking": {"type": "disabled"}}) == {"includeThoughts": False, "thinkingBudget": 0}
    assert thinking({}) == {}
    native = thinking({"thinking": {"thinking_level": "low", "includeThoughts": True, "display": "x"}})
    assert native == {"thinkingLevel": "low", "includeThoughts": True}  # Gemini's own fields only
    with pytest.raises(E.BadParameterError, match="reasoning_effort must be one of"):
        thinking({"reasoning_effort": "extreme"})


# -- the request's shape ------------------------------------------------------------------------------
def test_tool_results_answer_their_call_by_name_and_share_one_user_turn():
    messages = [
        {"role": "user", "content": "Weather and time?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "a1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
            {"id": "a2", "type": "function", "function": {"name": "get_time", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "a2", "content": "noon"},
        {"role": "tool", "tool_call_id": "a1", "content": [{"type": "text", "text": "rain"}]},
    ]  # fmt: skip
    contents, system = G.wire_contents(messages)
    assert system == [] and [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[1]["parts"] == [
        {"text": "Checking."},
        {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
        {"functionCall": {"name": "get_time", "args": {}}},
    ]
    assert contents[2]["parts"] == [
        {"functionResponse": {"name": "get_time", "response": {"result": "noon"}}},
        {"functionResponse": {"name": "get_weather", "response": {"result": "rain"}}},
    ]
    with pytest.raises(E.BadParameterError, match="no earlier assistant turn"):
        G.wire_contents([{"role": "tool", "tool_call_id": "zz", "content": "x"}])


def test_images_as_data_uris_are_sent_inline():
    content = [{"type": "text", "text": "What is this?"},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]  # fmt: skip
    contents, _ = G.wire_contents([{"role": "user", "content": content}])
    assert contents[0]["parts"] == [
        {"text": "What is this?"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
    ]


def test_thought_signatures_travel_in_the_tool_call_id_and_go_back_to_gemini():
    reader = G._Reader(call_for([]))
    chunk = reader.chunk({"candidates": [{"content": {"parts": [
        {"functionCall": {"name": "f", "args": {"x": 1}}, "thoughtSignature": "c2lnbmF0dXJl"}]},
        "finishReason": "STOP"}]})  # fmt: skip
    assert chunk is not None and chunk.finish_reason == "tool_calls"
    (delta,) = chunk.tool_calls or []
    assert delta.id.endswith("__thought__c2lnbmF0dXJl") and delta.arguments == '{"x": 1}'
    fn = {"name": "f", "arguments": delta.arguments}
    turn = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": delta.id, "type": "function", "function": fn}],
    }
    answer = {"role": "tool", "tool_call_id": delta.id, "content": "ok"}
    old, _ = G.wire_contents([turn, answer])
    signed = {"functionCall": {"name": "f", "args": {"x": 1}}, "thoughtSignature": "c2lnbmF0dXJl"}
    assert old[0]["parts"][0] == signed
    assert old[1]["parts"][0]["functionResponse"] == {
        "name": "f",
        "response": {"result": "ok"},
    }  # no id before 3
    new, _ = G.wire_contents([turn, answer], gemini_3=True)
    clean = delta.id.split("__thought__")[0]
    assert new[0]["parts"][0]["functionCall"]["id"] == clean == new[1]["parts"][0]["functionResponse"]["id"]
    # a call from another model's history gets Google's documented stand-in on Gemini 3
    foreign = {
        **turn,
        "tool_calls": [{"id": "x1", "type": "function", "function": {**fn, "arguments": "{}"}}],
    }
    parts = G.wire_contents([foreign], gemini_3=True)[0][0]["parts"]
    assert parts[0]["thoughtSignature"] == G.DUMMY_SIGNATURE


def test_a_blocked_prompt_and_filtered_finishes_end_as_content_filter():
    reader = G._Reader(call_for([]))
    blocked = reader.chunk({"promptFeedback": {"blockReason": "SAFETY"},
                            "usageMetadata": {"promptTokenCount": 5}})  # fmt: skip
    assert blocked is not None and blocked.finish_reason == "content_filter" and blocked.usage.tokens_in == 5
    cut = reader.chunk({"candidates": [{"content": {"parts": [{"text": "a"}]}, "finishReason": "MAX_TOKENS"}],
                        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2, "thoughtsTokenCount": 3}})  # fmt: skip
    assert cut.finish_reason == "length" and (cut.usage.tokens_in, cut.usage.tokens_out) == (5, 5)


def test_a_safety_finish_without_text_is_reported_as_withheld(fake):
    fake.script(Reply(text="", finish="SAFETY"))
    r = nbp.run("hi", model="g")
    assert r.status == "error" and r.error_type == "EmptyAnswerError" and "withheld" in r.error, r.error
    assert r.finish_reason == "content_filter"


def test_an_error_object_inside_the_stream_is_mapped_like_its_status():
    reader = G._Reader(call_for([]))
    err = {"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED",
                     "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"}]}}  # fmt: skip
    with pytest.raises(E.RateLimitError, match="Resource has been exhausted") as info:
        reader.chunk(err)
    assert info.value.retry_after == 12.0


# -- faults -------------------------------------------------------------------------------------------
def test_a_429_is_retried_honouring_retry_after(fake):
    fake.script(Reply(fault="status", status=429, retry_after=0.3), Reply(text="Second time lucky."))
    r = nbp.run("hi", model="g")
    assert r.status == "ok", r.error
    assert r.text == "Second time lucky." and r.attempts == 2
    assert fake.requests[1].time - fake.requests[0].time >= 0.28


def test_a_400_is_not_retried_and_keeps_the_providers_message(fake):
    message = "Invalid value at 'generation_config.temperature'"
    fake.script(Reply(fault="status", status=400, error_message=message))
    r = nbp.run("hi", model="g")
    assert r.status == "error" and r.error_type == "BadParameterError" and r.error_status == 400
    assert message in r.error and len(fake.requests) == 1


@pytest.mark.parametrize("fault", ["html_page", "malformed_body"])
@pytest.mark.parametrize("stream", [True, False])
def test_an_unreadable_answer_is_an_error(fake, fault, stream):
    fake.script(Reply(fault=fault))
    if stream:
        r = nbp.run("hi", model="g")
    else:
        out = pd.DataFrame({"q": ["one"]}).prompt.run(
            "a", prompt="{{q}}", model="g", progress=False, details=True
        )
        history.flush()
        r = nbp.get_run(out["a__run_id"].iloc[0])
        assert not fake.requests[-1].stream
    assert r.status == "error" and r.error_type in ("EmptyAnswerError", "StreamError"), r.error
    assert "<" not in r.error and r.attempts == 1


@pytest.mark.parametrize("status", [200, 400])
def test_a_json_error_body_to_a_streaming_request_keeps_its_message(fake, status):
    fake.script(Reply(fault="json_error_stream", status=status, error_message="maxOutputTokens is too large"))
    r = nbp.run("hi", model="g")
    assert r.status == "error", r.error
    assert "maxOutputTokens is too large" in r.error and r.attempts == 1
    if status == 400:
        assert r.error_type == "BadParameterError"


def test_a_disconnect_mid_answer_keeps_the_partial_text(fake):
    fake.script(Reply(text="alpha beta gamma delta epsilon", fault="disconnect", cut_after=2))
    r = nbp.run("hi", model="g")
    assert r.status == "error" and r.error_type in ("ConnectionLostError", "StreamError"), r.error
    assert r.text.strip() == "alpha beta" and "incomplete" in r.error and r.attempts == 1


def test_keepalives_after_some_text_end_in_a_timeout(fake):
    fake.script(Reply(text="alpha beta gamma delta", fault="keepalive_stall", cut_after=2))
    r = nbp.run("hi", model="g", params={"timeout": 1})
    assert r.status == "error" and r.error_type == "ProviderTimeoutError", r.error
    assert r.text.strip() == "alpha beta" and "stalled" in r.error and r.attempts == 1
    assert r.latency_ms < 8000


def test_a_refused_connection_is_not_retried(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    monkeypatch.setenv("GEMINI_API_KEY", "k")
    nbp.configure(models={"g": {"model": "gemini/gemini-2.0-flash", "api_base": f"http://127.0.0.1:{port}",
                                "api_key_env": "GEMINI_API_KEY", "transport": "native_gemini"}})  # fmt: skip
    r = nbp.run("hi", model="g")
    assert r.status == "error" and r.error_type == "UnreachableError" and r.attempts == 1, r.error
