"""A native transport for Google's Gemini API (``generateContent`` / ``streamGenerateContent?alt=sse``).

Why not litellm here: measured with ``benchmarks/bench_providers.py``, litellm's stream wrapper spends
3.6-4.6x the ``openai`` SDK's CPU per chunk; Gemini's stream is one ``GenerateContentResponse`` JSON per
SSE event, cheap to read with ``json.loads``. The same checks as the native OpenAI transport apply: the
answer's content type, progress (keep-alive comments do not count) and the provider's own finish reason.

The request is built from the OpenAI-style messages every surface uses: system turns become
``systemInstruction``, assistant turns ``model`` turns with ``functionCall`` parts, tool results
``functionResponse`` parts of a ``user`` turn. Gemini's thought signatures (which Gemini 3 needs back with
its function calls) travel inside the tool call id as ``<id>__thought__<signature>``, the form litellm
uses, so a thread stored in the history replays through either transport.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

from nbplayground.core.errors import (
    BadParameterError,
    NBPlaygroundError,
    ProviderError,
)
from nbplayground.core.transports import Capabilities
from nbplayground.core.transports import http as H
from nbplayground.core.types import ProviderCall, ProviderChunk, ToolCallDelta, Usage

DEFAULT_API_BASE = "https://generativelanguage.googleapis.com/v1beta"
#: Separates a tool call id from the thought signature carried with it (litellm's separator).
SIGNATURE_SEPARATOR = "__thought__"
#: Google's documented stand-in when a function call has no signature of its own (history from another model).
DUMMY_SIGNATURE = base64.b64encode(b"skip_thought_signature_validator").decode("ascii")

FINISH_REASONS = {
    "STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter", "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter", "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter", "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter", "LANGUAGE": "content_filter",
}  # fmt: skip
#: ``reasoning_effort`` -> ``thinkingBudget`` before Gemini 3 (litellm's values, so both transports agree).
THINKING_BUDGETS = {"none": 0, "disable": 0, "minimal": 128, "low": 1024, "medium": 2048, "high": 4096}
#: OpenAI names -> ``generationConfig`` names; every other OpenAI-only parameter is dropped.
GENERATION_PARAMS = {
    "temperature": "temperature", "top_p": "topP", "top_k": "topK", "max_tokens": "maxOutputTokens",
    "max_completion_tokens": "maxOutputTokens", "seed": "seed", "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}  # fmt: skip
#: ``thinking`` keys that are Gemini's own ``thinkingConfig`` fields (snake_case as the SDKs write them).
THINKING_FIELDS = {
    name: camel
    for camel, snake in (("includeThoughts", "include_thoughts"), ("thinkingBudget", "thinking_budget"),
                         ("thinkingLevel", "thinking_level"))
    for name in (camel, snake)
}  # fmt: skip
TOOL_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY", "any": "ANY"}
_BEFORE_GEMINI_3 = re.compile(r"^gemini-(?:[12](?:\.\d+)?|exp|(?:pro|flash)(?!-(?:lite-)?latest$))(?:-|$)")
_DATA_URI = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?(?:;[^,;]*)*?;base64,", re.IGNORECASE)


def is_gemini_3(model: str) -> bool:
    """Whether ``model`` is Gemini 3 or newer (function call ids and thought signatures are required there)."""
    name = model.rsplit("/", 1)[-1].lower()
    return name.startswith("gemini-") and not _BEFORE_GEMINI_3.match(name)


# -- request --------------------------------------------------------------------------------------------
def build_body(call: ProviderCall) -> dict[str, Any]:
    """The JSON body of a ``generateContent`` request."""
    params = call.params
    contents, system = wire_contents(call.messages, is_gemini_3(call.model))
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    config = generation_config(params, call.model)
    fmt = call.response_format or params.get("response_format")
    if fmt:
        config.update(json_output(fmt))
    if config:
        body["generationConfig"] = config
    if call.tools:
        body["tools"] = wire_tools(call.tools)
        choice = params.get("tool_choice")
        if choice is not None:
            body["toolConfig"] = {"functionCallingConfig": tool_config(choice)}
    extra = params.get("extra_body")
    if extra:
        _merge(body, extra)
    return body


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    """``extra_body`` merged as given: nested objects key by key (so a ``generationConfig`` adds to ours)."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            into[key] = {**into[key]}  # a copy: it may be the caller's own dict (a schema)
            _merge(into[key], value)
        else:
            into[key] = value


def generation_config(params: dict[str, Any], model: str) -> dict[str, Any]:
    """``generationConfig`` from OpenAI-style sampling parameters (OpenAI-only ones are dropped)."""
    config: dict[str, Any] = {}
    for name, wire in GENERATION_PARAMS.items():
        value = params.get(name)
        if value is not None:
            config[wire] = value
    stop = params.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    n = params.get("n")
    if n not in (None, 1):
        raise BadParameterError(
            f"Gemini answers once per request here: n must be 1, got {n!r} (run the prompt {n} times instead)."
        )
    thinking = thinking_config(params, model)
    if thinking:
        config["thinkingConfig"] = thinking
    return config


def thinking_config(params: dict[str, Any], model: str) -> dict[str, Any]:
    """``thinkingConfig`` from ``reasoning_effort`` and/or ``thinking`` (thoughts returned when asked for)."""
    config: dict[str, Any] = {}
    effort = params.get("reasoning_effort")
    if isinstance(effort, dict):  # the Responses API's {"effort": ..., "summary": ...}
        effort = effort.get("effort")
    if effort is not None:
        effort = str(effort).lower()
        off = effort in ("none", "disable")
        if is_gemini_3(model):  # Gemini 3 thinks in levels and cannot stop thinking: "off" is its lowest
            lowest = "minimal" if "flash" in model else "low"
            config["thinkingLevel"] = lowest if off else effort
        elif effort in THINKING_BUDGETS:
            lite = effort == "minimal" and "flash-lite" in model
            config["thinkingBudget"] = 512 if lite else THINKING_BUDGETS[effort]  # flash-lite's minimum
        else:
            raise BadParameterError(
                f"reasoning_effort must be one of {', '.join(THINKING_BUDGETS)} for {model}, got {effort!r}."
            )
        config["includeThoughts"] = not off
    thinking = params.get("thinking")
    if isinstance(thinking, bool):
        config["includeThoughts"] = thinking
    elif isinstance(thinking, dict):
        kind = thinking.get("type")
        budget = thinking.get("budget_tokens")
        if kind == "disabled":
            config["includeThoughts"] = False
            if not is_gemini_3(model):
                config["thinkingBudget"] = 0
        elif kind in ("enabled", "adaptive"):
            config["includeThoughts"] = True
            if isinstance(budget, int):
                config.pop("thinkingLevel", None)  # the API takes a budget or a level, not both
                config["thinkingBudget"] = budget
        for key, value in thinking.items():  # Gemini's own names, as given (either case)
            if key in THINKING_FIELDS:
                config[THINKING_FIELDS[key]] = value
    return config


def json_output(fmt: dict[str, Any]) -> dict[str, Any]:
    """``generationConfig`` fields for structured output: a JSON schema, or an OpenAI-shaped format."""
    kind = fmt.get("type")
    if kind == "text":
        return {}
    schema: Any = fmt
    if kind == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
    elif kind == "json_object":
        schema = fmt.get("schema")  # llama-cpp-python's {"type": "json_object", "schema": ...}
    out: dict[str, Any] = {"responseMimeType": "application/json"}
    if isinstance(schema, dict):
        out["responseJsonSchema"] = schema
    return out


def wire_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI function tools as one ``functionDeclarations`` tool; Gemini-native tools (``googleSearch``) as given."""
    declarations: list[dict[str, Any]] = []
    native: list[dict[str, Any]] = []
    for tool in tools:
        fn = tool.get("function") if tool.get("type", "function") == "function" else None
        if not isinstance(fn, dict):
            native.append(tool)
            continue
        decl: dict[str, Any] = {"name": fn["name"]}
        if fn.get("description"):
            decl["description"] = fn["description"]
        if fn.get("parameters"):
            decl["parametersJsonSchema"] = fn["parameters"]  # JSON schema as given (not OpenAPI's subset)
        declarations.append(decl)
    return ([{"functionDeclarations": declarations}] if declarations else []) + native


def tool_config(choice: Any) -> dict[str, Any]:
    """``functionCallingConfig`` from an OpenAI ``tool_choice`` (a mode, or one named function)."""
    if isinstance(choice, str) and choice.lower() in TOOL_MODES:
        return {"mode": TOOL_MODES[choice.lower()]}
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") or choice.get("name")
        if name:
            return {"mode": "ANY", "allowedFunctionNames": [name]}
        kind = str(choice.get("type", "")).lower()
        if kind in TOOL_MODES:
            return {"mode": TOOL_MODES[kind]}
    raise BadParameterError(
        f"tool_choice must be 'auto', 'none', 'required' or {{'type': 'function', 'function': {{'name': ...}}}}, "
        f"got {choice!r}."
    )


def wire_contents(
    messages: list[dict[str, Any]], gemini_3: bool = False
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``contents`` and the ``systemInstruction`` parts for OpenAI-style messages.

    Consecutive turns of one role are joined (several tool results answer one model turn together).
    """
    contents: list[dict[str, Any]] = []
    system: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name, from the assistant turns so far

    def add(role: str, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return  # Gemini rejects a turn without parts
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})

    for message in messages:
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system.extend(_parts(content))
        elif role == "assistant":
            add("model", _parts(content) + _call_parts(message.get("tool_calls") or [], names, gemini_3))
        elif role in ("tool", "function"):
            call_id = str(message.get("tool_call_id") or "")
            name = names.get(call_id) or message.get("name")
            if not name:
                raise BadParameterError(
                    f"A tool result answers tool_call_id {call_id!r}, but no earlier assistant turn has a tool call "
                    "with that id: add that assistant turn (with its tool_calls) before it."
                )
            response: dict[str, Any] = {"name": name, "response": {"result": _text(content)}}
            if gemini_3 and call_id:
                response["id"] = call_id.split(SIGNATURE_SEPARATOR, 1)[0]
            add("user", [{"functionResponse": response}])
        else:
            add("user", _parts(content))
    return contents, system


def _call_parts(
    tool_calls: list[dict[str, Any]], names: dict[str, str], gemini_3: bool
) -> list[dict[str, Any]]:
    """``functionCall`` parts for an assistant turn's OpenAI ``tool_calls``, with their thought signatures."""
    parts: list[dict[str, Any]] = []
    for tc in tool_calls:
        fn = tc.get("function") or {}
        call_id = str(tc.get("id") or "")
        name = str(fn.get("name") or "")
        names[call_id] = name
        clean_id, _, signature = call_id.partition(SIGNATURE_SEPARATOR)
        call: dict[str, Any] = {"name": name, "args": _arguments(fn.get("arguments"))}
        if gemini_3 and clean_id:
            call["id"] = clean_id  # older models reject the field
        part: dict[str, Any] = {"functionCall": call}
        if signature:
            part["thoughtSignature"] = signature
        parts.append(part)
    if gemini_3 and parts and not any("thoughtSignature" in p for p in parts):
        parts[0]["thoughtSignature"] = DUMMY_SIGNATURE  # Gemini 3 refuses a function call turn without one
    return parts


def _arguments(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    try:
        value = json.loads(arguments) if arguments else {}
    except (TypeError, ValueError):
        value = None
    # Gemini takes arguments only as an object; a call it never made (invalid JSON) is sent without them.
    return value if isinstance(value, dict) else {}


def _text(content: Any) -> str:
    """The text of a tool result (a string, or text parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in content)
    return json.dumps(content)


def _parts(content: Any) -> list[dict[str, Any]]:
    """Gemini parts for a message's content (text, images, audio, files)."""
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [{"text": content}]
    if not isinstance(content, list):
        return [{"text": str(content)}]
    parts: list[dict[str, Any]] = []
    for item in content:
        if isinstance(item, str):
            parts.append({"text": item})
            continue
        kind = item.get("type")
        if kind == "text":
            if item.get("text"):
                parts.append({"text": item["text"]})
        elif kind == "image_url":
            image = item.get("image_url")
            parts.append(_media(image.get("url") if isinstance(image, dict) else image, "image/jpeg"))
        elif kind == "input_audio":
            audio = item.get("input_audio") or {}
            parts.append(
                {
                    "inlineData": {
                        "mimeType": f"audio/{audio.get('format') or 'wav'}",
                        "data": audio.get("data", ""),
                    }
                }
            )
        elif kind == "file":
            file = item.get("file") or {}
            parts.append(_media(file.get("file_data") or file.get("file_id"), "application/pdf"))
        elif kind is None and item:  # already a Gemini part ({"inlineData": ...}, {"fileData": ...})
            parts.append(item)
        else:
            raise BadParameterError(
                f"Gemini cannot take a message part of type {kind!r} here; use text, image_url, input_audio or file."
            )
    return parts


def _media(url: Any, default_mime: str) -> dict[str, Any]:
    """A data: URI inline, anything else by reference (a Files API URI, or a public URL newer models fetch)."""
    url = str(url or "")
    found = _DATA_URI.match(url)
    if found:
        return {"inlineData": {"mimeType": found.group(1) or default_mime, "data": url[found.end() :]}}
    if not url:
        raise BadParameterError("A media part has no URL or data: give a data: URI (base64) or a file URI.")
    mime = mimetypes.guess_type(url.split("?", 1)[0])[0] or default_mime
    return {"fileData": {"mimeType": mime, "fileUri": url}}


# -- response -------------------------------------------------------------------------------------------
class _Reader:
    """Turns ``GenerateContentResponse`` objects into chunks, keeping what spans them (calls, usage)."""

    __slots__ = ("_meta", "_tag", "call", "calls")

    def __init__(self, call: ProviderCall) -> None:
        self.call = call
        self.calls = 0
        self._meta: dict[str, Any] | None = None  # the latest usageMetadata, not yet handed on
        self._tag = uuid.uuid4().hex[:8]  # tool call ids unique across the rounds of a run

    def take_usage(self) -> Usage | None:
        """The latest token counts (once): every response repeats them, so they are read at the finish."""
        meta, self._meta = self._meta, None
        if meta is None:
            return None
        return Usage(
            tokens_in=(meta.get("promptTokenCount") or 0) + (meta.get("toolUsePromptTokenCount") or 0),
            tokens_out=(meta.get("candidatesTokenCount") or 0) + (meta.get("thoughtsTokenCount") or 0),
        )

    def chunk(self, obj: dict[str, Any]) -> ProviderChunk | None:
        """The chunk for one response object (None when it carries nothing new); an error object raises."""
        meta = obj.get("usageMetadata")
        if meta:
            self._meta = meta
        candidates = obj.get("candidates")
        if not candidates:
            if "error" in obj:
                raise _error(obj, self.call)
            feedback = obj.get("promptFeedback")
            if feedback and feedback.get("blockReason"):  # the prompt itself was blocked: no candidate at all
                return self._finish(ProviderChunk(), "content_filter")
            return None
        candidate = candidates[0]
        text = reasoning = ""
        calls: list[ToolCallDelta] | None = None
        for part in (candidate.get("content") or {}).get("parts") or ():
            if "text" in part:
                if part.get("thought"):
                    reasoning += part["text"]
                else:
                    text += part["text"]
            elif "functionCall" in part:
                fc = part["functionCall"]
                call_id = fc.get("id") or f"call_{self._tag}_{self.calls}"
                signature = part.get("thoughtSignature")
                if signature:
                    call_id = f"{call_id}{SIGNATURE_SEPARATOR}{signature}"
                delta = ToolCallDelta(
                    index=self.calls,
                    id=call_id,
                    name=fc.get("name"),
                    arguments=json.dumps(fc.get("args") or {}),
                )
                self.calls += 1
                calls = [delta] if calls is None else [*calls, delta]
        finish = candidate.get("finishReason")
        if not (text or reasoning or calls or finish):
            return None
        out = ProviderChunk(text=text, tool_calls=calls, reasoning=reasoning)
        if finish:
            mapped = FINISH_REASONS.get(finish) or finish.lower()
            self._finish(out, "tool_calls" if self.calls and mapped == "stop" else mapped)
        return out

    def _finish(self, out: ProviderChunk, reason: str) -> ProviderChunk:
        out.finish_reason = reason
        out.usage = self.take_usage()
        return out


def _error(data: Any, call: ProviderCall) -> NBPlaygroundError:
    """The error for an ``{"error": {...}}`` object sent with a 200 (in a stream, or as the whole body):
    mapped like the same error sent with its HTTP status."""
    from nbplayground.core.errormap import from_http

    err = data.get("error") if isinstance(data, dict) else None
    code = err.get("code") if isinstance(err, dict) else None
    message = H.error_message(json.dumps(data))
    if isinstance(code, int) and 400 <= code < 600:
        return from_http(code, message, H.retry_delay(data), call)
    return ProviderError(f"The provider reported an error: {message}")


async def _events(
    resp: Any, deadline: H.ProgressDeadline, call: ProviderCall
) -> AsyncIterator[ProviderChunk]:
    """The chunks of Gemini's SSE stream (it ends with the connection: there is no ``[DONE]``)."""
    reader = _Reader(call)
    async for _, payload in H.sse_events(resp.content):
        chunk = reader.chunk(H.loads_chunk(payload))
        if chunk is not None:
            deadline.progress()
            yield chunk
    usage = reader.take_usage()
    if usage is not None:  # counts sent after the finish
        yield ProviderChunk(usage=usage)


def _whole(raw: bytes, where: str, ctype: str, call: ProviderCall) -> ProviderChunk:
    """A whole ``GenerateContentResponse`` as one chunk; an error body or a non-answer raises."""
    obj = H.loads_whole(raw, where, ctype)
    if not ("candidates" in obj or "promptFeedback" in obj or "error" in obj):
        raise H.unreadable(where, raw, ctype)
    reader = _Reader(call)
    out = reader.chunk(obj) or ProviderChunk()
    usage = reader.take_usage()
    if usage is not None:  # a whole answer without a finish still reports its counts
        out.usage = usage
    return out


# -- transport ------------------------------------------------------------------------------------------
class NativeGemini(H.NativeHTTP):
    """Gemini chat over aiohttp (streamed, or one whole answer for batch rows)."""

    name = "native_gemini"
    capabilities = Capabilities(streaming=True, tools=True, structured_output=True, reasoning=True)

    def stream(self, call: ProviderCall) -> AsyncIterator[ProviderChunk]:
        """Stream a Gemini answer as :class:`ProviderChunk` objects, checking what the server sends."""
        from nbplayground.core.errormap import from_http

        base = (call.api_base or DEFAULT_API_BASE).rstrip("/")
        model = call.model if call.model.startswith(("models/", "tunedModels/")) else f"models/{call.model}"
        action = ":streamGenerateContent?alt=sse" if call.stream else ":generateContent"
        headers = {"Accept": "text/event-stream" if call.stream else "application/json"}
        if call.api_key:
            headers["x-goog-api-key"] = call.api_key  # never in the URL: URLs end up in logs
        headers.update(call.params.get("extra_headers") or {})
        return H.exchange(
            f"{base}/{model}{action}", build_body(call), headers, timeout=call.timeout,
            total_timeout=call.total_timeout,
            events=lambda resp, deadline: _events(resp, deadline, call),
            whole=lambda raw, where, ctype: _whole(raw, where, ctype, call),
            error_of=lambda status, message, retry_after: from_http(status, message, retry_after, call),
        )  # fmt: skip


TRANSPORT = NativeGemini()
