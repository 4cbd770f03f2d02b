"""HTTP helpers shared by the transports: one pooled session, Retry-After, error bodies, progress deadlines.

This module imports nothing from the engine (nor from the transports): the engine, the error mapping and
every transport import it, never the other way round.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import sys
import time
from collections.abc import AsyncIterator, Callable
from itertools import pairwise
from typing import Any

from nbplayground.core import errors as E
from nbplayground.core.types import MediaOutput, ProviderCall

DEFAULT_TIMEOUT = 120.0
CONNECT_TIMEOUT = 10.0
#: How much of an unreadable body is kept for debugging (never in the error message itself).
DEBUG_BYTES = 300

_sessions: dict[int, Any] = {}


def session() -> Any:
    """One pooled aiohttp session per event loop (the engine runs a single background loop).

    aiohttp rather than httpx: measured at 64 concurrent requests on one local server, httpx's pool
    spent ~9 ms of CPU per request against aiohttp's ~0.17 ms, and on 2 cores the client's CPU per
    request is what decides batch throughput.
    """
    import aiohttp

    loop = asyncio.get_running_loop()
    sess = _sessions.get(id(loop))
    if sess is None or sess.closed:
        sess = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=512, limit_per_host=0, enable_cleanup_closed=True),
            json_serialize=json.dumps,
        )
        if not _sessions:
            import atexit

            atexit.register(_close_sessions, loop)
        _sessions[id(loop)] = sess
    return sess


def _close_sessions(loop: asyncio.AbstractEventLoop) -> None:
    """Close pooled connections at exit (on the loop that owns them), quietly."""
    for sess in list(_sessions.values()):
        if not sess.closed and loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(sess.close(), loop).result(timeout=2)
            except Exception:
                pass
    _sessions.clear()


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` / ``retry-after`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from datetime import UTC, datetime
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, (when - datetime.now(UTC)).total_seconds())


#: Lines of a long validation error that say what was wrong (pydantic, FastAPI, JSON-schema style).
_RELEVANT = re.compile(
    r"input should|field required|is required|invalid|must be|not allowed|expected|unexpected|"
    r"extra inputs|not supported|unsupported|unknown|missing|exceed|too (long|many|large)|\w+\.\d+\.\w+",
    re.IGNORECASE,
)
MAX_MESSAGE = 500


_PYDANTIC_LOC = re.compile(r"^[\w.\[\]-]+$")  # "messages.1.ChatCompletionRequestAssistantMessage.content"


def _pydantic_errors(lines: list[str]) -> list[tuple[int, str]]:
    """(rank, "loc: message") of a pydantic dump; rank 0 = says what is wrong, 1 = a missing field, 2 = a
    union member's discriminator that merely does not match (``literal_error``), dropped."""
    out = []
    for loc, msg in pairwise(lines):
        if _PYDANTIC_LOC.match(loc) and "[type=" in msg:
            rank = 2 if "type=literal_error" in msg else 1 if "type=missing" in msg else 0
            out.append((rank, f"{loc}: {msg}"))
    return out


def shorten(message: str, limit: int = MAX_MESSAGE) -> str:
    """A long error message cut to ``limit`` characters, keeping the lines that say what was wrong.

    Local servers return pydantic dumps of many lines where the one that matters (``messages.2...content:
    Input should be a valid string``) is rarely in the first 500 characters: the errors that say what is
    wrong come first, then missing fields; a union's non-matching members and doc links are dropped.
    """
    message = message.strip()
    if len(message) <= limit:
        return message
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    errors = _pydantic_errors(lines)
    if errors:
        keep = [lines[0][:200]] + [e[:200] for rank, e in sorted(errors, key=lambda x: x[0]) if rank < 2]
    else:
        keep = [lines[0][:200]] + [ln[:200] for ln in lines[1:] if _RELEVANT.search(ln)]
    out = " | ".join(dict.fromkeys(keep))
    return out[:limit] if len(keep) > 1 else message[:limit]


def _message_of(data: Any) -> str | None:
    if isinstance(data, list) and data:  # Gemini answers errors as a one-item list
        data = data[0]
    if not isinstance(data, dict):
        return None
    err = data.get("error", data)
    if isinstance(err, dict):
        msg = err.get("message") or err.get("detail") or err.get("msg")
        if isinstance(msg, list):  # FastAPI's 422: a list of {loc, msg}
            return "; ".join(
                f"{'.'.join(str(p) for p in m.get('loc', []))}: {m.get('msg')}"
                if isinstance(m, dict)
                else str(m)
                for m in msg
            )
        return str(msg) if msg else json.dumps(err)[:MAX_MESSAGE]
    return str(err)


def retry_delay(data: Any) -> float | None:
    """The wait an error body asks for: Google's ``RetryInfo.retryDelay`` ("30s"), where its 429s put it."""
    if isinstance(data, list) and data:
        data = data[0]
    err = data.get("error") if isinstance(data, dict) else None
    for detail in (err.get("details") or []) if isinstance(err, dict) else []:
        delay = detail.get("retryDelay") if isinstance(detail, dict) else None
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return max(0.0, float(delay[:-1]))
            except ValueError:
                return None
    return None


def error_message(body: str) -> str:
    """The human part of a provider's error body (OpenAI / Anthropic / Gemini / FastAPI / plain text)."""
    try:
        data = json.loads(body)
    except (ValueError, TypeError):
        return shorten(body)
    found = _message_of(data)
    return shorten(found if found is not None else str(data))


def first_bytes(body: bytes | str) -> str:
    """The start of a body for a debug field: printable, one line, at most :data:`DEBUG_BYTES` long."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return " ".join(text[:DEBUG_BYTES].split())


def media_type(headers: Any) -> str:
    """The response's media type, lower case, without parameters ('' when absent)."""
    value = headers.get("content-type", "") if headers is not None else ""
    return str(value).split(";", 1)[0].strip().lower()


def unreadable(what: str, body: bytes | str, content_type: str = "") -> E.EmptyAnswerError:
    """The error for a 200 answer that is not the wire format asked for (an HTML page, a torn body)."""
    looks_html = "html" in content_type or first_bytes(body)[:15].lower().startswith(("<!doctype", "<html"))
    kind = "an HTML page" if looks_html else f"a body it cannot read ({content_type or 'no content type'})"
    return E.EmptyAnswerError(
        f"The provider returned an empty or unreadable answer: {what} sent {kind} instead of a model answer "
        "(a proxy, login page or wrong api_base?).",
        detail=first_bytes(body),
    )


class ProgressDeadline:
    """Bounds the time between pieces of real progress, and optionally the whole call.

    Use as ``async with ProgressDeadline(timeout, total) as deadline:`` around a stream and call
    ``deadline.progress()`` for every piece of content, tool call or finish; keep-alive comments do not
    count, so a server that sends only comments after some text ends in a timeout instead of hanging.
    ``started`` tells whether any byte came before the stall (a stall before the first byte may be
    retried; one after output may not).
    """

    __slots__ = ("_cm", "_total_at", "started", "timed_out", "timeout", "total")

    def __init__(self, timeout: float | None, total: float | None = None) -> None:
        self.timeout = timeout or DEFAULT_TIMEOUT
        self.total = total
        self.started = False
        self.timed_out = False
        self._cm: Any = None
        self._total_at = None if total is None else time.monotonic() + total

    def _next(self) -> float:
        loop = asyncio.get_running_loop()
        at = loop.time() + self.timeout
        if self._total_at is not None:
            at = min(at, loop.time() + max(0.0, self._total_at - time.monotonic()))
        return at

    async def __aenter__(self) -> ProgressDeadline:
        self._cm = asyncio.timeout_at(self._next())
        await self._cm.__aenter__()
        return self

    def progress(self) -> None:
        """A piece of real progress arrived: the deadline moves ``timeout`` seconds ahead."""
        self.started = True
        self._cm.reschedule(self._next())

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        try:
            await self._cm.__aexit__(exc_type, exc, tb)
        except TimeoutError:
            self.timed_out = True
            raise self.error() from None
        return False

    def error(self) -> E.ProviderTimeoutError:
        """The timeout error: before the first byte (retryable once) or a stall after some output."""
        if self._total_at is not None and time.monotonic() >= self._total_at - 0.001:
            return E.ProviderTimeoutError(
                f"The run took longer than total_timeout={self.total:g} s; raise params['total_timeout'].",
                first_byte=not self.started,
            )
        if not self.started:
            return E.ProviderTimeoutError(
                f"The provider sent nothing for {self.timeout:g} s after the request; raise params['timeout'] "
                "or check that the server is not overloaded.",
                first_byte=True,
            )
        return E.ProviderTimeoutError(
            f"The stream stalled: no new output for {self.timeout:g} s (keep-alives do not count); raise "
            "params['timeout'] or try again.",
            first_byte=False,
        )


async def lines(content: Any) -> AsyncIterator[bytes]:
    """The lines of a streamed body (without their line ends), as they arrive; the last one even unterminated."""
    buf = b""
    async for data in content.iter_any():
        buf += data
        if b"\n" not in data:
            continue
        *complete, buf = buf.split(b"\n")
        for line in complete:
            yield line.rstrip(b"\r")
    if buf.strip():
        yield buf


@functools.lru_cache(maxsize=256)  # every request asks it of the same few URLs (~15 µs each time)
def host_of(url: str | None) -> str:
    """``scheme://host:port`` of a URL (no path, no credentials), for error messages."""
    if not url:
        return ""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "the configured endpoint"
    return f"{parts.scheme}://{host}{port}" if host else "the configured endpoint"


_DNS = ("name or service not known", "nodename nor servname", "getaddrinfo failed", "temporary failure in name",
        "no address associated", "name resolution")  # fmt: skip


def unreachable(exc: BaseException, where: str) -> E.NBPlaygroundError | None:
    """The error for a request that never reached a server (bad URL, DNS, refused connection), else None.

    None of these is retried: nothing was sent, and trying again a moment later rarely helps (the
    message says what to check instead).
    """
    name = type(exc).__name__
    text = f"{exc}".lower()
    chain = [exc, exc.__cause__, getattr(exc, "os_error", None)]
    if name in ("InvalidURL", "InvalidUrlClientError", "NonHttpUrlClientError", "UnsupportedProtocol",
                "LocalProtocolError") or "invalid url" in text or "unsupported protocol" in text:  # fmt: skip
        return E.UnreachableError(f"The endpoint address {where} is not a valid http(s) URL; fix api_base.")
    if name == "ClientConnectorDNSError" or any(d in text for d in _DNS):
        return E.UnreachableError(
            f"Could not resolve the host of {where} (DNS); check api_base and your network."
        )
    refused = name in ("ClientConnectorError", "ConnectError", "ConnectionRefusedError") or any(
        isinstance(c, ConnectionRefusedError) for c in chain
    )
    if refused and ("refused" in text or any(isinstance(c, ConnectionRefusedError) for c in chain)):
        return E.UnreachableError(
            f"Could not connect to {where} (connection refused): is the server running, and is api_base right?"
        )
    return None


#: Maps an HTTP error answer (status, the provider's message, Retry-After) to the error to raise.
ErrorOf = Callable[[int, str, "float | None"], E.NBPlaygroundError]


async def exchange(
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    *,
    timeout: float | None,
    total_timeout: float | None,
    events: Callable[[Any, ProgressDeadline], AsyncIterator[Any]],
    whole: Callable[[bytes, str, str], Any],
    error_of: ErrorOf,
    stream_type: str = "text/event-stream",
) -> AsyncIterator[Any]:
    """POST a request and yield what the answer holds, checking what the server really sent.

    An error status becomes ``error_of(status, message, retry_after)``; a stream (``stream_type``) is
    read by ``events`` under a progress deadline; a JSON body (some servers answer whole when asked for
    a stream) by ``whole``; anything else (an HTML page) is an unreadable answer. A failure to connect is
    an :class:`~nbplayground.core.errors.UnreachableError`; a connection cut after bytes came is reported
    as an incomplete answer.
    """
    import aiohttp

    deadline = ProgressDeadline(timeout, total_timeout)
    where = host_of(url)
    try:
        async with deadline, session().post(url, json=body, headers=headers, timeout=_client_timeout()) as resp:
            ctype = media_type(resp.headers)
            if resp.status >= 400:
                raw = (await resp.read()).decode("utf-8", "replace")
                wait = parse_retry_after(resp.headers)
                if wait is None:
                    try:
                        wait = retry_delay(json.loads(raw))
                    except ValueError:
                        pass
                raise error_of(resp.status, error_message(raw), wait)
            if ctype == stream_type:
                async for item in events(resp, deadline):
                    yield item
                return
            raw_body = await resp.read()
            deadline.progress()
            if ctype in ("application/json", "") or ctype.endswith("+json"):
                yield whole(raw_body, where, ctype)
                return
            raise unreadable(where, raw_body, ctype)
    except E.NBPlaygroundError:
        raise
    except (aiohttp.ClientError, ConnectionError, OSError) as exc:
        if not deadline.started:
            found = unreachable(exc, where)
            if found is not None:
                raise found from None
            raise E.ConnectionLostError(f"The connection to {where} failed or was reset ({type(exc).__name__}).") from None
        raise E.ConnectionLostError(
            f"The connection to {where} was cut mid-answer ({type(exc).__name__}): the answer is incomplete."
        ) from None


@functools.cache
def _client_timeout() -> Any:
    """aiohttp's timeout for every request (immutable, so one for all): it bounds only the connect. Our
    own deadline bounds progress (aiohttp's read timeout would be reset by every keep-alive)."""
    import aiohttp

    return aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT)


async def sse_events(content: Any) -> AsyncIterator[tuple[str, bytes]]:
    """``(event name, data)`` of a server-sent-events stream; comments and empty data are skipped."""
    event = ""
    async for line in lines(content):
        if line.startswith(b"data:"):
            yield event, line[5:].strip()
        elif line.startswith(b"event:"):
            event = line[6:].strip().decode("utf-8", "replace")
        elif not line:
            event = ""


def loads_chunk(payload: bytes) -> dict[str, Any]:
    """A stream chunk's JSON object, or the incomplete-answer error when it is not one."""
    try:
        obj = json.loads(payload)
    except ValueError:
        raise E.StreamError(
            "The provider sent a malformed stream chunk (not JSON); the answer is incomplete.",
            detail=first_bytes(payload),
        ) from None
    if not isinstance(obj, dict):
        raise E.StreamError("The provider sent a stream chunk that is not a JSON object.", detail=first_bytes(payload))
    return obj


def loads_whole(raw: bytes, where: str, ctype: str) -> dict[str, Any]:
    """A whole answer's JSON object, or the unreadable-answer error."""
    try:
        obj = json.loads(raw)
    except ValueError:
        raise unreadable(where, raw, ctype) from None
    if not isinstance(obj, dict):
        raise unreadable(where, raw, ctype)
    return obj


class NativeHTTP:
    """What every native (aiohttp) transport shares: its import happens off the loop; it serves chat only
    (the engine sends media kinds to litellm)."""

    name = "native"

    def is_ready(self, call: ProviderCall | None = None) -> bool:
        """Whether aiohttp is imported already."""
        return "aiohttp" in sys.modules

    def prepare(self, call: ProviderCall | None = None) -> None:
        """Import aiohttp (~0.1-0.2 s, once): in a thread, so the first run's timings are the provider's."""
        import aiohttp  # noqa: F401

    async def generate(self, call: ProviderCall) -> MediaOutput:
        """Never called: media kinds go through litellm."""
        raise NotImplementedError(f"the {self.name} transport serves chat only")
