"""Ollama chat (``POST /api/chat``): NDJSON stream, tool_calls with object arguments, ``format``."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from support.fakes.core import Answer, Ask, Frame, Reject, Wire, WireSpec, last_text

CREATED_AT = "2025-01-01T00:00:00.000000Z"


def ndjson(data: dict[str, Any]) -> bytes:
    """One NDJSON line."""
    return json.dumps(data).encode() + b"\n"


class OllamaChat(Wire):
    """Ollama's native chat API."""

    name = "ollama"
    stream_type: ClassVar[str] = "application/x-ndjson"
    keepalive: ClassVar[bytes] = b"\n"

    def spec(self, url: str) -> WireSpec:
        """``ollama_chat/llama3.1`` with ``api_base=<url>``; no key."""
        return WireSpec(self.name, "ollama_chat/llama3.1", url, {}, {})

    def route(self, method: str, path: str) -> bool:
        """``POST /api/chat``."""
        return method == "POST" and path.rstrip("/") == "/api/chat"

    def sample(self, stream: bool) -> tuple[str, dict[str, Any]]:
        """``POST /api/chat``."""
        return "/api/chat", {
            "model": "llama3.1",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": stream,
        }

    def ask(self, path: str, query: dict[str, str], body: Any, quirks: frozenset[str]) -> Ask:
        """Read an Ollama chat request: tools, a tool message last, ``format`` (a schema or ``"json"``)."""
        messages = body.get("messages") or []
        if not body.get("model"):
            raise Reject(400, {"error": "model is required"})
        ask = Ask(stream=bool(body.get("stream", True)), model=str(body["model"]))
        for tool in body.get("tools") or []:
            fn = tool.get("function") or {}
            ask.tools[fn.get("name", "")] = fn.get("parameters") or {}
        if messages and messages[-1].get("role") == "tool":
            ask.tool_result = last_text(messages[-1].get("content"))
        fmt = body.get("format")
        if isinstance(fmt, dict):
            ask.schema = fmt
        elif fmt == "json":
            ask.json_mode = True
        return ask

    def _line(self, ask: Ask, message: dict[str, Any], done: bool = False) -> dict[str, Any]:
        return {
            "model": ask.model,
            "created_at": CREATED_AT,
            "message": {"role": "assistant", "content": "", **message},
            "done": done,
        }

    def _done(self, ask: Ask, answer: Answer, message: dict[str, Any]) -> dict[str, Any]:
        out = self._line(ask, message, done=True)
        out["done_reason"] = answer.finish or "stop"
        out.update(total_duration=12_000_000, load_duration=1_000_000)
        if answer.usage is not None:
            tin, tout = answer.usage
            out.update(
                prompt_eval_count=tin,
                prompt_eval_duration=2_000_000,
                eval_count=tout,
                eval_duration=8_000_000,
            )
        return out

    def _call(self, answer: Answer) -> dict[str, Any]:
        assert answer.tool is not None
        return {"function": {"name": answer.tool[0], "arguments": answer.tool[1]}}

    def whole(self, answer: Answer, ask: Ask, quirks: frozenset[str]) -> Any:
        """The final chat object, with the whole message."""
        message: dict[str, Any] = {"content": answer.text}
        if answer.reasoning:
            message["thinking"] = answer.reasoning
        if answer.tool:
            message["tool_calls"] = [self._call(answer)]
        return self._done(ask, answer, message)

    def frames(self, answer: Answer, ask: Ask, quirks: frozenset[str]) -> list[Frame]:
        """One line per piece (a tool call is one line), then a ``done`` line with the counts."""
        out = [Frame(ndjson(self._line(ask, {"thinking": p})), True) for p in answer.reasoning_pieces]
        out += [Frame(ndjson(self._line(ask, {"content": p})), True) for p in answer.text_pieces]
        if answer.tool:
            out.append(Frame(ndjson(self._line(ask, {"tool_calls": [self._call(answer)]})), True))
        out.append(Frame(ndjson(self._done(ask, answer, {}))))
        return out

    def malformed(self, stream: bool, ask: Ask) -> bytes:
        """A line that is not JSON."""
        return b'{"model": "llama3.1", not json\n' if stream else b'{"model": "llama3.1", not json'

    def error(
        self, status: int, message: str, retry_after: float | None = None
    ) -> tuple[Any, dict[str, str]]:
        """``{"error": "..."}``."""
        return {"error": message}, {}
