"""Self-tests of the conformance fakes (tests/support/fakes): litellm understands every wire for real,
and every fault really happens on the wire (checked on a plain socket)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from support.fakes import FAULTS, WIRES, Reply, WireFake

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
SCHEMA = {
    "type": "object",
    "properties": {"n": {"type": "integer"}, "label": {"type": "string"}},
    "required": ["n", "label"],
    "additionalProperties": False,
}
JSON_SCHEMA_FORMAT = {"type": "json_schema", "json_schema": {"name": "out", "schema": SCHEMA, "strict": True}}
TOOL_TURNS = [
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
]
# what marks a finished stream on each wire (absent from a cut or stalled one)
FINISH = {
    "openai": b"[DONE]",
    "azure": b"[DONE]",
    "anthropic": b"message_stop",
    "gemini": b"finishReason",
    "ollama": b'"done": true',
    "cohere": b"message-end",
    "bedrock": b"messageStop",
}
NO_FORCED_TOOL = {
    "ollama": "litellm drops tool_choice for ollama_chat",
    "cohere": "litellm drops tool_choice for cohere_chat",
}
NO_STRUCTURED = {"cohere": "litellm has no response_format for cohere_chat (dropped with drop_params)"}
ALL = list(WIRES)


# -- litellm, on one event loop for the whole module -------------------------------------------------
@pytest.fixture(scope="module")
def run():
    """Run a coroutine on a module-wide event loop (litellm caches its HTTP clients per loop)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def runner(coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    yield runner
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


@pytest.fixture(scope="module")
def litellm():
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import litellm as module

    module.suppress_debug_info = True
    module.drop_params = True  # as nbplayground sets it
    return module


@pytest.fixture
def env(monkeypatch):
    """Set a fake's dummy credentials (and hide real AWS profiles)."""

    def apply(fake: WireFake) -> None:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK"):
            monkeypatch.delenv(name, raising=False)
        for name, value in fake.spec.env.items():
            monkeypatch.setenv(name, value)

    return apply


async def complete(litellm, fake: WireFake, stream: bool, **kw: Any) -> dict[str, Any]:
    """One litellm.acompletion against ``fake``, reduced to text, reasoning, tool calls, finish, usage."""
    messages = kw.pop("messages", [{"role": "user", "content": "hi"}])
    args = {**fake.spec.kwargs(), **kw}
    if stream:
        args["stream_options"] = {"include_usage": True}
    resp = await litellm.acompletion(messages=messages, stream=stream, num_retries=0, max_retries=0, **args)
    if not stream:
        msg = resp.choices[0].message
        usage = getattr(resp, "usage", None)
        return {
            "text": msg.content or "",
            "reasoning": getattr(msg, "reasoning_content", None) or "",
            "tools": [(t.function.name, json.loads(t.function.arguments)) for t in msg.tool_calls or []],
            "finish": resp.choices[0].finish_reason,
            "usage": (usage.prompt_tokens, usage.completion_tokens) if usage else None,
        }
    text, reasoning, calls, finish, usage, chunks = "", "", {}, None, None, 0
    async for chunk in resp:
        chunks += 1
        if chunk.choices:
            delta = chunk.choices[0].delta
            text += delta.content or ""
            reasoning += getattr(delta, "reasoning_content", None) or ""
            for tc in delta.tool_calls or []:
                call = calls.setdefault(tc.index, ["", ""])
                call[0] = tc.function.name or call[0]
                call[1] += tc.function.arguments or ""
            finish = chunk.choices[0].finish_reason or finish
        if getattr(chunk, "usage", None):
            usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
    tools = [(name, json.loads(args)) for name, args in calls.values()]
    return {
        "text": text,
        "reasoning": reasoning,
        "tools": tools,
        "finish": finish,
        "usage": usage,
        "chunks": chunks,
    }


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize("wire", ALL)
def test_litellm_reads_text_and_usage(run, litellm, env, wire, stream):
    with WireFake(wire, Reply(text="The quick brown fox jumps.", tokens_in=13)) as fake:
        env(fake)
        out = run(complete(litellm, fake, stream))
        assert out["text"] == "The quick brown fox jumps."
        assert out["finish"] == "stop"
        assert fake.requests[-1].usage == (13, 5)
        if not (wire == "cohere" and stream):  # litellm ignores Cohere's message-end (its finish and usage)
            assert out["usage"] == (13, 5)
        if stream:
            assert out["chunks"] >= 5  # streamed piece by piece, not in one lump
        rec = fake.requests[-1]
        assert rec.method == "POST" and rec.stream is stream and isinstance(rec.body, dict)


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize("wire", ALL)
def test_litellm_reads_a_tool_call(run, litellm, env, wire, stream):
    with WireFake(wire, Reply(tool_call=("get_weather", {"city": "Paris", "days": 2}))) as fake:
        env(fake)
        out = run(complete(litellm, fake, stream, tools=[WEATHER]))
        assert out["tools"] == [("get_weather", {"city": "Paris", "days": 2})]
        assert out["text"] == ""
        if not (wire == "cohere" and stream):
            assert out["finish"] == "tool_calls"


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize(
    ("wire", "model"),
    [
        *[
            pytest.param(
                w, None, marks=pytest.mark.skip(reason=NO_STRUCTURED[w]) if w in NO_STRUCTURED else ()
            )
            for w in ALL
        ],
        pytest.param("anthropic", "anthropic/claude-sonnet-4-5-20250929", id="anthropic-output_format"),
    ],
)
def test_litellm_reads_structured_output(run, litellm, env, wire, model, stream):
    with WireFake(wire, Reply(json={"n": 3, "label": "three"})) as fake:
        env(fake)
        extra = {"model": model} if model else {}
        out = run(complete(litellm, fake, stream, response_format=JSON_SCHEMA_FORMAT, **extra))
        assert json.loads(out["text"]) == {"n": 3, "label": "three"}
        assert out["tools"] == []
        # unscripted: JSON valid for the schema
        fake.script(Reply())
        out = run(complete(litellm, fake, stream, response_format=JSON_SCHEMA_FORMAT, **extra))
        value = json.loads(out["text"])
        assert (
            set(value) == {"n", "label"} and isinstance(value["n"], int) and isinstance(value["label"], str)
        )


@pytest.mark.parametrize("wire", ALL)
def test_tool_result_is_answered_and_a_forced_tool_is_always_called(run, litellm, env, wire):
    with WireFake(wire) as fake:
        env(fake)
        out = run(complete(litellm, fake, True, tools=[WEATHER], messages=TOOL_TURNS))
        assert out["text"] == "Tool said: sunny" and out["tools"] == []
        out = run(complete(litellm, fake, False, tools=[WEATHER]))
        assert out["text"] == "Hello from the fake." and out["tools"] == []  # tools offered, not forced
        if wire in NO_FORCED_TOOL:
            return
        for choice in ({"type": "function", "function": {"name": "get_weather"}}, "required"):
            for messages in ([{"role": "user", "content": "hi"}], TOOL_TURNS):  # even after a tool result
                out = run(
                    complete(litellm, fake, True, tools=[WEATHER], tool_choice=choice, messages=messages)
                )
                assert [name for name, _ in out["tools"]] == ["get_weather"], (choice, messages)
                assert isinstance(out["tools"][0][1]["city"], str)


@pytest.mark.parametrize("wire", [w for w in ALL if w != "cohere"])  # litellm drops Cohere's thinking content
def test_litellm_reads_reasoning_before_the_text(run, litellm, env, wire):
    with WireFake(wire, Reply(reasoning="First, think hard.")) as fake:
        env(fake)
        for stream in (True, False):
            out = run(complete(litellm, fake, stream))
            assert out["reasoning"] == "First, think hard."
            assert out["text"] == "Hello from the fake."


@pytest.mark.parametrize("wire", ALL)
def test_litellm_sees_the_wires_own_error(run, litellm, env, wire):
    message = "fake failure: slow down please"
    with WireFake(wire, Reply(fault="status", status=429, retry_after=2, error_message=message)) as fake:
        env(fake)
        for stream in (False, True):
            with pytest.raises(Exception) as info:
                run(complete(litellm, fake, stream))
            exc = info.value
            inner = (
                getattr(exc, "original_exception", None) or exc
            )  # gemini streams wrap it (MidStreamFallbackError)
            assert getattr(exc, "status_code", None) == 429 or getattr(inner, "status_code", None) == 429
            assert message in str(exc)


def test_script_takes_replies_in_order_and_repeats_the_last(run, litellm, env):
    with WireFake("openai", Reply(text="one"), Reply(text="two")) as fake:
        env(fake)
        texts = [run(complete(litellm, fake, False))["text"] for _ in range(3)]
        assert texts == ["one", "two", "two"]
        fake.script(Reply(text="three"))
        assert run(complete(litellm, fake, True))["text"] == "three"
        assert [r.path for r in fake.requests] == ["/v1/chat/completions"] * 4
        assert fake.requests[0].headers["Authorization"] == "Bearer sk-fake"


def test_every_wire_records_where_litellm_sent_the_request(run, litellm, env):
    expected = {
        "openai": ("/v1/chat/completions", {}),
        "azure": ("/openai/deployments/fake-deployment/chat/completions", {"api-version": "2024-10-21"}),
        "anthropic": ("/v1/messages", {}),
        "gemini": ("/models/gemini-2.0-flash:streamGenerateContent", {"alt": "sse"}),
        "ollama": ("/api/chat", {}),
        "cohere": ("/v2/chat", {}),
        "bedrock": ("/model/anthropic.claude-3-5-sonnet-20240620-v1:0/converse-stream", {}),
    }
    for wire, (path, query) in expected.items():
        with WireFake(wire) as fake:
            env(fake)
            run(complete(litellm, fake, True))
            assert (fake.requests[-1].path, fake.requests[-1].query) == (path, query), wire


# -- llama-cpp-python quirks (openai wire) -----------------------------------------------------------
def test_quirk_null_content_rejected_with_a_long_validation_error(run, litellm, env):
    with WireFake("openai", quirks=frozenset({"null_content_rejected"})) as fake:
        env(fake)
        with pytest.raises(Exception) as info:
            run(complete(litellm, fake, True, tools=[WEATHER], messages=TOOL_TURNS))
        assert getattr(info.value, "status_code", None) == 500
        body = httpx.post(
            f"{fake.url}/v1/chat/completions", json={"model": "m", "messages": TOOL_TURNS}
        ).json()
        message = body["error"]["message"]
        assert len(message) > 1000 and message.count("\n") > 10
        relevant = (
            "messages.1.ChatCompletionRequestAssistantMessage.content\n  Input should be a valid string"
        )
        assert relevant in message and message.index(relevant) > 500
        turns = [TOOL_TURNS[0], {**TOOL_TURNS[1], "content": ""}, TOOL_TURNS[2]]
        assert (
            run(complete(litellm, fake, True, tools=[WEATHER], messages=turns))["text"] == "Tool said: sunny"
        )


def test_quirk_json_object_schema_only(run, litellm, env):
    with WireFake("openai", quirks=frozenset({"json_object_schema_only"})) as fake:
        env(fake)
        with pytest.raises(Exception) as info:
            run(complete(litellm, fake, False, response_format=JSON_SCHEMA_FORMAT))
        assert getattr(info.value, "status_code", None) == 400 and "json_object" in str(info.value)
        out = run(complete(litellm, fake, True, response_format={"type": "json_object", "schema": SCHEMA}))
        assert set(json.loads(out["text"])) == {"n", "label"}
        assert fake.requests[-1].body["response_format"] == {"type": "json_object", "schema": SCHEMA}


def stream_chunks(url: str, body: dict[str, Any]) -> tuple[list[Any], list[str]]:
    """The JSON chunks of an OpenAI stream, and its raw data lines."""
    lines = []
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        lines = [line[5:].strip() for line in resp.iter_lines() if line.startswith("data:")]
    return [json.loads(line) for line in lines if line != "[DONE]"], lines


def test_quirks_no_stream_usage_and_done_without_finish():
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with WireFake("openai") as fake:
        chunks, lines = stream_chunks(fake.url, body)
        assert any(c.get("usage") for c in chunks) and any(
            c["choices"] and c["choices"][0]["finish_reason"] for c in chunks
        )
    with WireFake("openai", quirks=frozenset({"no_stream_usage", "done_without_finish"})) as fake:
        chunks, lines = stream_chunks(fake.url, body)
        assert lines[-1] == "[DONE]"
        assert (
            "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "Hello from the fake."
        )
        assert not any(c.get("usage") for c in chunks)
        assert not any(c["choices"][0]["finish_reason"] for c in chunks)


def test_pieces_and_delay_pace_the_stream_and_usage_can_be_left_out():
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with WireFake(
        "openai", Reply(text="one two three four five six", pieces=3, delay=0.2, usage=False)
    ) as fake:
        started = time.monotonic()
        chunks, _ = stream_chunks(fake.url, body)
        elapsed = time.monotonic() - started
        contents = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
        assert [c for c in contents if c] == ["one two t", "hree four", " five six"]
        assert elapsed >= 0.4  # two pauses between three pieces
        assert not any(c.get("usage") for c in chunks) and fake.requests[-1].usage is None
        whole = httpx.post(f"{fake.url}/v1/chat/completions", json={**body, "stream": False}).json()
        assert (
            "usage" not in whole
            and whole["choices"][0]["message"]["content"] == "one two three four five six"
        )


def test_unknown_quirk_or_fault_or_wire_is_refused():
    with pytest.raises(ValueError, match="quirks"):
        WireFake("anthropic", quirks=frozenset({"no_stream_usage"}))
    with pytest.raises(ValueError, match="fault"):
        Reply(fault="explode")
    with pytest.raises(ValueError, match="wire"):
        WireFake("palm")
    assert set(FAULTS) == {
        "status", "html_page", "malformed_body", "json_error_stream", "disconnect", "keepalive_stall", "stall_first_byte",
    }  # fmt: skip


# -- faults, on a plain socket -----------------------------------------------------------------------
class Raw:
    """One HTTP/1.1 request on a plain socket, read as bytes: what really went over the wire."""

    def __init__(self, fake: WireFake, stream: bool = True) -> None:
        path, body = fake.wire.sample(stream)
        payload = json.dumps(body).encode()
        url = urlsplit(fake.url)
        head = f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
        self.sock = socket.create_connection((url.hostname, url.port))
        self.sock.sendall(head.encode() + payload)
        self.data, self.eof = b"", False

    def read(self, seconds: float) -> bytes:
        """Read for up to ``seconds`` or until the server closes; what arrived."""
        end, got = time.monotonic() + seconds, b""
        while not self.eof and (left := end - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                piece = self.sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                piece = b""
            if not piece:
                self.eof = True
            got += piece
        self.data += got
        return got

    def close(self) -> None:
        self.sock.close()

    @property
    def status(self) -> int:
        return int(self.data.split(b" ", 2)[1])

    @property
    def headers(self) -> dict[str, str]:
        head = self.data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
        return {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in head)}

    def body(self) -> tuple[bytes, bool]:
        """The body (chunked encoding undone) and whether it ended properly."""
        raw = self.data.split(b"\r\n\r\n", 1)[1]
        if self.headers.get("transfer-encoding") != "chunked":
            return raw, len(raw) == int(self.headers.get("content-length", -1))
        out = b""
        while b"\r\n" in raw:
            size_line, rest = raw.split(b"\r\n", 1)
            size = int(size_line, 16)
            if size == 0:
                return out, True
            if len(rest) < size + 2:
                return out + rest[:size], False
            out, raw = out + rest[:size], rest[size + 2 :]
        return out, False


def decode(wire: str, body: bytes) -> tuple[list[Any], int]:
    """The events of a streamed body (JSON), and how many keep-alives it held; raises when malformed."""
    if wire == "bedrock":
        from botocore.eventstream import EventStreamBuffer

        buffer = EventStreamBuffer()
        buffer.add_data(body)
        return [json.loads(message.payload) for message in buffer], 0
    if wire in ("ollama", "cohere"):  # JSON lines (Cohere to Accept other than text/event-stream)
        lines = body.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()], sum(
            1 for line in lines[:-1] if not line.strip()
        )
    events, keepalives = [], 0
    for block in body.replace(b"\r\n", b"\n").split(b"\n\n"):
        if not block.strip():
            continue
        data = [line[5:].strip() for line in block.split(b"\n") if line.startswith(b"data:")]
        if block.startswith(b":") or data == [b'{"type": "ping"}']:
            keepalives += 1
        elif data and data != [b"[DONE]"]:
            events.append(json.loads(b"\n".join(data)))
    return events, keepalives


def open_fakes(reply: Reply) -> list[WireFake]:
    fakes = [WireFake(wire, reply) for wire in ALL]
    for fake in fakes:
        fake.start()
    return fakes


def test_a_whole_stream_ends_with_the_wires_finish_and_decodes():
    fakes = open_fakes(Reply())
    try:
        for fake in fakes:
            raw = Raw(fake)
            raw.read(5)
            body, complete = raw.body()
            events, keepalives = decode(fake.wire.name, body)
            assert complete and raw.status == 200, fake.wire.name
            assert FINISH[fake.wire.name] in body
            assert keepalives == (
                1 if fake.wire.name == "anthropic" else 0
            )  # Anthropic pings once at the start
            assert len(events) >= 4 and b'"Hello"' in json.dumps(events).encode(), fake.wire.name
            raw.close()
    finally:
        for fake in fakes:
            fake.stop()


@pytest.mark.parametrize("wire", ALL)
def test_fault_status_sends_the_wires_json_error_and_retry_after(wire):
    with WireFake(wire, Reply(fault="status", status=429, retry_after=1.5, error_message="too fast")) as fake:
        for stream in (True, False):
            raw = Raw(fake, stream)
            raw.read(5)
            assert raw.status == 429 and raw.headers["retry-after"] == "1.5"
            assert raw.headers["content-type"].startswith("application/json")
            assert "too fast" in json.dumps(json.loads(raw.body()[0]))
        fake.script(Reply(fault="json_error_stream", status=503, error_message="busy"))
        raw = Raw(fake, stream=True)
        raw.read(5)
        assert raw.status == 503 and raw.headers["content-type"].startswith("application/json")
        assert "busy" in json.dumps(json.loads(raw.body()[0])) and "retry-after" not in raw.headers


@pytest.mark.parametrize("wire", ALL)
def test_fault_html_page_and_malformed_body(wire):
    with WireFake(wire, Reply(fault="html_page")) as fake:
        raw = Raw(fake)
        raw.read(5)
        assert raw.status == 200 and raw.headers["content-type"].startswith("text/html")
        assert raw.body()[0].startswith(b"<!DOCTYPE html>")
        fake.script(Reply(fault="malformed_body"))
        for stream in (True, False):
            raw = Raw(fake, stream)
            raw.read(5)
            body, complete = raw.body()
            assert raw.status == 200 and complete and body
            expected = (
                fake.wire.content_type(fake.wire.ask(*_sample_ask(fake, stream)))
                if stream
                else "application/json"
            )
            assert raw.headers["content-type"].startswith(expected)
            with pytest.raises(Exception):  # noqa: B017 - JSON or event-stream errors, per wire
                decode(wire, body) if stream else json.loads(body)


def _sample_ask(fake: WireFake, stream: bool) -> tuple[str, dict[str, str], Any, frozenset[str]]:
    path, body = fake.wire.sample(stream)
    split = urlsplit(path)
    query = dict(part.split("=", 1) for part in split.query.split("&") if part)
    return split.path, query, body, frozenset()


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_fault_disconnect_closes_mid_answer_without_finish(stream):
    fakes = open_fakes(Reply(fault="disconnect", cut_after=2))
    try:
        for fake in fakes:
            raw = Raw(fake, stream)
            raw.read(5)
            wire = fake.wire.name
            assert raw.eof and raw.status == 200, wire
            body, complete = raw.body()
            assert not complete, wire
            if stream:
                events, _ = decode(wire, body)
                text = json.dumps(events)
                assert '"Hello"' in text and '" from"' in text and '" the"' not in text, wire
                assert FINISH[wire] not in body, wire
            else:
                with pytest.raises(ValueError):
                    json.loads(body)
            assert fake.wait_closed(timeout=5) is not None
            raw.close()
    finally:
        for fake in fakes:
            fake.stop()


def test_fault_keepalive_stall_sends_only_keepalives_until_the_client_hangs_up():
    fakes = open_fakes(Reply(fault="keepalive_stall", cut_after=1))
    raws = [Raw(fake) for fake in fakes]
    try:
        time.sleep(1.0)
        for fake, raw in zip(fakes, raws, strict=True):
            wire = fake.wire.name
            raw.read(0.05)
            assert not raw.eof and raw.status == 200, wire
            body, complete = raw.body()
            assert not complete and FINISH[wire] not in body, wire
            events, keepalives = decode(wire, body)
            text = json.dumps(events)
            assert '"Hello"' in text and '" from"' not in text, wire
            if wire in (
                "bedrock",
                "cohere",
            ):  # AWS event streams and JSON lines have no keep-alive: they go quiet
                assert keepalives == 0
            else:
                assert keepalives >= 3, (wire, keepalives)
        hung_up = time.monotonic()
        for raw in raws:
            raw.close()
        for fake in fakes:
            closed = fake.wait_closed(timeout=5)
            assert closed is not None and closed >= hung_up, fake.wire.name
    finally:
        for fake in fakes:
            fake.stop()


def test_fault_stall_first_byte_sends_nothing_and_ends_with_the_fake():
    fakes = open_fakes(Reply(fault="stall_first_byte"))
    raws = [Raw(fake, stream) for fake in fakes for stream in (True, False)]
    try:
        time.sleep(1.0)
        for raw in raws:
            assert raw.read(0.01) == b"" and not raw.eof
        raws[0].close()  # a client hanging up ends its request
        assert fakes[0].wait_closed(0, timeout=5) is not None
    finally:
        started = time.monotonic()
        for fake in fakes:
            fake.stop()  # ends the stalled handlers that are still waiting
        assert time.monotonic() - started < 10
    for raw in raws[1:]:
        assert raw.read(5) == b"" and raw.eof  # the fake closed the connection without a byte
        raw.close()
