"""A small, real OpenAI-compatible HTTP server on 127.0.0.1 for tests and benchmarks.

llmock covers the fault catalogue; this server adds what it does not: exact token counts and pacing
(500 tokens at 5 ms), and a record of when each client connection *closed*, so tests can prove that
``stop()`` really hung up. It speaks HTTP/1.1 with chunked SSE over raw asyncio sockets.

    with OpenAIServer(tokens=500, delay=0.005) as srv:
        openai.OpenAI(base_url=srv.url, api_key="x")

Run standalone: ``python tests/support/oai_server.py --port 8799 --tokens 500 --delay 0.005``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Connection:
    opened_at: float
    closed_at: float | None = None
    requests: int = 0


@dataclass
class Behaviour:
    """What the next request gets: ``status`` (error), ``text``, ``tool_call`` or stream faults."""

    status: int | None = None
    retry_after: float | None = None
    text: str | None = None
    tokens: int | None = None
    delay: float | None = None
    no_finish: bool = False
    disconnect_after: int | None = None
    tool_call: dict[str, Any] | None = None
    error_message: str = "mock failure"


def last_user_text(body: dict[str, Any]) -> str:
    """The last user message of a chat request (what an echoing model answers)."""
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    return str(users[-1]["content"]) if users else ""


@dataclass
class OpenAIServer:
    tokens: int = 20
    delay: float = 0.0
    host: str = "127.0.0.1"
    port: int = 0
    connections: list[Connection] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    script: list[Behaviour] = field(default_factory=list)
    echo: bool = False  # answer with the last user message (alignment checks)
    chaos: dict[int, float] = field(default_factory=dict)  # status -> probability, e.g. {429: 0.1, 500: 0.05}
    chaos_seed: int = 0
    retry_after: float = 0.05
    latency: float = 0.0  # seconds before every answer (a model's thinking time)
    no_usage: bool = False  # streams never report usage (like many local servers)
    root: str = ""  # when set, paths outside it get 404 (a server whose API lives under /v1)

    # -- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> OpenAIServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def runner() -> None:
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._handle, self.host, self.port)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=runner, daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop(self) -> None:
        """Stop serving, end the handlers still running (a stream nobody reads any more), close the loop."""

        async def close() -> None:
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(close(), self._loop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def wait_closed(self, index: int = -1, timeout: float = 5.0) -> float | None:
        """Wait until connection ``index`` is closed by the client; return when (perf_counter) or None."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.connections and self.connections[index].closed_at is not None:
                return self.connections[index].closed_at
            time.sleep(0.005)
        return None

    # -- protocol ----------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(opened_at=time.perf_counter())
        self.connections.append(conn)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                hdrs = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        hdrs[k.strip().lower()] = v.strip()
                try:
                    body = await reader.readexactly(int(hdrs.get("content-length", "0") or 0))
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                conn.requests += 1
                self.headers.append(hdrs)
                keep = await self._route(method, path, hdrs, body, reader, writer)
                if not keep:
                    break
        except asyncio.CancelledError:
            pass  # the server is stopping: end quietly (a cancelled handler makes asyncio log an error)
        finally:
            conn.closed_at = time.perf_counter()
            try:
                writer.close()
            except Exception:
                pass

    async def _route(
        self, method: str, path: str, hdrs: dict[str, str], body: bytes, reader: Any, writer: Any
    ) -> bool:
        if self.root and not path.startswith(self.root):
            return self._json(writer, 404, {"error": {"message": f"no route {path}"}})
        if path.endswith("/chat/completions"):
            data = json.loads(body or b"{}")
            self.bodies.append(data)
            behaviour = self.script.pop(0) if self.script else self._chaos()
            if self.echo and behaviour.text is None:
                behaviour.text = last_user_text(data)
            return await self._chat(data, behaviour, reader, writer)
        if path.endswith("/images/generations"):
            self.bodies.append(json.loads(body or b"{}"))
            png = base64.b64encode(_tiny_png()).decode()
            return self._json(
                writer, 200, {"created": 1, "data": [{"b64_json": png, "revised_prompt": "revised"}]}
            )
        if path.endswith("/audio/speech"):
            self.bodies.append(json.loads(body or b"{}"))
            return self._raw(writer, 200, b"RIFF....WAVEfmt fake", "audio/wav")
        if path.endswith("/audio/transcriptions"):
            self.bodies.append({"multipart": len(body)})
            return self._json(writer, 200, {"text": "transcribed text"})
        return self._json(writer, 404, {"error": {"message": f"no route {path}"}})

    def _chaos(self) -> Behaviour:
        if not self.chaos:
            return Behaviour()
        if not hasattr(self, "_rng"):
            import random

            self._rng = random.Random(self.chaos_seed)
        x, acc = self._rng.random(), 0.0
        for status, p in self.chaos.items():
            acc += p
            if x < acc:
                return Behaviour(status=status, retry_after=self.retry_after if status == 429 else None)
        return Behaviour()

    def _raw(self, writer: Any, status: int, payload: bytes, ctype: str, extra: str = "") -> bool:
        writer.write(
            f"HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\ncontent-length: {len(payload)}\r\n{extra}\r\n".encode()
            + payload
        )
        return True

    def _json(self, writer: Any, status: int, obj: Any, extra: str = "") -> bool:
        return self._raw(writer, status, json.dumps(obj).encode(), "application/json", extra)

    async def _chat(self, data: dict[str, Any], b: Behaviour, reader: Any, writer: Any) -> bool:
        if self.latency:
            await asyncio.sleep(self.latency)
        if b.status:
            extra = f"retry-after: {b.retry_after:g}\r\n" if b.retry_after is not None else ""
            self._json(writer, b.status, {"error": {"message": b.error_message, "type": "mock"}}, extra)
            await writer.drain()
            return True
        n = b.tokens if b.tokens is not None else int(data.get("max_tokens") or self.tokens)
        delay = self.delay if b.delay is None else b.delay
        words = b.text.split(" ") if b.text is not None else [f"tok{i}" for i in range(n)]
        pieces = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
        base = {
            "id": "chatcmpl-test",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": data.get("model"),
        }
        if not data.get("stream"):
            msg: dict[str, Any] = {"role": "assistant", "content": "".join(pieces)}
            return self._json(
                writer,
                200,
                {
                    **base,
                    "object": "chat.completion",
                    "choices": [{"index": 0, "message": msg, "finish_reason": "stop"}],
                    "usage": {
                        "prompt_tokens": 5,
                        "completion_tokens": len(pieces),
                        "total_tokens": 5 + len(pieces),
                    },
                },
            )
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        )

        def send(obj: Any) -> None:
            payload = b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n"
            writer.write(b"%x\r\n%s\r\n" % (len(payload), payload))

        eof = asyncio.ensure_future(reader.read(1))  # resolves with b"" when the client hangs up
        try:
            if b.tool_call is not None:
                tc = {
                    "index": 0,
                    "id": "call_1",
                    "type": "function",
                    "function": {
                        "name": b.tool_call["name"],
                        "arguments": json.dumps(b.tool_call.get("arguments", {})),
                    },
                }
                send(
                    {**base, "choices": [{"index": 0, "delta": {"tool_calls": [tc]}, "finish_reason": None}]}
                )
                send({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
            else:
                for i, piece in enumerate(pieces):
                    if b.disconnect_after is not None and i >= b.disconnect_after:
                        await writer.drain()
                        writer.transport.abort()
                        return False
                    send(
                        {
                            **base,
                            "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                        }
                    )
                    await writer.drain()
                    if delay:
                        done, _ = await asyncio.wait([eof], timeout=delay)
                        if done:
                            return False
                    elif eof.done():
                        return False
                if not b.no_finish:
                    send({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            if data.get("stream_options", {}).get("include_usage") and not self.no_usage:
                send(
                    {
                        **base,
                        "choices": [],
                        "usage": {
                            "prompt_tokens": 5,
                            "completion_tokens": len(pieces),
                            "total_tokens": 5 + len(pieces),
                        },
                    }
                )
            send(b"[DONE]")
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return True
        except ConnectionError:
            return False
        finally:
            if not eof.done():
                eof.cancel()
                try:
                    await eof
                except (asyncio.CancelledError, ConnectionError):
                    pass


def _tiny_png() -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    raw = b"\x00\xff\x00\x00"
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8799)
    ap.add_argument("--tokens", type=int, default=500)
    ap.add_argument("--delay", type=float, default=0.005)
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--echo", action="store_true", help="answer with the last user message")
    a = ap.parse_args()
    srv = OpenAIServer(tokens=a.tokens, delay=a.delay, port=a.port, latency=a.latency, echo=a.echo)
    srv.start()
    print(srv.url, flush=True)
    threading.Event().wait()
