"""Cohere v2 chat (``POST /v2/chat``): events message-start, content-*, tool-call-*, message-end.

Cohere streams one JSON object per line to ``Accept: application/json`` (what litellm sends) and
server-sent events (``event:`` + ``data:``) to ``Accept: text/event-stream`` (what Cohere's SDK sends).
"""

from __future__ import annotations

import json
from typing import Any

from support.fakes.core import Answer, Ask, Frame, Reject, Wire, WireSpec, last_text, sse


def tool_text(content: Any) -> str:
    """A v2 tool message's content: a string, or text / document parts."""
    if isinstance(content, list):
        return "".join(
            str((part.get("document") or {}).get("data", "")) if isinstance(part, dict) and "document" in part
            else last_text(part)
            for part in content
        )  # fmt: skip
    return last_text(content)


class CohereV2(Wire):
    """Cohere's v2 chat API."""

    name = "cohere"

    @staticmethod
    def _sse(ask: Ask) -> bool:
        return "text/event-stream" in ask.accept

    def _event(self, ask: Ask, data: dict[str, Any]) -> bytes:
        return sse(data, data["type"]) if self._sse(ask) else json.dumps(data).encode() + b"\n"

    def content_type(self, ask: Ask) -> str:
        """``text/event-stream`` when asked for, else JSON lines."""
        return "text/event-stream" if self._sse(ask) else "application/stream+json"

    def keepalive_for(self, ask: Ask) -> bytes:
        """An SSE comment; JSON lines have no keep-alive (litellm fails on an empty line), so they go quiet."""
        return self.keepalive if self._sse(ask) else b""

    def spec(self, url: str) -> WireSpec:
        """``cohere_chat/command-r-plus`` with ``api_base=<url>/v2/chat``: litellm posts to api_base as is."""
        return WireSpec(
            self.name, "cohere_chat/command-r-plus", f"{url}/v2/chat",
            {"COHERE_API_KEY": "fake-cohere-key"}, {"api_key": "fake-cohere-key"},
        )  # fmt: skip

    def route(self, method: str, path: str) -> bool:
        """``POST /v2/chat``."""
        return method == "POST" and path.rstrip("/") == "/v2/chat"

    def sample(self, stream: bool) -> tuple[str, dict[str, Any]]:
        """``POST /v2/chat``."""
        return "/v2/chat", {
            "model": "command-r-plus",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": stream,
        }

    def ask(self, path: str, query: dict[str, str], body: Any, quirks: frozenset[str]) -> Ask:
        """Read a v2 chat request: tools, ``tool_choice: REQUIRED``, tool messages, ``response_format``."""
        messages = body.get("messages") or []
        if not messages or not body.get("model"):
            raise Reject(400, self.error(400, "invalid request: model and messages are required")[0])
        ask = Ask(stream=bool(body.get("stream")), model=str(body["model"]))
        for tool in body.get("tools") or []:
            fn = tool.get("function") or {}
            ask.tools[fn.get("name", "")] = fn.get("parameters") or {}
        if body.get("tool_choice") == "REQUIRED" and ask.tools:
            ask.forced = ""
        if messages[-1].get("role") == "tool":
            ask.tool_result = tool_text(messages[-1].get("content"))
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_object":
            if isinstance(fmt.get("json_schema"), dict):
                ask.schema = fmt["json_schema"]
            else:
                ask.json_mode = True
        return ask

    def _finish(self, answer: Answer) -> str:
        return answer.finish or ("TOOL_CALL" if answer.tool else "COMPLETE")

    def _usage(self, answer: Answer) -> dict[str, Any] | None:
        if answer.usage is None:
            return None
        tin, tout = answer.usage
        counts = {"input_tokens": tin, "output_tokens": tout}
        return {"billed_units": dict(counts), "tokens": dict(counts)}

    def _call(self, answer: Answer) -> dict[str, Any]:
        assert answer.tool is not None
        return {
            "id": answer.tool_id,
            "type": "function",
            "function": {"name": answer.tool[0], "arguments": answer.args},
        }

    def whole(self, answer: Answer, ask: Ask, quirks: frozenset[str]) -> Any:
        """A v2 ``ChatResponse``."""
        message: dict[str, Any] = {"role": "assistant"}
        content: list[dict[str, Any]] = []
        if answer.reasoning:
            content.append({"type": "thinking", "thinking": answer.reasoning})
        if answer.text:
            content.append({"type": "text", "text": answer.text})
        if content:
            message["content"] = content
        if answer.tool:
            message.update(tool_plan="I will call the tool.", tool_calls=[self._call(answer)])
        # Cohere always sends usage (litellm fails without it): Reply(usage=False) reports zeros
        zeros = {"input_tokens": 0, "output_tokens": 0}
        usage = self._usage(answer) or {"billed_units": dict(zeros), "tokens": dict(zeros)}
        return {
            "id": "fake-cohere-0001",
            "finish_reason": self._finish(answer),
            "message": message,
            "usage": usage,
        }

    def frames(self, answer: Answer, ask: Ask, quirks: frozenset[str]) -> list[Frame]:
        """message-start, content-start/delta/end per block, tool-call-start/delta/end, message-end."""
        start = {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}
        out = [
            Frame(
                self._event(
                    ask, {"id": "fake-cohere-0001", "type": "message-start", "delta": {"message": start}}
                )
            )
        ]
        index = 0
        for kind, pieces in (("thinking", answer.reasoning_pieces), ("text", answer.text_pieces)):
            if not pieces:
                continue
            begin = {
                "type": "content-start",
                "index": index,
                "delta": {"message": {"content": {"type": kind, kind: ""}}},
            }
            out.append(Frame(self._event(ask, begin)))
            for p in pieces:
                delta = {
                    "type": "content-delta",
                    "index": index,
                    "delta": {"message": {"content": {kind: p}}},
                }
                out.append(Frame(self._event(ask, delta), True))
            out.append(Frame(self._event(ask, {"type": "content-end", "index": index})))
            index += 1
        if answer.tool:
            call = {**self._call(answer), "function": {"name": answer.tool[0], "arguments": ""}}
            head = {"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": call}}}
            out.append(Frame(self._event(ask, head), True))
            for p in answer.args_pieces:
                delta = {
                    "type": "tool-call-delta",
                    "index": 0,
                    "delta": {"message": {"tool_calls": {"function": {"arguments": p}}}},
                }
                out.append(Frame(self._event(ask, delta), True))
            out.append(Frame(self._event(ask, {"type": "tool-call-end", "index": 0})))
        end: dict[str, Any] = {"finish_reason": self._finish(answer)}
        usage = self._usage(answer)
        if usage is not None:
            end["usage"] = usage
        out.append(Frame(self._event(ask, {"type": "message-end", "delta": end})))
        return out

    def malformed(self, stream: bool, ask: Ask) -> bytes:
        """A content-delta event (or line) that is not JSON."""
        if not stream:
            return b'{"id": "broken", not json'
        return (
            b"event: content-delta\ndata: {not json\n\n"
            if self._sse(ask)
            else b'{"type": "content-delta", not json\n'
        )

    def error(
        self, status: int, message: str, retry_after: float | None = None
    ) -> tuple[Any, dict[str, str]]:
        """``{"id": ..., "message": ...}``."""
        return {"id": "fake-cohere-error", "message": message}, {}
