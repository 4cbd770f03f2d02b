"""The native Anthropic transport: the Messages API (``/v1/messages``) over aiohttp.

Why not litellm: its stream wrapper spends ~3.8x the CPU per chunk of the raw ``openai`` SDK on the
same machine (``benchmarks/bench_providers.py``), and it makes up a finish reason when a stream ends
early. Here every chunk is one ``json.loads``; the answer is complete only when the stream says
``message_stop`` after a ``stop_reason``.

Messages arrive in nbplayground's (OpenAI-shaped) form and are converted: system messages become the
``system`` field, assistant tool calls ``tool_use`` blocks, tool results ``tool_result`` blocks in a
user turn (consecutive turns of one role merged, as the API requires), data-URI images ``image``
blocks. Structured output uses a forced ``json_tool_call`` tool whose input is the answer (what works
on every Claude model); its JSON is yielded as the answer's text.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from nbplayground.core.errors import BadParameterError, ProviderError
from nbplayground.core.transports import Capabilities
from nbplayground.core.transports import http as H
from nbplayground.core.types import ProviderCall, ProviderChunk, ToolCallDelta, Usage

DEFAULT_API_BASE = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
#: Anthropic requires max_tokens; this is used when a run sets none.
DEFAULT_MAX_TOKENS = 4096
#: The tool whose forced call carries a structured answer (litellm's name for it too).
JSON_TOOL = "json_tool_call"
FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
          "refusal": "content_filter", "pause_turn": "stop", "model_context_window_exceeded": "length"}  # fmt: skip
#: ``reasoning_effort`` as a thinking budget (tokens).
EFFORT_BUDGET = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}
#: The Messages API's error types as HTTP statuses (an error event inside a stream has no status).
ERROR_STATUS = {"invalid_request_error": 400, "authentication_error": 401, "permission_error": 403,
                "not_found_error": 404, "request_too_large": 413, "rate_limit_error": 429, "api_error": 500,
                "overloaded_error": 529}  # fmt: skip



def messages_url(base: str | None) -> str:
    """The Messages endpoint for an ``api_base`` given with or without ``/v1`` (or whole)."""
    base = (base or DEFAULT_API_BASE).rstrip("/")
    if base.endswith("/v1/messages"):
        return base
    return base + ("/messages" if base.endswith("/v1") else "/v1/messages")


def _image(url: str) -> dict[str, Any]:
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        return {"type": "image", "source": {"type": "base64", "media_type": header[5:].split(";")[0], "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _blocks(content: Any) -> list[dict[str, Any]]:
    """OpenAI-style content (a string or parts) as Messages content blocks."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    out = []
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            out.append({"type": "text", "text": str(part.get("text", ""))})
        elif part.get("type") == "image_url":
            image = part.get("image_url")
            out.append(_image(str(image.get("url") if isinstance(image, dict) else image)))
        else:
            out.append(part)  # already an Anthropic block (document, cache_control...)
    return out


def convert_messages(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    """(system, messages) in the Messages API's shape, roles alternating."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for m in messages:
        role = m.get("role")
        if role in ("system", "developer"):
            text = m.get("content")
            system.append(text if isinstance(text, str) else " ".join(b.get("text", "") for b in _blocks(text)))
            continue
        if role == "tool":
            blocks = [{"type": "tool_result", "tool_use_id": str(m.get("tool_call_id") or ""),
                       "content": m.get("content") if isinstance(m.get("content"), str) else json.dumps(m.get("content"))}]  # fmt: skip
            role = "user"
        elif role == "assistant":
            blocks = _blocks(m.get("content"))
            for tc in m.get("tool_calls") or []:
                fn = tc.get("function") or {}
                try:
                    args = json.loads(fn.get("arguments") or "{}")
                except ValueError:
                    args = {}
                blocks.append({"type": "tool_use", "id": tc.get("id"), "name": fn.get("name"), "input": args})
        else:
            role = "user"
            blocks = _blocks(m.get("content"))
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return ("\n\n".join(s for s in system if s) or None), out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice is None and parallel is None:
        return None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") or choice.get("name")
        out: dict[str, Any] = {"type": "tool", "name": name} if name else dict(choice)
    else:
        out = {"type": {"required": "any", "any": "any", "none": "none"}.get(str(choice), "auto")}
    if parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def _schema_of(fmt: dict[str, Any]) -> dict[str, Any]:
    if fmt.get("type") == "json_schema":
        return dict((fmt.get("json_schema") or {}).get("schema") or {"type": "object"})
    if fmt.get("type") == "json_object":
        return dict(fmt.get("schema") or {"type": "object"})
    return fmt


def build_body(call: ProviderCall) -> dict[str, Any]:
    """The JSON body of a Messages request."""
    p = call.params
    system, messages = convert_messages(call.messages)
    max_tokens = p.get("max_tokens") or p.get("max_completion_tokens") or DEFAULT_MAX_TOKENS
    body: dict[str, Any] = {"model": call.model, "messages": messages, "max_tokens": max_tokens,
                            "stream": call.stream}  # fmt: skip
    if system:
        body["system"] = system
    for ours, theirs in (("temperature", "temperature"), ("top_p", "top_p"), ("top_k", "top_k")):
        if p.get(ours) is not None:
            body[theirs] = p[ours]
    stop = p.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if p.get("user"):
        body["metadata"] = {"user_id": str(p["user"])}
    thinking = p.get("thinking")
    if thinking is None and p.get("reasoning_effort") in EFFORT_BUDGET:
        thinking = {"type": "enabled", "budget_tokens": EFFORT_BUDGET[p["reasoning_effort"]]}
    if thinking:
        body["thinking"] = thinking
        budget = int(thinking.get("budget_tokens") or 0) if isinstance(thinking, dict) else 0
        if budget and body["max_tokens"] <= budget:  # the answer needs room beyond the thinking
            body["max_tokens"] = budget + DEFAULT_MAX_TOKENS
    tools = [{"name": (t.get("function") or t).get("name"), "description": (t.get("function") or t).get("description", ""),
              "input_schema": (t.get("function") or t).get("parameters") or {"type": "object", "properties": {}}}
             for t in call.tools or []]  # fmt: skip
    choice = _tool_choice(p.get("tool_choice"), p.get("parallel_tool_calls"))
    if call.response_format and call.response_format.get("type") != "text":
        tools.append({"name": JSON_TOOL, "description": "Respond with the answer in this format.",
                      "input_schema": _schema_of(call.response_format)})  # fmt: skip
        if not call.tools:
            choice = {"type": "tool", "name": JSON_TOOL}
    if tools:
        body["tools"] = tools
    if choice is not None and tools:
        body["tool_choice"] = choice
    if p.get("n") not in (None, 1):
        raise BadParameterError("Anthropic answers one choice per request: drop n (or set n=1).")
    body.update(p.get("extra_body") or {})
    return body


class _Reader:
    """Turns Messages stream events into chunks; remembers each block's kind and the input tokens."""

    __slots__ = ("blocks", "calls", "tokens_in", "tokens_out")

    def __init__(self) -> None:
        self.blocks: dict[int, str] = {}  # index -> "text" | "tool" | "json" | "thinking"
        self.calls = 0
        self.tokens_in: int | None = None
        self.tokens_out: int | None = None

    def event(self, obj: dict[str, Any]) -> ProviderChunk | None:
        kind = obj.get("type")
        if kind == "content_block_delta":
            delta = obj.get("delta") or {}
            dtype = delta.get("type")
            block = self.blocks.get(obj.get("index", 0), "text")
            if dtype == "text_delta":
                return ProviderChunk(text=delta.get("text") or "")
            if dtype == "input_json_delta":
                piece = delta.get("partial_json") or ""
                if block == "json":
                    return ProviderChunk(text=piece)
                return ProviderChunk(tool_calls=[ToolCallDelta(index=obj.get("index", 0), arguments=piece)])
            if dtype == "thinking_delta":
                return ProviderChunk(reasoning=delta.get("thinking") or "")
            return None  # signature_delta, citations
        if kind == "content_block_start":
            started = obj.get("content_block") or {}
            index = obj.get("index", 0)
            btype = started.get("type")
            if btype == "tool_use":
                if started.get("name") == JSON_TOOL:
                    self.blocks[index] = "json"
                    return None
                self.blocks[index] = "tool"
                self.calls += 1
                return ProviderChunk(tool_calls=[ToolCallDelta(index=index, id=started.get("id"), name=started.get("name"))])
            self.blocks[index] = "thinking" if btype in ("thinking", "redacted_thinking") else "text"
            text = started.get("text") or ""
            return ProviderChunk(text=text) if text else None
        if kind == "message_start":
            usage = (obj.get("message") or {}).get("usage") or {}
            self._usage(usage)
            return None
        if kind == "message_delta":
            self._usage(obj.get("usage") or {})
            reason = (obj.get("delta") or {}).get("stop_reason")
            if reason:
                return ProviderChunk(finish_reason=self._finish(reason))
            return None
        if kind == "message_stop":
            if self.tokens_in is None and self.tokens_out is None:
                return None
            return ProviderChunk(usage=Usage(self.tokens_in, self.tokens_out))
        if kind == "error":
            raise _error(obj)
        return None  # ping, content_block_stop, unknown events

    def _usage(self, usage: dict[str, Any]) -> None:
        if "input_tokens" in usage and usage["input_tokens"] is not None:
            self.tokens_in = sum(int(usage.get(k) or 0) for k in ("input_tokens", "cache_creation_input_tokens",
                                                                  "cache_read_input_tokens"))  # fmt: skip
        if usage.get("output_tokens") is not None:
            self.tokens_out = int(usage["output_tokens"])

    def _finish(self, reason: str) -> str:
        if reason == "tool_use" and not self.calls:  # only the structured answer's tool: an ordinary end
            return "stop"
        return FINISH.get(reason, reason)


def _error(obj: dict[str, Any]) -> ProviderError:
    from nbplayground.core.errormap import from_status

    err = obj.get("error") or {}
    status = ERROR_STATUS.get(str(err.get("type")), 500)
    mapped = from_status(status, H.shorten(str(err.get("message") or err)), None, "Anthropic (mid-stream)")
    return mapped if isinstance(mapped, ProviderError) else ProviderError(str(mapped), status=status)


async def _events(resp: Any, deadline: H.ProgressDeadline) -> AsyncIterator[ProviderChunk]:
    reader = _Reader()
    ended = False
    async for _, payload in H.sse_events(resp.content):
        obj = H.loads_chunk(payload)
        chunk = reader.event(obj)
        if obj.get("type") == "message_stop":
            ended = True
        if chunk is not None:
            if chunk.text or chunk.tool_calls or chunk.reasoning or chunk.finish_reason:
                deadline.progress()
            yield chunk
        if ended:
            return


def _whole(raw: bytes, where: str, ctype: str) -> ProviderChunk:
    obj = H.loads_whole(raw, where, ctype)
    if obj.get("type") == "error":
        raise _error(obj)
    if obj.get("type") != "message" or not isinstance(obj.get("content"), list):
        raise H.unreadable(where, raw, ctype)
    reader = _Reader()
    out = ProviderChunk()
    texts, reasoning = [], []
    calls: list[ToolCallDelta] = []
    for block in obj["content"]:
        btype = block.get("type")
        if btype == "text":
            texts.append(block.get("text") or "")
        elif btype == "thinking":
            reasoning.append(block.get("thinking") or "")
        elif btype == "tool_use" and block.get("name") == JSON_TOOL:
            texts.append(json.dumps(block.get("input"), ensure_ascii=False))
        elif btype == "tool_use":
            reader.calls += 1
            calls.append(ToolCallDelta(index=len(calls), id=block.get("id"), name=block.get("name"),
                                       arguments=json.dumps(block.get("input") or {}, ensure_ascii=False)))  # fmt: skip
    out.text, out.reasoning, out.tool_calls = "".join(texts), "".join(reasoning), calls or None
    reason = obj.get("stop_reason")
    out.finish_reason = reader._finish(reason) if reason else None
    reader._usage(obj.get("usage") or {})
    if reader.tokens_in is not None or reader.tokens_out is not None:
        out.usage = Usage(reader.tokens_in, reader.tokens_out)
    return out


class NativeAnthropic(H.NativeHTTP):
    """Anthropic's Messages API over aiohttp (streamed, or one whole answer for batch rows)."""

    name = "native_anthropic"
    capabilities = Capabilities(streaming=True, tools=True, structured_output=True, reasoning=True)

    async def stream(self, call: ProviderCall) -> AsyncIterator[ProviderChunk]:
        """Stream a Messages answer as :class:`ProviderChunk` objects."""
        from nbplayground.core.errormap import from_http

        headers = {"anthropic-version": API_VERSION, "Accept": "text/event-stream" if call.stream else "application/json"}
        if call.api_key:
            headers["x-api-key"] = call.api_key
        headers.update(call.params.get("extra_headers") or {})
        async for chunk in H.exchange(
            messages_url(call.api_base), build_body(call), headers, timeout=call.timeout,
            total_timeout=call.total_timeout, events=_events, whole=_whole,
            error_of=lambda status, message, retry_after: from_http(status, message, retry_after, call),
        ):  # fmt: skip
            yield chunk


TRANSPORT = NativeAnthropic()
