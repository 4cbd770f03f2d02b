"""The native transport: the OpenAI chat-completions wire format over aiohttp.

Why not litellm here: measured on the same local server, litellm's stream wrapper spends ~2.5x the CPU
per chunk of the raw ``openai`` SDK (it builds the SDK's pydantic chunk, then its own). The OpenAI wire
format is the hot path (OpenAI, and every local or dedicated OpenAI-compatible server), so it is parsed
here with aiohttp and ``json.loads``. Model resolution, prices and error vocabulary are shared by every
transport.

What it checks that a plain client would not: the answer's content type (an HTML page or a JSON error
body sent to a streaming request is reported for what it is), progress (keep-alive comments do not
count), and the provider's own finish reason (a stream that ends without one is incomplete).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from nbplayground.core.errors import (
    NBPlaygroundError,
    ProviderError,
)
from nbplayground.core.providers import DEFAULT_API_BASE
from nbplayground.core.transports import Capabilities
from nbplayground.core.transports import http as H
from nbplayground.core.types import ProviderCall, ProviderChunk, ToolCallDelta, Usage

#: ``response_format`` values that are already in the wire's shape and are sent exactly as given
#: (llama-cpp-python, vLLM, Together and Fireworks take ``{"type": "json_object", "schema": ...}``).
WIRE_FORMAT_TYPES = ("json_schema", "json_object", "text")


def json_schema_format(schema: dict[str, Any]) -> dict[str, Any]:
    """``response_format`` for a JSON schema; a dict already in the wire's shape is sent as given."""
    if schema.get("type") in WIRE_FORMAT_TYPES:
        return schema
    name = str(schema.get("title") or "output")
    safe = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in name)[:64] or "output"
    return {"type": "json_schema", "json_schema": {"name": safe, "schema": schema}}


def wire_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as every OpenAI-wire server accepts them: an assistant turn that only calls tools sends
    ``content: ""``, not null (llama-cpp-python and other local servers reject null)."""
    if not any(m.get("content") is None and m.get("role") == "assistant" for m in messages):
        return messages
    return [{**m, "content": ""} if m.get("role") == "assistant" and m.get("content") is None else m
            for m in messages]  # fmt: skip


def build_body(call: ProviderCall) -> dict[str, Any]:
    """The JSON body of a chat-completions request."""
    params = dict(call.params)
    extra_body = params.pop("extra_body", None) or {}
    params.pop("mock_delay_ms", None)
    params.pop("extra_headers", None)
    body: dict[str, Any] = {"model": call.model, "messages": wire_messages(call.messages), **params}
    if call.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    else:
        body["stream"] = False
    if call.tools:
        body["tools"] = call.tools
    if call.response_format:
        body["response_format"] = json_schema_format(call.response_format)
    body.update(extra_body)
    return body


def _provider_error(obj: dict[str, Any], mid_stream: bool) -> NBPlaygroundError:
    err = obj.get("error")
    msg = H.shorten(str(err.get("message") if isinstance(err, dict) else err))
    code = err.get("code") if isinstance(err, dict) else None
    status = code if isinstance(code, int) and 400 <= code < 600 else None
    where = " mid-stream" if mid_stream else ""
    if status is not None:
        from nbplayground.core.errormap import from_status

        return from_status(status, msg, None, where=f"the provider{where}")
    return ProviderError(f"The provider reported an error{where}: {msg}")


class NativeOpenAI(H.NativeHTTP):
    """OpenAI-wire chat over aiohttp (streamed, or one whole answer for batch rows)."""

    name = "native"
    capabilities = Capabilities(streaming=True, tools=True, structured_output=True, reasoning=True)

    async def stream(self, call: ProviderCall) -> AsyncIterator[ProviderChunk]:
        """Stream a chat completion as :class:`ProviderChunk` objects, checking what the server sends."""
        from nbplayground.core.errormap import from_http

        base = (call.api_base or DEFAULT_API_BASE.get(call.provider) or DEFAULT_API_BASE["openai"]).rstrip("/")
        headers = {"Accept": "text/event-stream" if call.stream else "application/json"}
        if call.api_key:
            headers["Authorization"] = f"Bearer {call.api_key}"
        if call.options.get("organization"):
            headers["OpenAI-Organization"] = str(call.options["organization"])
        headers.update(call.params.get("extra_headers") or {})
        async for chunk in H.exchange(
            base + "/chat/completions", build_body(call), headers, timeout=call.timeout,
            total_timeout=call.total_timeout, events=_events, whole=_whole,
            error_of=lambda status, message, retry_after: from_http(status, message, retry_after, call),
        ):  # fmt: skip
            yield chunk


async def _events(resp: Any, deadline: H.ProgressDeadline) -> AsyncIterator[ProviderChunk]:
    """The chunks of a server-sent-events stream; ``[DONE]`` ends it, comments are not progress."""
    async for _, payload in H.sse_events(resp.content):
        if payload == b"[DONE]":
            return
        chunk = _chunk(H.loads_chunk(payload))
        if chunk is not None:
            deadline.progress()
            yield chunk


def _whole(raw: bytes, where: str, ctype: str) -> ProviderChunk:
    """A whole (non-streamed) chat completion as one chunk; an error body or a non-answer raises."""
    obj = H.loads_whole(raw, where, ctype)
    if "error" in obj and not obj.get("choices"):
        raise _provider_error(obj, mid_stream=False)
    choices = obj.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise H.unreadable(where, raw, ctype)
    choice = choices[0]
    msg = choice.get("message") or {}
    out = ProviderChunk(
        text=msg.get("content") or "",
        reasoning=msg.get("reasoning_content") or msg.get("reasoning") or "",
        finish_reason=choice.get("finish_reason"),
    )
    calls = msg.get("tool_calls") or []
    if calls:
        out.tool_calls = [
            ToolCallDelta(index=i, id=tc.get("id"), name=(tc.get("function") or {}).get("name"),
                          arguments=(tc.get("function") or {}).get("arguments") or "")
            for i, tc in enumerate(calls)
        ]  # fmt: skip
    usage = obj.get("usage")
    if isinstance(usage, dict):
        out.usage = Usage(tokens_in=usage.get("prompt_tokens"), tokens_out=usage.get("completion_tokens"))
    return out


def _chunk(obj: dict[str, Any]) -> ProviderChunk | None:
    if "error" in obj and not obj.get("choices"):
        raise _provider_error(obj, mid_stream=True)
    choices = obj.get("choices")
    usage = obj.get("usage")
    out: ProviderChunk | None = None
    if choices:
        choice = choices[0]
        delta = choice.get("delta") or {}
        text = delta.get("content") or ""
        reasoning = delta.get("reasoning_content") or delta.get("reasoning") or ""
        finish = choice.get("finish_reason")
        raw_calls = delta.get("tool_calls")
        calls = None
        if raw_calls:
            calls = []
            for tc in raw_calls:
                fn = tc.get("function") or {}
                calls.append(
                    ToolCallDelta(
                        index=tc.get("index", 0), id=tc.get("id"), name=fn.get("name"),
                        arguments=fn.get("arguments") or "",
                    )
                )  # fmt: skip
        if text or finish or calls or reasoning:
            out = ProviderChunk(text=text, tool_calls=calls, finish_reason=finish, reasoning=reasoning)
    if usage:
        u = Usage(tokens_in=usage.get("prompt_tokens"), tokens_out=usage.get("completion_tokens"))
        if out is None:
            out = ProviderChunk(usage=u)
        else:
            out.usage = u
    return out


TRANSPORT = NativeOpenAI()
