"""The offline mock/ provider: deterministic, cancellable, schema-valid, real PNG and WAV bytes."""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import io
import json
import struct
import time
import wave
import zlib
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from nbplayground.core import mock
from nbplayground.core.types import ProviderCall


def call(model: str, text: str = "hello world", **kw) -> ProviderCall:
    kw.setdefault("messages", [{"role": "user", "content": text}])
    return ProviderCall(model=model, provider="mock", **kw)


def collect(c: ProviderCall) -> list:
    async def main():
        return [ch async for ch in mock.stream_chat(c)]

    return asyncio.run(main())


def test_echo_streams_words_and_usage():
    chunks = collect(call("echo", "one  two\nthree"))
    assert "".join(ch.text for ch in chunks) == "one  two\nthree"
    assert sum(1 for ch in chunks if ch.text) == 3
    last = chunks[-1]
    assert last.finish_reason == "stop" and (last.usage.tokens_in, last.usage.tokens_out) == (3, 3)
    assert collect(call("echo", "x")) == collect(call("echo", "x"))  # deterministic


def test_lorem_emits_exactly_max_tokens():
    chunks = collect(call("lorem", params={"max_tokens": 17}))
    text = "".join(ch.text for ch in chunks)
    assert len(text.split()) == 17 and chunks[-1].finish_reason == "length"
    assert len("".join(ch.text for ch in collect(call("lorem"))).split()) == 32


def test_cancel_lands_quickly():
    async def main():
        consumer = asyncio.create_task(_drain(call("lorem", params={"max_tokens": 5, "mock_delay_ms": 1000})))
        await asyncio.sleep(0.05)
        t0 = time.perf_counter()
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer
        return time.perf_counter() - t0

    async def _drain(c):
        async for _ in mock.stream_chat(c):
            pass

    assert asyncio.run(main()) < 0.2


def test_tools_two_steps():
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
        "required": ["city", "days"]}}}]  # fmt: skip
    chunks = collect(call("tools", "weather?", tools=tools))
    deltas = [d for ch in chunks if ch.tool_calls for d in ch.tool_calls]
    assert deltas[0].name == "get_weather" and deltas[0].id.startswith("call_")
    args = json.loads("".join(d.arguments for d in deltas))
    assert isinstance(args["city"], str) and args["days"] >= 1
    assert chunks[-1].finish_reason == "tool_calls"
    messages = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": deltas[0].id, "type": "function",
                                                                "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": deltas[0].id, "content": "sunny"},
    ]  # fmt: skip
    answer = "".join(ch.text for ch in collect(call("tools", messages=messages, tools=tools)))
    assert answer == "The get_weather tool returned: sunny"
    assert "".join(ch.text for ch in collect(call("tools"))) == "No tools were offered."


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    street: str = Field(min_length=5)
    zip: str


class Person(BaseModel):
    name: str
    age: int = Field(ge=18, le=120)
    score: float = Field(gt=0, multiple_of=0.5)
    tags: list[str] = Field(min_length=2)
    nickname: str | None
    kind: Literal["a", "b"]
    color: Color
    born: dt.date
    seen: dt.datetime
    address: Address
    others: list[Address] = []


@pytest.mark.parametrize("model", [Person, Address])
def test_example_for_schema_validates(model):
    value = mock.example_for_schema(model.model_json_schema())
    model.model_validate(value)


def test_json_model_follows_schema_both_wrappings():
    schema = Person.model_json_schema()
    for fmt in (schema, {"type": "json_schema", "json_schema": {"name": "p", "schema": schema}}):
        text = "".join(ch.text for ch in collect(call("json", "Ada", response_format=fmt)))
        Person.model_validate_json(text)
    plain = "".join(ch.text for ch in collect(call("json", "free text")))
    assert json.loads(plain) == {"text": "free text"}


def _png_chunks(data: bytes):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        yield kind, body
        pos += 12 + length


def test_png_is_real():
    data = mock.make_png("a cat", 32, 16)
    chunks = dict(_png_chunks(data))
    w, h = struct.unpack(">II", chunks[b"IHDR"][:8])
    assert (w, h) == (32, 16) and len(zlib.decompress(chunks[b"IDAT"])) == 16 * (1 + 32 * 3)
    assert b"IEND" in chunks and mock.make_png("a cat") != mock.make_png("a dog")


def test_wav_is_real_and_carries_text():
    data = mock.make_wav("héllo wörld ✓")
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000) and w.getnframes() > 0
    assert mock.read_wav_text(data) == "héllo wörld ✓"
    assert mock.read_wav_text(b"RIFF\x00\x00\x00\x00WAVE") is None


def test_media_generation_round_trip(tmp_path):
    async def gen(c):
        return await mock.generate(c)

    img = asyncio.run(gen(call("image", kind="image", input="a lighthouse")))
    assert img.media.mime == "image/png" and img.media.revised_prompt == "A mock image of: a lighthouse"
    tts = asyncio.run(gen(call("tts", kind="speech", input="read me", params={"voice": "nova"})))
    assert tts.media.params["voice"] == "nova"
    path = tmp_path / "x.wav"
    path.write_bytes(tts.media.data)
    for source in (tts.media.data, str(path), path):
        assert asyncio.run(gen(call("stt", kind="transcription", input=source))).text == "read me"
    other = asyncio.run(gen(call("stt", kind="transcription", input=b"not a wav")))
    assert other.text == "[mock transcription: 9 bytes of audio]"


def test_wrong_kind_and_unknown_model():
    with pytest.raises(mock.MockModelError, match="kind='image' needs mock/image"):
        asyncio.run(mock.generate(call("echo", kind="image")))
    with pytest.raises(mock.MockModelError, match="not a chat model"):
        collect(call("image"))
    with pytest.raises(mock.MockModelError, match="Mock models: mock/echo"):
        collect(call("nope"))
