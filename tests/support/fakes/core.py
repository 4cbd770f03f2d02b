"""The shared core of the conformance fakes: scripted replies, a real HTTP server, faults.

A wire module (``openai_chat``, ``anthropic_messages``, ...) only says how its provider's requests
read (:meth:`Wire.ask`) and how its answers, streams and errors look; this module decides *what* to
answer (:func:`plan`) and runs the server and every fault the same way for all wires.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import unquote

from aiohttp import web

from nbplayground.core.mock import example_for_schema

FAULTS = (
    "status",
    "html_page",
    "malformed_body",
    "json_error_stream",
    "disconnect",
    "keepalive_stall",
    "stall_first_byte",
)
KEEPALIVE_EVERY = 0.2  # seconds between keep-alives in a keepalive_stall
POLL = 0.05  # seconds between checks that the client is still there


@dataclass
class Reply:
    """What one request gets (see the package docstring for the faults)."""

    text: str = "Hello from the fake."
    pieces: int | None = None  # stream the text in this many pieces (default: one per word)
    delay: float = 0.0  # seconds between streamed pieces
    tool_call: tuple[str, dict[str, Any]] | None = None  # answer with this tool call (name, arguments)
    json: Any = None  # structured output: answer json.dumps(json) the way the wire does it
    reasoning: str | None = None  # reasoning (reasoning_content, thinking, ...) before the text
    usage: bool = True  # include token usage (wire's own fields)
    finish: str | None = None  # the wire's own finish value, instead of its normal one
    fault: str | None = None  # one of FAULTS
    status: int = 500  # for fault="status" / "json_error_stream"
    retry_after: float | None = None  # Retry-After header seconds on error statuses
    retry_after_header: bool = True  # False: the wait only in the body, where the wire has a place (Gemini)
    error_message: str = "fake failure: the model is overloaded"
    cut_after: int = 2  # pieces sent before "disconnect" / "keepalive_stall"
    tokens_in: int = 9  # input tokens reported in usage (output tokens: the number of pieces sent)

    def __post_init__(self) -> None:
        if self.fault is not None and self.fault not in FAULTS:
            raise ValueError(f"Unknown fault {self.fault!r}; use one of {', '.join(FAULTS)}.")


@dataclass
class Recorded:
    """One request the fake received, and what it answered."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any  # the parsed JSON body, or the raw bytes when it is not JSON
    time: float  # time.monotonic() when the request arrived
    reply: Reply
    stream: bool = False
    # (input, output) tokens reported; None with Reply(usage=False) (Anthropic, Gemini, Cohere and Bedrock
    # then send zeros in a whole answer: their APIs always carry usage and litellm fails without it)
    usage: tuple[int, int] | None = None
    answer: Answer | None = None  # what the fake said (None for faults that say nothing)
    closed_at: float | None = None  # time.monotonic() when the connection carrying it closed


@dataclass(frozen=True)
class WireSpec:
    """How to point litellm at a fake: ``litellm.acompletion(**spec.kwargs(), messages=...)``."""

    wire: str
    model: str  # the litellm model string
    api_base: str
    env: dict[str, str] = field(default_factory=dict)  # dummy credentials litellm reads from the environment
    extra: dict[str, Any] = field(default_factory=dict)  # other acompletion arguments (api_version, ...)

    def kwargs(self) -> dict[str, Any]:
        """The ``litellm.acompletion`` arguments that route to the fake."""
        return {"model": self.model, "api_base": self.api_base, **self.extra}


@dataclass
class Ask:
    """What one request asks for, read by a wire from its own request shape."""

    stream: bool
    model: str = "fake-model"
    tools: dict[str, Any] = field(default_factory=dict)  # tool name -> JSON schema of its arguments
    forced: str | None = None  # the tool the request forces; "" = any tool
    tool_result: str | None = None  # the content of a tool result in the last turn
    schema: dict[str, Any] | None = None  # structured output schema
    json_mode: bool = False  # JSON asked for without a schema
    json_tool: str | None = None  # the tool litellm offers to get JSON (Anthropic / Bedrock "json_tool_call")
    include_usage: bool = True  # OpenAI: stream_options.include_usage
    accept: str = ""  # the request's Accept header


@dataclass
class Answer:
    """What the fake says, before a wire shapes it."""

    text: str = ""
    reasoning: str = ""
    tool: tuple[str, dict[str, Any]] | None = None
    tool_id: str = "call_fake"
    text_pieces: list[str] = field(default_factory=list)
    reasoning_pieces: list[str] = field(default_factory=list)
    args_pieces: list[str] = field(default_factory=list)
    usage: tuple[int, int] | None = None  # (input, output) tokens
    finish: str | None = None  # a wire value overriding the wire's normal finish
    json_tool: bool = False  # the tool call carries the structured result

    @property
    def args(self) -> str:
        """The tool call's arguments as the JSON text that is streamed."""
        return "".join(self.args_pieces)


@dataclass
class Frame:
    """A piece of a streamed body; ``piece`` marks real progress (counted by ``cut_after``)."""

    data: bytes
    piece: bool = False


class Reject(Exception):
    """Raised by a wire to answer a request with an error status instead (bad request, quirks)."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def split(text: str, n: int | None) -> list[str]:
    """``text`` in ``n`` near-equal pieces, or one per word (leading space kept) when ``n`` is None."""
    if not text:
        return []
    if n is None:
        words = re.findall(r"\s*\S+", text)
        if not words:
            return [text]
        tail = text[len("".join(words)) :]
        words[-1] += tail
        return words
    n = max(1, min(n, len(text)))
    size, extra = divmod(len(text), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        out.append(text[start:end])
        start = end
    return out


def lower_types(schema: Any) -> Any:
    """A schema with Gemini's upper-case OpenAPI types (``OBJECT``) in JSON-Schema case."""
    if isinstance(schema, dict):
        out = {k: lower_types(v) for k, v in schema.items()}
        if isinstance(out.get("type"), str):
            out["type"] = out["type"].lower()
        return out
    if isinstance(schema, list):
        return [lower_types(v) for v in schema]
    return schema


def example(schema: dict[str, Any] | None) -> Any:
    """A JSON value valid for ``schema``."""
    return example_for_schema(lower_types(schema or {"type": "object", "properties": {}}), "fake")


def plan(reply: Reply, ask: Ask, tool_id: str) -> Answer:
    """Decide what to answer: a scripted tool call, a forced tool, a tool-result echo, JSON or text."""
    answer = Answer(tool_id=tool_id, finish=reply.finish, reasoning=reply.reasoning or "")
    if reply.tool_call is not None:
        answer.tool = (reply.tool_call[0], dict(reply.tool_call[1]))
    elif ask.forced is not None and (ask.tools or ask.forced):
        name = ask.forced or next(iter(ask.tools))
        answer.tool = (name, example(ask.tools.get(name)))
    elif ask.tool_result is not None:
        answer.text = f"Tool said: {ask.tool_result}"
    elif ask.json_tool is not None:
        value = reply.json if reply.json is not None else example(ask.schema)
        answer.tool, answer.json_tool = (ask.json_tool, value), True
    elif ask.schema is not None or ask.json_mode or reply.json is not None:
        if reply.json is not None:
            value = reply.json
        elif ask.schema is not None:
            value = example(ask.schema)
        else:
            value = {"answer": reply.text}
        answer.text = json.dumps(value)
    else:
        answer.text = reply.text
    answer.text_pieces = split(answer.text, reply.pieces)
    answer.reasoning_pieces = split(answer.reasoning, reply.pieces)
    if answer.tool is not None:
        answer.args_pieces = split(json.dumps(answer.tool[1]), reply.pieces or 2)
    if reply.usage:
        out = len(answer.text_pieces) + len(answer.reasoning_pieces) + len(answer.args_pieces)
        answer.usage = (reply.tokens_in, max(1, out))
    return answer


def sse(data: Any, event: str | None = None) -> bytes:
    """One server-sent event (``data`` as JSON unless it is already a string)."""
    payload = data if isinstance(data, str) else json.dumps(data)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def last_text(content: Any) -> str:
    """The text of a message content: a string, or a list of text parts in any wire's shape."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        if "text" in content:
            return str(content["text"])
        if "json" in content:
            return json.dumps(content["json"])
        return json.dumps(content)
    if isinstance(content, list):
        return "".join(last_text(part) for part in content)
    return str(content)


class Wire:
    """One provider's wire format. Subclasses fill in the shapes; the server does the rest."""

    name: ClassVar[str] = ""
    stream_type: ClassVar[str] = "text/event-stream"
    keepalive: ClassVar[bytes] = b": keepalive\n\n"
    quirks: ClassVar[frozenset[str]] = frozenset()
    id_prefix: ClassVar[str] = "call_"

    def spec(self, url: str) -> WireSpec:
        """The litellm model string, api_base and env that route to a fake at ``url``."""
        raise NotImplementedError

    def route(self, method: str, path: str) -> bool:
        """Whether this wire answers ``method path``."""
        raise NotImplementedError

    def sample(self, stream: bool) -> tuple[str, dict[str, Any]]:
        """A minimal native request (path with query, JSON body) saying "hi", for clients other than litellm."""
        raise NotImplementedError

    def ask(self, path: str, query: dict[str, str], body: Any, quirks: frozenset[str]) -> Ask:
        """Read a request; raise :class:`Reject` to answer it with an error instead."""
        raise NotImplementedError

    def whole(self, answer: Answer, ask: Ask, quirks: frozenset[str]) -> Any:
        """The non-streamed JSON answer."""
        raise NotImplementedError

    def frames(self, answer: Answer, ask: Ask, quirks: frozenset[str]) -> list[Frame]:
        """The streamed answer, frame by frame."""
        raise NotImplementedError

    def error(
        self, status: int, message: str, retry_after: float | None = None
    ) -> tuple[Any, dict[str, str]]:
        """The wire's JSON error body for ``status``, and any extra headers."""
        return {"error": {"message": message, "type": "server_error", "code": status}}, {}

    def content_type(self, ask: Ask) -> str:
        """The content type of a streamed answer."""
        return self.stream_type

    def keepalive_for(self, ask: Ask) -> bytes:
        """What a stalled stream sends to keep the connection open."""
        return self.keepalive

    def malformed(self, stream: bool, ask: Ask) -> bytes:
        """A body with the right content type that this wire cannot parse."""
        return b"data: {not json\n\n" if stream else b'{"id": "broken", not json'

    def stream_headers(self) -> dict[str, str]:
        """Extra response headers of a streamed answer."""
        return {"Cache-Control": "no-cache"}


HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Sign in to continue</title></head>\n"
    b"<body><h1>Network login required</h1><p>Please sign in to the guest network to continue.</p>"
    b"</body></html>\n"
)


class _Server(web.Server):
    """aiohttp's low-level server, telling the fake when each client connection closes."""

    def __init__(self, handler: Any, on_lost: Callable[[Any], None], **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._on_lost = on_lost

    def connection_lost(self, handler: Any, exc: BaseException | None = None) -> None:
        self._on_lost(handler)
        super().connection_lost(handler, exc)


class WireFake:
    """A real HTTP server on 127.0.0.1 speaking one provider's wire format.

    Use as a context manager; ``spec`` says how to point litellm at it. Each request takes the next
    scripted :class:`Reply` (the last one repeats).
    """

    def __init__(self, wire: str, *replies: Reply, quirks: frozenset[str] = frozenset()) -> None:
        from support.fakes import WIRES

        if wire not in WIRES:
            raise ValueError(f"Unknown wire {wire!r}; use one of {', '.join(WIRES)}.")
        self.wire: Wire = WIRES[wire]()
        unknown = set(quirks) - self.wire.quirks
        if unknown:
            raise ValueError(
                f"Wire {wire!r} has no quirks {sorted(unknown)}; it has {sorted(self.wire.quirks)}."
            )
        self.quirks = frozenset(quirks)
        self.requests: list[Recorded] = []
        self.closed: list[float] = []
        self.url = ""
        self._replies = list(replies) or [Reply()]
        self._lock = threading.Lock()
        self._by_conn: dict[int, list[Recorded]] = {}
        self._ids = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.ServerRunner | None = None
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> WireFake:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def spec(self) -> WireSpec:
        """The litellm model string, api_base and env for this fake."""
        return self.wire.spec(self.url)

    def start(self) -> None:
        """Start serving on a free port in a background thread."""
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        async def boot() -> None:
            server = _Server(self._handle, self._lost, handler_cancellation=True)
            self._runner = web.ServerRunner(server, shutdown_timeout=1.0)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(boot())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=run, name=f"fake-{self.wire.name}", daemon=True)
        self._thread.start()
        if not ready.wait(10) or failure:
            raise RuntimeError(f"The {self.wire.name} fake did not start: {failure[:1]}")

    def stop(self) -> None:
        """Stop serving; hanging fault handlers end and their connections close."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._stopping = True

        async def shutdown() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10)
        except Exception:
            pass
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        if not thread.is_alive():
            loop.close()
        self._loop = self._thread = None

    # -- script ------------------------------------------------------------------------------------
    def script(self, *replies: Reply) -> None:
        """Queue replies: each request takes the next, the last one repeats."""
        with self._lock:
            self._replies = list(replies) or [Reply()]

    def _next(self) -> Reply:
        with self._lock:
            return self._replies.pop(0) if len(self._replies) > 1 else self._replies[0]

    def wait_closed(self, index: int = -1, timeout: float = 10.0) -> float | None:
        """Wait until the connection that carried request ``index`` closes; its monotonic time, or None."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.requests and self.requests[index].closed_at is not None:
                return self.requests[index].closed_at
            time.sleep(0.01)
        return None

    # -- serving -----------------------------------------------------------------------------------
    def _lost(self, handler: Any) -> None:
        now = time.monotonic()
        self.closed.append(now)
        for rec in self._by_conn.pop(id(handler), []):
            rec.closed_at = now

    def _gone(self, request: web.BaseRequest) -> bool:
        transport = request.transport
        return self._stopping or transport is None or transport.is_closing()

    async def _hold(self, request: web.BaseRequest) -> None:
        while not self._gone(request):
            await asyncio.sleep(POLL)

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(
            status=status, body=json.dumps(body).encode(), content_type="application/json", headers=headers
        )

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        query = {k: v for k, v in request.query.items()}
        path = unquote(request.path)
        reply = self._next()
        rec = Recorded(
            method=request.method, path=path, query=query, headers=dict(request.headers), body=body,
            time=time.monotonic(), reply=reply,
        )  # fmt: skip
        self.requests.append(rec)
        self._by_conn.setdefault(id(request.protocol), []).append(rec)
        if not self.wire.route(request.method, path):
            payload, headers = self.wire.error(
                404, f"fake {self.wire.name}: no route {request.method} {path}"
            )
            return self._json(404, payload, headers)
        try:
            ask = self.wire.ask(path, query, body if isinstance(body, dict) else {}, self.quirks)
        except Reject as rej:
            return self._json(rej.status, rej.body, rej.headers)
        rec.stream, ask.accept = ask.stream, request.headers.get("Accept", "")
        if reply.fault is not None:
            return await self._fault(request, reply, ask, rec)
        self._ids += 1
        answer = plan(reply, ask, f"{self.wire.id_prefix}{self._ids:04d}fake")
        rec.answer, rec.usage = answer, answer.usage
        if not ask.stream:
            return self._json(200, self.wire.whole(answer, ask, self.quirks))
        return await self._stream(request, reply, ask, self.wire.frames(answer, ask, self.quirks))

    async def _open(self, request: web.BaseRequest, content_type: str) -> web.StreamResponse:
        resp = web.StreamResponse(
            status=200, headers={"Content-Type": content_type, **self.wire.stream_headers()}
        )
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        return resp

    async def _stream(
        self, request: web.BaseRequest, reply: Reply, ask: Ask, frames: list[Frame], cut: int | None = None
    ) -> web.StreamResponse:
        """Send ``frames`` (all, or up to ``cut`` pieces); pause ``reply.delay`` between pieces."""
        resp = await self._open(request, self.wire.content_type(ask))
        sent = 0
        for frame in frames:
            if frame.piece:
                if cut is not None and sent >= cut:
                    break
                if sent and reply.delay:
                    await asyncio.sleep(reply.delay)
                sent += 1
            if self._gone(request):
                return resp
            try:
                await resp.write(frame.data)
            except ConnectionError:
                return resp
        if cut is None:
            await resp.write_eof()
        return resp

    async def _fault(
        self, request: web.BaseRequest, reply: Reply, ask: Ask, rec: Recorded
    ) -> web.StreamResponse:
        fault = reply.fault
        if fault in ("status", "json_error_stream"):
            payload, headers = self.wire.error(reply.status, reply.error_message, reply.retry_after)
            if reply.retry_after is not None and reply.retry_after_header:
                headers = {**headers, "Retry-After": f"{reply.retry_after:g}"}
            return self._json(reply.status, payload, headers)
        if fault == "html_page":
            return web.Response(status=200, body=HTML_PAGE, content_type="text/html", charset="utf-8")
        if fault == "malformed_body":
            ctype = self.wire.content_type(ask) if ask.stream else "application/json"
            return web.Response(
                status=200, body=self.wire.malformed(ask.stream, ask), headers={"Content-Type": ctype}
            )
        if fault == "stall_first_byte":
            await self._hold(request)
            self._close(request)
            return web.Response(status=503)
        self._ids += 1
        answer = plan(reply, ask, f"{self.wire.id_prefix}{self._ids:04d}fake")
        rec.answer = answer
        if ask.stream:
            frames = self.wire.frames(answer, ask, self.quirks)
            resp = await self._stream(request, reply, ask, frames, cut=reply.cut_after)
            keepalive = self.wire.keepalive_for(ask)
        else:
            resp = await self._open(request, "application/json")
            keepalive = b"\n"
            if fault == "disconnect":
                whole = json.dumps(self.wire.whole(answer, ask, self.quirks)).encode()
                await resp.write(whole[: len(whole) // 2])
        if fault == "disconnect":
            self._close(request)
            return resp
        while not self._gone(request):  # keepalive_stall
            try:
                if keepalive:
                    await resp.write(keepalive)
            except (ConnectionError, RuntimeError):
                break
            await asyncio.sleep(KEEPALIVE_EVERY)
        self._close(request)
        return resp

    def _close(self, request: web.BaseRequest) -> None:
        transport = request.transport
        if transport is not None:
            transport.close()
