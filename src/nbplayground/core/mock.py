"""The built-in offline ``mock/`` provider: deterministic, no network, real media bytes.

It behaves like a provider transport (streamed chunks, usage, finish reasons, made-up prices) so every
code path of the engine and the surfaces can be exercised and demonstrated without a key.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from nbplayground.core.types import Media, MediaOutput, ProviderCall, ProviderChunk, ToolCallDelta, Usage

MOCK_MODELS: dict[str, str] = {
    "echo": "echoes the last user message",
    "lorem": "streams max_tokens words of lorem ipsum (params: max_tokens, mock_delay_ms)",
    "tools": "calls the first tool offered with schema-valid arguments, then answers with its result",
    "json": "returns JSON valid for the requested response_format schema",
    "image": "kind='image': a small real PNG derived from the prompt",
    "tts": "kind='speech': a small real WAV that carries its text",
    "stt": "kind='transcription': reads the text back out of a mock/tts WAV",
}
CHAT_MODELS = ("echo", "lorem", "tools", "json")
KIND_MODELS = {"image": "image", "speech": "tts", "transcription": "stt"}
INPUT_COST_PER_TOKEN = 1e-6
OUTPUT_COST_PER_TOKEN = 2e-6

_LOREM = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
    "ut",
    "enim",
    "ad",
    "minim",
    "veniam",
    "quis",
    "nostrud",
    "exercitation",
    "ullamco",
    "laboris",
    "nisi",
    "ut",
    "aliquip",
    "ex",
    "ea",
    "commodo",
    "consequat",
]


class MockModelError(ValueError):
    """An unknown mock model, or a mock model asked for a kind it does not produce."""


def count_tokens(text: str) -> int:
    """The mock's token count: whitespace-separated words."""
    return len(text.split())


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _last_user(messages: list[dict[str, Any]]) -> str:
    for msg in reversed(messages):
        if msg.get("role") == "user":
            return _text_of(msg.get("content"))
    return ""


def _check(model: str, kind: str) -> None:
    if model not in MOCK_MODELS:
        listing = ", ".join(f"mock/{m}" for m in MOCK_MODELS)
        raise MockModelError(f"Unknown mock model 'mock/{model}'. Mock models: {listing}.")
    expected = KIND_MODELS.get(kind)
    if kind == "chat" and model not in CHAT_MODELS:
        raise MockModelError(
            f"mock/{model} is not a chat model; use kind={_kind_of(model)!r}, or one of "
            f"{', '.join('mock/' + m for m in CHAT_MODELS)} for chat."
        )
    if kind != "chat" and model != expected:
        raise MockModelError(f"kind={kind!r} needs mock/{expected}, not mock/{model}.")


def _kind_of(model: str) -> str:
    return next((k for k, m in KIND_MODELS.items() if m == model), "chat")


def _words(text: str) -> list[str]:
    """Split keeping whitespace, so that ''.join(pieces) == text."""
    pieces: list[str] = []
    current = ""
    for ch in text:
        if ch.isspace() and current and not current[-1].isspace():
            pieces.append(current)
            current = ch
        else:
            current += ch
    if current:
        pieces.append(current)
    return pieces


async def stream_chat(call: ProviderCall) -> AsyncIterator[ProviderChunk]:
    """Stream a mock chat answer as provider chunks (text pieces, tool-call pieces, usage, finish)."""
    _check(call.model, "chat")
    delay = float(call.params.get("mock_delay_ms", 0) or 0) / 1000
    tokens_in = sum(count_tokens(_text_of(m.get("content"))) for m in call.messages)
    finish = "stop"
    if call.model == "tools":
        answer, tool = _tools_answer(call)
        if tool is not None:
            name, args = tool
            digest = hashlib.sha256(json.dumps([call.messages, name], sort_keys=True, default=str).encode())
            call_id = "call_" + digest.hexdigest()[:8]
            third = max(1, len(args) // 3)
            pieces = [args[:third], args[third : 2 * third], args[2 * third :]]
            for i, piece in enumerate(pieces):
                await asyncio.sleep(delay)
                first = i == 0
                yield ProviderChunk(
                    tool_calls=[
                        ToolCallDelta(
                            index=0,
                            id=call_id if first else None,
                            name=name if first else None,
                            arguments=piece,
                        )
                    ]
                )
            yield ProviderChunk(usage=Usage(tokens_in, count_tokens(args)), finish_reason="tool_calls")
            return
        text = answer
    elif call.model == "echo":
        text = _last_user(call.messages)
    elif call.model == "lorem":
        limit = call.params.get("max_tokens")
        n = int(limit) if limit else 32
        text = " ".join(_LOREM[i % len(_LOREM)] for i in range(n))
        if limit:
            finish = "length"
    else:  # json
        schema = _unwrap_schema(call.response_format)
        if schema is not None:
            text = json.dumps(example_for_schema(schema, hint=_last_user(call.messages)), ensure_ascii=False)
        else:
            text = json.dumps({"text": _last_user(call.messages)}, ensure_ascii=False)
    for piece in _words(text) if call.model != "json" else _json_pieces(text):
        await asyncio.sleep(delay)
        yield ProviderChunk(text=piece)
    await asyncio.sleep(0)
    yield ProviderChunk(usage=Usage(tokens_in, count_tokens(text)), finish_reason=finish)


def _json_pieces(text: str, size: int = 12) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _tools_answer(call: ProviderCall) -> tuple[str, tuple[str, str] | None]:
    last_user = max((i for i, m in enumerate(call.messages) if m.get("role") == "user"), default=-1)
    results = [m for m in call.messages[last_user + 1 :] if m.get("role") == "tool"]
    if results:
        names = {}
        for m in call.messages[last_user + 1 :]:
            for tc in m.get("tool_calls") or []:
                names[tc.get("id")] = (tc.get("function") or {}).get("name", "tool")
        parts = [
            f"The {names.get(m.get('tool_call_id'), 'tool')} tool returned: {_text_of(m.get('content'))}"
            for m in results
        ]
        return " ".join(parts), None
    if not call.tools:
        return "No tools were offered.", None
    fn = call.tools[0].get("function", call.tools[0])
    args = example_for_schema(
        fn.get("parameters") or {"type": "object", "properties": {}}, hint=_last_user(call.messages)
    )
    return "", (fn.get("name", "tool"), json.dumps(args, ensure_ascii=False))


def _unwrap_schema(fmt: dict[str, Any] | None) -> dict[str, Any] | None:
    if not fmt:
        return None
    if fmt.get("type") == "json_schema" and isinstance(fmt.get("json_schema"), dict):
        return fmt["json_schema"].get("schema") or {}
    if fmt.get("type") == "json_object":
        return None
    return fmt


#: Words that start a request rather than name something (skipped when they begin a capitalised phrase).
_STARTERS = frozenset({
    "what", "what's", "whats", "who", "where", "when", "how", "why", "which", "the", "a", "an", "i", "is", "are",
    "tell", "give", "please", "write", "summarise", "summarize", "return", "extract", "describe", "find", "list",
    "compare", "translate", "name", "make", "get", "show", "can", "could", "would", "should", "do", "does", "it",
    "this", "that", "these", "those", "my", "our", "your", "hi", "hello", "hey", "say", "explain", "answer",
    "classify", "rate",
})  # fmt: skip
#: After a sentence's first word, these say it was a verb ("Book 2 seats", "Translate this"), not a name.
_AFTER_VERB = re.compile(r"\s+(\d|the\b|a\b|an\b|me\b|us\b|this\b|that\b|my\b|our\b|some\b|all\b)")
_PROPER = re.compile(r"\b[A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)*")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")
_PLACE = ("city", "town", "location", "place", "country", "region", "state", "destination", "origin", "where")
_PERSON = ("name", "person", "author", "who", "user", "customer", "speaker")
_FREE_TEXT = frozenset({"text", "summary", "answer", "description", "content", "reason", "explanation", "message",
                        "response", "query", "question", "topic"})  # fmt: skip


class Hints:
    """What a prompt offers to fill arguments and fields the way a model would: its proper nouns (names,
    places) and its numbers, each used once, in order."""

    def __init__(self, text: str) -> None:
        self.text = text.strip()
        self.proper = self._proper_nouns(self.text)
        self.numbers = [float(n) for n in _NUMBER.findall(self.text)]

    @staticmethod
    def _proper_nouns(text: str) -> list[str]:
        out = []
        for match in _PROPER.finditer(text):
            words = match.group(0).split()
            start = match.start() == 0 or text[: match.start()].rstrip()[-1:] in (".", "!", "?", "\n")
            if start and len(words) == 1 and _AFTER_VERB.match(text, match.end()):
                continue
            while words and words[0].lower().rstrip("?!.,:;") in _STARTERS:
                words = words[1:]
            phrase = " ".join(words).removesuffix("'s").strip(" ?!.,:;")
            if phrase:
                out.append(phrase)
        return out

    def proper_noun(self) -> str | None:
        """The next name or place in the prompt, if any is left."""
        return self.proper.pop(0) if self.proper else None

    def number(self) -> float | None:
        """The next number in the prompt, if any is left."""
        return self.numbers.pop(0) if self.numbers else None

    def phrase(self) -> str:
        """A short piece of the prompt (for a free-text field)."""
        return self.text[:40] or "mock"


def _field(name: str, schema: dict[str, Any], hints: Hints) -> Any:
    """A field's value from the prompt when its name or type says what it is, else ``_MISSING``."""
    typ = schema.get("type")
    low = name.lower()
    if typ in ("integer", "number") and hints.numbers:
        value = hints.number()
        low_bound, high = schema.get("minimum"), schema.get("maximum")
        if value is not None and (low_bound is None or value >= low_bound) and (high is None or value <= high):
            return int(value) if typ == "integer" else value
    if typ != "string" or schema.get("enum") or schema.get("format") or "default" in schema:
        return _MISSING
    if any(k in low for k in _PLACE + _PERSON) or low in ("title", "company", "organization", "subject"):
        found = hints.proper_noun()
        if found:
            return found
    if low in _FREE_TEXT:
        return hints.phrase()
    return _MISSING


_MISSING = object()


def example_for_schema(
    schema: dict[str, Any], hint: str = "", _root: dict[str, Any] | None = None, _hints: Hints | None = None
) -> Any:
    """A JSON value valid for ``schema`` (enough of JSON Schema for pydantic and tool schemas).

    Fields are filled from ``hint`` (the prompt) the way a model would: a ``city`` or ``name`` gets the
    prompt's next proper noun, a number its next number; what the prompt does not say gets a plausible
    placeholder valid for the schema.
    """
    root = _root if _root is not None else schema
    hints = _hints if _hints is not None else Hints(hint)
    if not isinstance(schema, dict) or not schema:
        return hint[:40] or "mock"
    if "$ref" in schema:
        ref = schema["$ref"]
        target: Any = root
        for part in ref.lstrip("#/").split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return example_for_schema(target, hint, root, hints)
    if "const" in schema:
        return schema["const"]
    if "default" in schema:
        return schema["default"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            options = [o for o in schema[key] if o.get("type") != "null"] or schema[key]
            return example_for_schema(options[0], hint, root, hints)
    if schema.get("allOf"):
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            resolved = part
            if "$ref" in part:
                resolved = root
                for seg in part["$ref"].lstrip("#/").split("/"):
                    resolved = resolved.get(seg, {})
            for k, v in resolved.items():
                if k in ("properties",) and k in merged:
                    merged[k] = {**merged[k], **v}
                elif k == "required" and k in merged:
                    merged[k] = list({*merged[k], *v})
                else:
                    merged[k] = v
        return example_for_schema(merged, hint, root, hints)
    typ = schema.get("type")
    if isinstance(typ, list):
        typ = next((t for t in typ if t != "null"), "null")
    if typ is None:
        typ = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if typ == "object":
        props = schema.get("properties") or {}
        out = {}
        for name, sub in props.items():
            resolved = _resolve(sub, root)
            value = _field(name, resolved, hints)
            out[name] = value if value is not _MISSING else example_for_schema(sub, name, root, Hints(name))
        return out
    if typ == "array":
        n = max(int(schema.get("minItems", 1)), 1)
        if "maxItems" in schema:
            n = min(n, int(schema["maxItems"]))
        items = schema.get("items") or {}
        if schema.get("uniqueItems") and n > 1:
            return [example_for_schema(items, f"{hint}-{i}", root, hints) for i in range(n)]
        return [example_for_schema(items, hint, root, hints) for _ in range(n)]
    if typ == "integer":
        return int(_number(schema, integer=True))
    if typ == "number":
        return _number(schema, integer=False)
    if typ == "boolean":
        return True
    if typ == "null":
        return None
    return _string(schema, hint)


def _resolve(schema: Any, root: dict[str, Any]) -> dict[str, Any]:
    """A property's schema with a ``$ref`` or a nullable ``anyOf`` looked through (to read its type)."""
    if not isinstance(schema, dict):
        return {}
    if "$ref" in schema:
        target: Any = root
        for part in str(schema["$ref"]).lstrip("#/").split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return target if isinstance(target, dict) else {}
    for key in ("anyOf", "oneOf"):
        options = [o for o in schema.get(key) or [] if isinstance(o, dict) and o.get("type") != "null"]
        if options:
            return {**options[0], **{k: v for k, v in schema.items() if k not in (key,)}}
    return schema


def _number(schema: dict[str, Any], integer: bool) -> float:
    low = schema.get("minimum")
    if schema.get("exclusiveMinimum") is not None:
        low = schema["exclusiveMinimum"] + (1 if integer else 0.5)
    high = schema.get("maximum")
    if schema.get("exclusiveMaximum") is not None:
        high = schema["exclusiveMaximum"] - (1 if integer else 0.5)
    value: float = 1 if low is None else low
    if high is not None and value > high:
        value = high
    if integer:
        value = math.ceil(value) if low is not None else value
    step = schema.get("multipleOf")
    if step:
        value = math.ceil(value / step) * step
    return int(value) if integer else float(value)


def _string(schema: dict[str, Any], hint: str) -> str:
    fmt = schema.get("format")
    if fmt == "date-time":
        return "2024-01-01T00:00:00Z"
    if fmt == "date":
        return "2024-01-01"
    if fmt == "time":
        return "12:00:00"
    if fmt == "email":
        return "mock@example.com"
    if fmt in ("uri", "url"):
        return "https://example.com/mock"
    if fmt == "uuid":
        return "00000000-0000-4000-8000-000000000000"
    if schema.get("pattern"):
        return hint or "mock"  # best effort: patterns are rare in prompts
    text = (hint or "mock").strip()[:40] or "mock"
    low, high = int(schema.get("minLength", 0)), schema.get("maxLength")
    if len(text) < low:
        text = text + "x" * (low - len(text))
    if high is not None:
        text = text[: int(high)]
    return text


# --------------------------------------------------------------------------------------------------
# Media
# --------------------------------------------------------------------------------------------------
async def generate(call: ProviderCall) -> MediaOutput:
    """Image, speech or transcription, offline."""
    _check(call.model, call.kind)
    await asyncio.sleep(float(call.params.get("mock_delay_ms", 0) or 0) / 1000)
    extra = {k: v for k, v in call.params.items() if not k.startswith("mock_")}
    if call.kind == "image":
        prompt = call.input if isinstance(call.input, str) else _last_user(call.messages)
        png = make_png(prompt)
        media = Media(mime="image/png", data=png, params={"size": "64x64", **extra},
                      revised_prompt=f"A mock image of: {prompt}")  # fmt: skip
        return MediaOutput(media=media, usage=Usage(count_tokens(prompt), 0))
    if call.kind == "speech":
        text = call.input if isinstance(call.input, str) else _last_user(call.messages)
        params = {"voice": extra.pop("voice", "alloy"), **extra}
        return MediaOutput(
            media=Media(mime="audio/wav", data=make_wav(text), params=params),
            usage=Usage(count_tokens(text), 0),
        )
    data = _read_audio(call.input)
    transcript = read_wav_text(data)
    if transcript is None:
        transcript = f"[mock transcription: {len(data)} bytes of audio]"
    return MediaOutput(text=transcript, usage=Usage(None, count_tokens(transcript)))


def _read_audio(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, Media):
        return value.data
    if isinstance(value, str | Path):
        return Path(value).expanduser().read_bytes()
    raise MockModelError("mock/stt needs input= audio bytes, a Media or a file path.")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def make_png(seed: str, width: int = 64, height: int = 64) -> bytes:
    """A real RGB PNG: a diagonal gradient between two colours derived from ``seed``."""
    h = hashlib.sha256(seed.encode("utf-8")).digest()
    c1, c2 = h[0:3], h[3:6]
    rows = bytearray()
    for y in range(height):
        rows.append(0)
        for x in range(width):
            t = (x + y) / max(1, width + height - 2)
            rows.extend(int(a + (b - a) * t) for a, b in zip(c1, c2, strict=True))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + _png_chunk(b"IEND", b"")
    )


_RATE = 16000


def make_wav(text: str) -> bytes:
    """A real 16-bit mono 16 kHz WAV: one short tone per word, with the text in a LIST/INFO ICMT chunk."""
    words = text.split() or [""]
    per_word = min(0.06, 3.0 / len(words))
    samples = bytearray()
    for word in words:
        freq = 220 + (int(hashlib.md5(word.encode()).hexdigest()[:4], 16) % 660)
        n = int(_RATE * per_word)
        for i in range(n):
            fade = min(1.0, i / 80, (n - i) / 80)
            samples += struct.pack("<h", int(8000 * fade * math.sin(2 * math.pi * freq * i / _RATE)))
    comment = text.encode("utf-8") + b"\x00"
    if len(comment) % 2:
        comment += b"\x00"
    info = b"INFO" + b"ICMT" + struct.pack("<I", len(comment)) + comment
    fmt = struct.pack("<HHIIHH", 1, 1, _RATE, _RATE * 2, 2, 16)
    body = (
        b"WAVE"
        + b"fmt " + struct.pack("<I", len(fmt)) + fmt
        + b"LIST" + struct.pack("<I", len(info)) + info
        + b"data" + struct.pack("<I", len(samples)) + bytes(samples)
    )  # fmt: skip
    return b"RIFF" + struct.pack("<I", len(body)) + body


def read_wav_text(data: bytes) -> str | None:
    """The text a :func:`make_wav` file carries, or None for any other audio."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(data):
        kind, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = data[pos + 8 : pos + 8 + size]
        if kind == b"LIST" and body[:4] == b"INFO":
            sub = 4
            while sub + 8 <= len(body):
                sk, ss = body[sub : sub + 4], struct.unpack("<I", body[sub + 4 : sub + 8])[0]
                if sk == b"ICMT":
                    return body[sub + 8 : sub + 8 + ss].rstrip(b"\x00").decode("utf-8", "replace")
                sub += 8 + ss + (ss % 2)
        pos += 8 + size + (size % 2)
    return None
