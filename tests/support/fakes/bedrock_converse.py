"""Amazon Bedrock Converse (``/model/{id}/converse`` and ``/converse-stream``): AWS event-stream framing."""

from __future__ import annotations

import json
import re
import struct
import zlib
from typing import Any, ClassVar

from support.fakes.core import Answer, Ask, Frame, Reject, Wire, WireSpec, last_text

JSON_TOOL = "json_tool_call"  # the tool litellm offers to get structured output
ROUTE = re.compile(r"/model/([^/]+)/(converse|converse-stream)$")
ERROR_TYPES = {
    400: "ValidationException", 403: "AccessDeniedException", 404: "ResourceNotFoundException",
    408: "ModelTimeoutException", 424: "ModelErrorException", 429: "ThrottlingException",
    500: "InternalServerException", 503: "ServiceUnavailableException",
}  # fmt: skip


def event_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message: prelude (lengths + CRC), string headers, payload, message CRC."""
    head = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        head += (
            struct.pack(">B", len(raw_name))
            + raw_name
            + b"\x07"
            + struct.pack(">H", len(raw_value))
            + raw_value
        )
    total = 12 + len(head) + len(payload) + 4
    prelude = struct.pack(">II", total, len(head))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + head + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event(kind: str, data: dict[str, Any]) -> bytes:
    """A Converse stream event (``:event-type`` ``kind``) carrying ``data`` as JSON."""
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return event_message(headers, json.dumps(data).encode())


class BedrockConverse(Wire):
    """Bedrock's Converse API, signed with dummy AWS credentials."""

    name = "bedrock"
    stream_type: ClassVar[str] = "application/vnd.amazon.eventstream"
    keepalive: ClassVar[bytes] = b""  # the AWS event stream has no keep-alive: a stall sends nothing
    id_prefix: ClassVar[str] = "tooluse_"

    def spec(self, url: str) -> WireSpec:
        """``bedrock/converse/anthropic.claude-3-5-sonnet-20240620-v1:0`` with ``api_base=<url>`` and dummy AWS keys.

        (claude-3-haiku on Bedrock takes no ``tool_choice`` in litellm: a forced tool is refused there.)
        """
        env = {
            "AWS_ACCESS_KEY_ID": "AKIDFAKEFAKEFAKE",
            "AWS_SECRET_ACCESS_KEY": "fake-secret",
            "AWS_REGION_NAME": "us-east-1",
        }
        return WireSpec(self.name, "bedrock/converse/anthropic.claude-3-5-sonnet-20240620-v1:0", url, env, {})

    def route(self, method: str, path: str) -> bool:
        """``POST /model/{modelId}/converse`` or ``/converse-stream``."""
        return method == "POST" and bool(ROUTE.search(path))

    def sample(self, stream: bool) -> tuple[str, dict[str, Any]]:
        """``POST /model/{id}/converse-stream`` (or ``/converse``)."""
        action = "converse-stream" if stream else "converse"
        return f"/model/anthropic.claude-3-5-sonnet-20240620-v1:0/{action}", {
            "messages": [{"role": "user", "content": [{"text": "hi"}]}]
        }

    def ask(self, path: str, query: dict[str, str], body: Any, quirks: frozenset[str]) -> Ask:
        """Read a Converse request: toolConfig (tools, toolChoice), toolResult blocks, the JSON tool."""
        match = ROUTE.search(path)
        assert match is not None
        messages = body.get("messages") or []
        if not messages:
            raise Reject(
                400,
                {"message": "A conversation must start with a user message."},
                {"x-amzn-ErrorType": "ValidationException"},
            )
        ask = Ask(stream=match.group(2) == "converse-stream", model=match.group(1))
        config = body.get("toolConfig") or {}
        for tool in config.get("tools") or []:
            spec = tool.get("toolSpec") or {}
            ask.tools[spec.get("name", "")] = (spec.get("inputSchema") or {}).get("json") or {}
        choice = config.get("toolChoice") or {}
        if "tool" in choice:
            ask.forced = choice["tool"].get("name", "")
        elif "any" in choice and ask.tools:
            ask.forced = ""
        if JSON_TOOL in ask.tools and ask.forced in (JSON_TOOL, None):
            ask.json_tool, ask.schema, ask.forced = JSON_TOOL, ask.tools.pop(JSON_TOOL), None
        last = messages[-1]
        results = [
            b["toolResult"] for b in last.get("content") or [] if isinstance(b, dict) and "toolResult" in b
        ]
        if last.get("role") == "user" and results:
            ask.tool_result = "".join(last_text(r.get("content")) for r in results)
        return ask

    def _stop(self, answer: Answer) -> str:
        return answer.finish or ("tool_use" if answer.tool else "end_turn")

    def _usage(self, answer: Answer) -> dict[str, int]:
        tin, tout = answer.usage or (0, 0)
        return {"inputTokens": tin, "outputTokens": tout, "totalTokens": tin + tout}

    def whole(self, answer: Answer, ask: Ask, quirks: frozenset[str]) -> Any:
        """A ``ConverseResponse``."""
        content: list[dict[str, Any]] = []
        if answer.reasoning:
            content.append(
                {"reasoningContent": {"reasoningText": {"text": answer.reasoning, "signature": "ZmFrZQ=="}}}
            )
        if answer.text:
            content.append({"text": answer.text})
        if answer.tool:
            content.append(
                {"toolUse": {"toolUseId": answer.tool_id, "name": answer.tool[0], "input": answer.tool[1]}}
            )
        # Bedrock always sends usage (litellm fails without it): Reply(usage=False) reports zeros
        return {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": self._stop(answer),
            "usage": self._usage(answer),
            "metrics": {"latencyMs": 12},
        }

    def frames(self, answer: Answer, ask: Ask, quirks: frozenset[str]) -> list[Frame]:
        """messageStart, content blocks (start, deltas, stop), messageStop, metadata (usage)."""
        out = [Frame(event("messageStart", {"role": "assistant"}))]
        index = 0
        if answer.reasoning:
            out += [
                Frame(
                    event(
                        "contentBlockDelta",
                        {"contentBlockIndex": index, "delta": {"reasoningContent": {"text": p}}},
                    ),
                    True,
                )
                for p in answer.reasoning_pieces
            ]
            sig = {"contentBlockIndex": index, "delta": {"reasoningContent": {"signature": "ZmFrZQ=="}}}
            out += [
                Frame(event("contentBlockDelta", sig)),
                Frame(event("contentBlockStop", {"contentBlockIndex": index})),
            ]
            index += 1
        if answer.text:
            out += [
                Frame(event("contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": p}}), True)
                for p in answer.text_pieces
            ]
            out.append(Frame(event("contentBlockStop", {"contentBlockIndex": index})))
            index += 1
        if answer.tool:
            start = {
                "contentBlockIndex": index,
                "start": {"toolUse": {"toolUseId": answer.tool_id, "name": answer.tool[0]}},
            }
            out.append(Frame(event("contentBlockStart", start), True))
            out += [
                Frame(
                    event(
                        "contentBlockDelta", {"contentBlockIndex": index, "delta": {"toolUse": {"input": p}}}
                    ),
                    True,
                )
                for p in answer.args_pieces
            ]
            out.append(Frame(event("contentBlockStop", {"contentBlockIndex": index})))
        out.append(Frame(event("messageStop", {"stopReason": self._stop(answer)})))
        metadata: dict[str, Any] = {"metrics": {"latencyMs": 12}}
        if answer.usage is not None:
            metadata["usage"] = self._usage(answer)
        out.append(Frame(event("metadata", metadata)))
        return out

    def malformed(self, stream: bool, ask: Ask) -> bytes:
        """Bytes that are not an event-stream message (the prelude CRC is wrong)."""
        return (
            b"\x00\x00\x00\x20\x00\x00\x00\x00\xde\xad\xbe\xefnot an event stream"
            if stream
            else b'{"output": not json'
        )

    def error(
        self, status: int, message: str, retry_after: float | None = None
    ) -> tuple[Any, dict[str, str]]:
        """``{"message": ...}`` with the exception name in ``x-amzn-ErrorType``."""
        kind = ERROR_TYPES.get(status, "InternalServerException")
        return {"message": message}, {
            "x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"
        }
