"""Anthropic Messages (``POST /v1/messages``): SSE events, tool_use with input_json_delta, thinking."""

from __future__ import annotations

from typing import Any, ClassVar

from support.fakes.core import Answer, Ask, Frame, Reject, Wire, WireSpec, last_text, sse

JSON_TOOL = "json_tool_call"  # the tool litellm offers to get structured output from older Claude models
ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
    413: "request_too_large", 429: "rate_limit_error", 500: "api_error", 529: "overloaded_error",
}  # fmt: skip


class AnthropicMessages(Wire):
    """Anthropic's Messages API."""

    name = "anthropic"
    keepalive: ClassVar[bytes] = sse({"type": "ping"}, "ping")
    id_prefix: ClassVar[str] = "toolu_"

    def spec(self, url: str) -> WireSpec:
        """``anthropic/claude-3-5-haiku-20241022`` with ``api_base=<url>`` (litellm appends ``/v1/messages``).

        For ``claude-sonnet-4-5`` and newer litellm asks for JSON with ``output_format`` instead of the tool trick.
        """
        return WireSpec(
            self.name, "anthropic/claude-3-5-haiku-20241022", url,
            {"ANTHROPIC_API_KEY": "sk-ant-fake"}, {"api_key": "sk-ant-fake"},
        )  # fmt: skip

    def route(self, method: str, path: str) -> bool:
        """``POST /v1/messages``."""
        return method == "POST" and path.rstrip("/").endswith("/v1/messages")

    def sample(self, stream: bool) -> tuple[str, dict[str, Any]]:
        """``POST /v1/messages``."""
        body = {
            "model": "claude-3-5-haiku-20241022",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "hi"}],
        }
        return "/v1/messages", {**body, "stream": stream}

    def ask(self, path: str, query: dict[str, str], body: Any, quirks: frozenset[str]) -> Ask:
        """Read a Messages request: tools, tool_choice, tool_result blocks, output_format."""
        messages = body.get("messages") or []
        if not messages or not body.get("max_tokens"):
            raise Reject(400, self.error(400, "messages and max_tokens are required")[0])
        ask = Ask(stream=bool(body.get("stream")), model=str(body.get("model") or "claude"))
        for tool in body.get("tools") or []:
            if "input_schema" in tool:
                ask.tools[tool["name"]] = tool["input_schema"]
        choice = body.get("tool_choice") or {}
        if choice.get("type") == "tool":
            ask.forced = choice.get("name", "")
        elif choice.get("type") == "any" and ask.tools:
            ask.forced = ""
        if JSON_TOOL in ask.tools and ask.forced in (JSON_TOOL, None):
            ask.json_tool, ask.schema, ask.forced = JSON_TOOL, ask.tools.pop(JSON_TOOL), None
        last = messages[-1]
        if last.get("role") == "user" and isinstance(last.get("content"), list):
            results = [b for b in last["content"] if isinstance(b, dict) and b.get("type") == "tool_result"]
            if results:
                ask.tool_result = "".join(last_text(b.get("content")) for b in results)
        fmt = body.get("output_format") or (body.get("output_config") or {}).get("format") or {}
        if fmt.get("type") == "json_schema":
            ask.schema = fmt.get("schema") or {}
        return ask

    def _blocks(self, answer: Answer) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        """Content blocks as (start block, its deltas), in order: thinking, text, tool_use."""
        blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
        if answer.reasoning:
            deltas = [{"type": "thinking_delta", "thinking": p} for p in answer.reasoning_pieces]
            deltas.append({"type": "signature_delta", "signature": "ZmFrZS1zaWduYXR1cmU="})
            blocks.append(({"type": "thinking", "thinking": "", "signature": ""}, deltas))
        if answer.text:
            blocks.append(
                (
                    {"type": "text", "text": ""},
                    [{"type": "text_delta", "text": p} for p in answer.text_pieces],
                )
            )
        if answer.tool:
            start = {"type": "tool_use", "id": answer.tool_id, "name": answer.tool[0], "input": {}}
            blocks.append(
                (start, [{"type": "input_json_delta", "partial_json": p} for p in answer.args_pieces])
            )
        return blocks

    def _stop(self, answer: Answer) -> str:
        return answer.finish or ("tool_use" if answer.tool else "end_turn")

    def _message(
        self, ask: Ask, content: list[Any], stop: str | None, usage: dict[str, int]
    ) -> dict[str, Any]:
        return {
            "id": "msg_fake0001", "type": "message", "role": "assistant", "model": ask.model, "content": content,
            "stop_reason": stop, "stop_sequence": None, "usage": usage,
        }  # fmt: skip

    def _usage(self, answer: Answer, output: int | None = None) -> dict[str, int]:
        # Anthropic always sends usage (litellm fails without it): Reply(usage=False) reports zeros
        tin, tout = answer.usage or (0, 0)
        return {
            "input_tokens": tin, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
            "output_tokens": tout if output is None else output,
        }  # fmt: skip

    def whole(self, answer: Answer, ask: Ask, quirks: frozenset[str]) -> Any:
        """A ``message`` object."""
        content: list[dict[str, Any]] = []
        if answer.reasoning:
            content.append(
                {"type": "thinking", "thinking": answer.reasoning, "signature": "ZmFrZS1zaWduYXR1cmU="}
            )
        if answer.text:
            content.append({"type": "text", "text": answer.text})
        if answer.tool:
            content.append(
                {"type": "tool_use", "id": answer.tool_id, "name": answer.tool[0], "input": answer.tool[1]}
            )
        msg = self._message(ask, content, self._stop(answer), self._usage(answer))
        return msg

    def frames(self, answer: Answer, ask: Ask, quirks: frozenset[str]) -> list[Frame]:
        """message_start, ping, content blocks (start, deltas, stop), message_delta, message_stop."""
        start_usage = self._usage(answer, output=1 if answer.usage else 0)
        out = [
            Frame(
                sse(
                    {"type": "message_start", "message": self._message(ask, [], None, start_usage)},
                    "message_start",
                )
            ),
            Frame(sse({"type": "ping"}, "ping")),
        ]
        for index, (block, deltas) in enumerate(self._blocks(answer)):
            out.append(
                Frame(
                    sse(
                        {"type": "content_block_start", "index": index, "content_block": block},
                        "content_block_start",
                    )
                )
            )
            for delta in deltas:
                piece = delta["type"] != "signature_delta"
                data = {"type": "content_block_delta", "index": index, "delta": delta}
                out.append(Frame(sse(data, "content_block_delta"), piece))
            out.append(Frame(sse({"type": "content_block_stop", "index": index}, "content_block_stop")))
        delta: dict[str, Any] = {
            "type": "message_delta",
            "delta": {"stop_reason": self._stop(answer), "stop_sequence": None},
        }
        if answer.usage:
            delta["usage"] = {"output_tokens": answer.usage[1]}
        out.append(Frame(sse(delta, "message_delta")))
        out.append(Frame(sse({"type": "message_stop"}, "message_stop")))
        return out

    def malformed(self, stream: bool, ask: Ask) -> bytes:
        """A content_block_delta event whose data is not JSON."""
        return (
            b"event: content_block_delta\ndata: {not json\n\n" if stream else b'{"type": "message", not json'
        )

    def error(
        self, status: int, message: str, retry_after: float | None = None
    ) -> tuple[Any, dict[str, str]]:
        """``{"type": "error", "error": {"type", "message"}}``."""
        kind = ERROR_TYPES.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}, {"request-id": "req_fake"}
