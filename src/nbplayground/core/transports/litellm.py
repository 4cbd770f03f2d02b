"""The litellm transport: chat for every wire format but OpenAI's, and every media kind.

litellm is imported on first use only, in a thread (``prepare``; it takes seconds, and on the engine's
loop it would freeze every other run in flight), with ``LITELLM_LOCAL_MODEL_COST_MAP`` set so it never
fetches its price map from the network. nbplayground owns retries, so litellm's are turned off.

litellm makes up a finish reason when a stream ends (``stop``) and hides a provider's 429 raised
mid-stream inside a ``MidStreamFallbackError``: the engine therefore judges completion by what arrived
(an empty answer is an error) and ``errormap`` maps the original exception.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from nbplayground.core.errormap import from_litellm
from nbplayground.core.errors import NBPlaygroundError, ProviderTimeoutError, StreamError
from nbplayground.core.providers import NO_KEY, key_only
from nbplayground.core.transports import Capabilities
from nbplayground.core.transports import http as H
from nbplayground.core.transports.native_openai import json_schema_format
from nbplayground.core.types import Media, MediaOutput, ProviderCall, ProviderChunk, ToolCallDelta, Usage

_import_lock = threading.Lock()
_litellm: Any = None
_warmed: set[str] = set()  # providers whose first-call imports are done
_loops: set[Any] = set()  # event loops litellm's cached HTTP clients live on (closed there at exit)


async def _warm(litellm: Any, model: str) -> None:
    response = await litellm.acompletion(
        model=model, messages=[{"role": "user", "content": "warm"}], stream=True, mock_response="ok",
        api_key=NO_KEY,
    )  # fmt: skip
    async for _ in response:
        pass


def _close_clients() -> None:
    """At exit, close litellm's cached async HTTP clients on the loops that own them.

    litellm's own exit hook closes them from a new loop, which leaves their transports to be collected
    during shutdown and prints "Exception ignored ..." noise; registered after litellm's import, this
    runs first.
    """
    from litellm.llms.custom_httpx.async_client_cleanup import close_litellm_async_clients

    for loop in list(_loops):
        if loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(close_litellm_async_clients(), loop).result(timeout=2)
            except Exception:
                pass


def get_litellm() -> Any:
    """Import and quieten litellm once (blocking: call it from a thread, see ``LiteLLMTransport.prepare``)."""
    global _litellm
    if _litellm is None:
        with _import_lock:
            if _litellm is None:
                os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
                import logging

                import litellm

                litellm.suppress_debug_info = True
                litellm.telemetry = False
                litellm.drop_params = True
                for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "litellm", "httpx"):
                    logging.getLogger(name).setLevel(logging.WARNING)
                import atexit

                atexit.register(_close_clients)
                _litellm = litellm
    return _litellm


def _kwargs(call: ProviderCall) -> dict[str, Any]:
    params = dict(call.params)
    params.pop("mock_delay_ms", None)
    kw: dict[str, Any] = {"model": call.litellm_model or f"{call.provider}/{call.model}", **params}
    if call.api_base:
        kw["api_base"] = call.api_base
    if call.api_key:
        kw["api_key"] = call.api_key
    elif call.api_base and key_only(call.provider):
        kw["api_key"] = (
            NO_KEY  # a keyless local endpoint: litellm would otherwise refuse ("Missing credentials")
        )
    if call.timeout:
        kw["timeout"] = call.timeout
    kw.update(call.options)
    kw["num_retries"] = 0
    kw["max_retries"] = 0
    return kw


class LiteLLMTransport:
    """Chat and media through ``litellm``."""

    name = "litellm"
    capabilities = Capabilities(
        streaming=True, tools=True, structured_output=True, reasoning=True,
        media=frozenset({"image", "speech", "transcription"}),
    )  # fmt: skip

    def is_ready(self, call: ProviderCall | None = None) -> bool:
        """Whether litellm is imported, and warmed for the call's provider."""
        return _litellm is not None and (call.provider if call is not None else "openai") in _warmed

    def prepare(self, call: ProviderCall | None = None) -> None:
        """Import litellm and warm its call path for the provider: seconds, once, in a thread.

        ``acompletion`` imports ~60 more modules on its first call (~0.4 s); one answer with litellm's
        ``mock_response`` (no network) pays that here instead of on the engine's loop.
        """
        litellm = get_litellm()
        provider = call.provider if call is not None else "openai"
        model = (call.litellm_model if call is not None else None) or "openai/gpt-4o-mini"
        with _import_lock:
            if provider in _warmed:
                return
            try:
                asyncio.run(_warm(litellm, model))
            except Exception:  # warming is an optimisation: the real call reports real problems
                pass
            _warmed.add(provider)

    async def stream(self, call: ProviderCall) -> AsyncIterator[ProviderChunk]:
        """Stream a chat completion through ``litellm.acompletion``, bounded by a progress deadline."""
        litellm = get_litellm()
        _loops.add(asyncio.get_running_loop())
        kw = _kwargs(call)
        kw.update(messages=call.messages, stream=call.stream)
        if call.stream:
            kw["stream_options"] = {"include_usage": True}
        if call.tools:
            kw["tools"] = call.tools
        if call.response_format:
            kw["response_format"] = json_schema_format(call.response_format)
        deadline = H.ProgressDeadline(call.timeout, call.total_timeout)
        response: Any = None
        try:
            async with deadline:
                try:
                    response = await litellm.acompletion(**kw)
                except Exception as exc:
                    raise from_litellm(exc, call) from None
                if not call.stream:
                    deadline.progress()
                    yield _whole(response)
                    return
                try:
                    async for chunk in response:
                        out = _chunk(chunk)
                        if out is not None:
                            if out.text or out.tool_calls or out.finish_reason or out.reasoning:
                                deadline.progress()
                            yield out
                except NBPlaygroundError:
                    raise
                except Exception as exc:
                    mapped = from_litellm(exc, call)
                    if isinstance(mapped, ProviderTimeoutError):  # httpx's read timeout: say it as ours does
                        raise deadline.error() from None
                    raise mapped from None
        finally:
            close = getattr(response, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception:
                    pass

    async def generate(self, call: ProviderCall) -> MediaOutput:
        """Image generation, text-to-speech or transcription through litellm."""
        return await generate(call)


def _whole(response: Any) -> ProviderChunk:
    """A non-streamed litellm ModelResponse as one chunk."""
    choices = getattr(response, "choices", None) or []
    out = ProviderChunk()
    if choices:
        msg = getattr(choices[0], "message", None)
        out.text = (getattr(msg, "content", None) or "") if msg is not None else ""
        out.reasoning = (getattr(msg, "reasoning_content", None) or "") if msg is not None else ""
        out.finish_reason = getattr(choices[0], "finish_reason", None)
        calls = getattr(msg, "tool_calls", None) if msg is not None else None
        if calls:
            out.tool_calls = [
                ToolCallDelta(index=i, id=getattr(tc, "id", None), name=getattr(tc.function, "name", None),
                              arguments=getattr(tc.function, "arguments", None) or "")
                for i, tc in enumerate(calls)
            ]  # fmt: skip
    usage = getattr(response, "usage", None)
    if usage:
        out.usage = Usage(
            tokens_in=getattr(usage, "prompt_tokens", None),
            tokens_out=getattr(usage, "completion_tokens", None),
        )
    return out


def _chunk(chunk: Any) -> ProviderChunk | None:
    choices = getattr(chunk, "choices", None) or []
    usage = getattr(chunk, "usage", None)
    out: ProviderChunk | None = None
    if choices:
        choice = choices[0]
        delta = getattr(choice, "delta", None)
        text = (getattr(delta, "content", None) or "") if delta is not None else ""
        reasoning = (getattr(delta, "reasoning_content", None) or "") if delta is not None else ""
        finish = getattr(choice, "finish_reason", None)
        calls = None
        raw_calls = getattr(delta, "tool_calls", None) if delta is not None else None
        if raw_calls:
            calls = []
            for tc in raw_calls:
                fn = getattr(tc, "function", None)
                calls.append(
                    ToolCallDelta(
                        index=getattr(tc, "index", 0) or 0,
                        id=getattr(tc, "id", None),
                        name=getattr(fn, "name", None) if fn is not None else None,
                        arguments=(getattr(fn, "arguments", None) or "") if fn is not None else "",
                    )
                )
        if text or finish or calls or reasoning:
            out = ProviderChunk(text=text, tool_calls=calls, finish_reason=finish, reasoning=reasoning)
    if usage:
        u = Usage(
            tokens_in=getattr(usage, "prompt_tokens", None),
            tokens_out=getattr(usage, "completion_tokens", None),
        )
        if out is None:
            out = ProviderChunk(usage=u)
        else:
            out.usage = u
    return out


async def generate(call: ProviderCall) -> MediaOutput:
    """Image generation, text-to-speech or transcription through litellm."""
    litellm = get_litellm()
    _loops.add(asyncio.get_running_loop())
    kw = _kwargs(call)
    try:
        if call.kind == "image":
            resp = await litellm.aimage_generation(prompt=_text_input(call), **kw)
            item = resp.data[0]
            data, mime = await _image_bytes(item)
            revised = getattr(item, "revised_prompt", None)
            return MediaOutput(
                media=Media(mime=mime, data=data, params=dict(call.params), revised_prompt=revised)
            )
        if call.kind == "speech":
            params = dict(call.params)
            kw.setdefault("voice", params.get("voice", "alloy"))
            resp = await litellm.aspeech(input=_text_input(call), **kw)
            data = resp.content if hasattr(resp, "content") else await resp.aread()
            fmt = params.get("response_format_audio") or "mp3"
            mime = "audio/wav" if data[:4] == b"RIFF" else f"audio/{'mpeg' if fmt == 'mp3' else fmt}"
            return MediaOutput(media=Media(mime=mime, data=data, params=params))
        if call.kind == "transcription":
            name, data = _audio_input(call.input)
            resp = await litellm.atranscription(file=(name, data), **kw)
            return MediaOutput(text=getattr(resp, "text", "") or "")
    except NBPlaygroundError:
        raise
    except Exception as exc:
        raise from_litellm(exc, call) from None
    raise StreamError(f"Unsupported kind {call.kind!r}.")


def _text_input(call: ProviderCall) -> str:
    from nbplayground.core.plan import media_input

    return call.input if isinstance(call.input, str) else media_input(call.messages)


def _audio_input(value: Any) -> tuple[str, bytes]:
    if isinstance(value, bytes | bytearray):
        return "audio.wav", bytes(value)
    if isinstance(value, Media):
        return "audio." + value.mime.split("/")[-1], value.data
    path = Path(str(value))
    return path.name, path.read_bytes()


def image_mime(data: bytes, fallback: str = "image/png") -> str:
    """The image type from its first bytes."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data.lstrip()[:4] == b"<svg" or data.lstrip()[:5] == b"<?xml":
        return "image/svg+xml"
    return fallback


async def _image_bytes(item: Any) -> tuple[bytes, str]:
    import base64

    b64 = getattr(item, "b64_json", None)
    if b64:
        data = base64.b64decode(b64)
        return data, image_mime(data)
    url = getattr(item, "url", None)
    if not url:
        raise StreamError("The provider returned an image with neither data nor URL.")
    if url.startswith("data:"):
        header, _, payload = url.partition(",")
        data = base64.b64decode(payload) if header.endswith(";base64") else payload.encode()
        return data, header[5:].split(";")[0] or image_mime(data)
    async with H.session().get(url) as resp:
        resp.raise_for_status()
        data = await resp.read()
        return data, resp.headers.get("content-type", "").split(";")[0] or image_mime(data)


TRANSPORT = LiteLLMTransport()
