"""Gemini API (``models/{model}:streamGenerateContent?alt=sse`` and ``:generateContent``)."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from support.fakes.core import Answer, Ask, Frame, Reject, Wire, WireSpec, last_text, lower_types

STATUSES = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}  # fmt: skip
ROUTE = re.compile(r"/models/([^/:]+):(streamGenerateContent|generateContent)$")


def pick(obj: dict[str, Any], *names: str) -> Any:
    """The first of ``names`` present in ``obj`` (Gemini takes both snake_case and camelCase)."""
    for name in names:
        if name in obj:
            return obj[name]
    return None


def gemini_sse(data: dict[str, Any]) -> bytes:
    """One Gemini SSE event (Gemini ends events with CRLF CRLF)."""
    import json

    return f"data: {json.dumps(data)}\r\n\r\n".encode()


class Gemini(Wire):
    """Google AI Studio's Gemini API."""

    name = "gemini"
    id_prefix: ClassVar[str] = "gemini_call_"

    def spec(self, url: str) -> WireSpec:
        """``gemini/gemini-2.0-flash`` with ``api_base=<url>`` (litellm appends ``/models/...``)."""
        return WireSpec(
            self.name,
            "gemini/gemini-2.0-flash",
            url,
            {"GEMINI_API_KEY": "fake-gemini-key"},
            {"api_key": "fake-gemini-key"},
        )

    def route(self, method: str, path: str) -> bool:
        """``POST .../models/{model}:streamGenerateContent`` or ``:generateContent``."""
        return method == "POST" and bool(ROUTE.search(path))

    def sample(self, stream: bool) -> tuple[str, dict[str, Any]]:
        """``POST /v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse`` (or ``:generateContent``)."""
        action = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"/v1beta/models/gemini-2.0-flash:{action}", {
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}]
        }

    def ask(self, path: str, query: dict[str, str], body: Any, quirks: frozenset[str]) -> Ask:
        """Read a generateContent request: function declarations, tool config, function responses, schema."""
        match = ROUTE.search(path)
        assert match is not None
        contents = body.get("contents") or []
        if not contents:
            raise Reject(
                400, self.error(400, "* GenerateContentRequest.contents: contents is not specified")[0]
            )
        stream = match.group(2) == "streamGenerateContent"
        if stream and query.get("alt") != "sse":
            raise Reject(400, self.error(400, "This fake streams only with alt=sse.")[0])
        ask = Ask(stream=stream, model=match.group(1))
        for tool in body.get("tools") or []:
            for decl in pick(tool, "function_declarations", "functionDeclarations") or []:
                schema = pick(decl, "parameters", "parametersJsonSchema", "parameters_json_schema") or {}
                ask.tools[decl["name"]] = lower_types(schema)
        config = pick(
            pick(body, "toolConfig", "tool_config") or {}, "functionCallingConfig", "function_calling_config"
        )
        if config and config.get("mode") == "ANY" and ask.tools:
            allowed = pick(config, "allowed_function_names", "allowedFunctionNames") or []
            ask.forced = allowed[0] if len(allowed) == 1 else ""
        parts = contents[-1].get("parts") or []
        results = [pick(p, "functionResponse", "function_response") for p in parts]
        results = [r for r in results if r]
        if results:
            texts = []
            for r in results:
                response = r.get("response")
                if (
                    isinstance(response, dict)
                    and len(response) == 1
                    and ("content" in response or "result" in response)
                ):
                    response = next(iter(response.values()))
                texts.append(last_text(response))
            ask.tool_result = "".join(texts)
        gen = pick(body, "generationConfig", "generation_config") or {}
        schema = pick(gen, "responseJsonSchema", "response_json_schema", "responseSchema", "response_schema")
        if schema is not None:
            ask.schema = lower_types(schema)
        elif pick(gen, "responseMimeType", "response_mime_type") == "application/json":
            ask.json_mode = True
        return ask

    def _parts(self, answer: Answer) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        if answer.reasoning:
            parts.append({"text": answer.reasoning, "thought": True})
        if answer.text:
            parts.append({"text": answer.text})
        if answer.tool:
            parts.append({"functionCall": {"name": answer.tool[0], "args": answer.tool[1]}})
        return parts

    def _response(
        self, ask: Ask, parts: list[dict[str, Any]], finish: str | None, answer: Answer
    ) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        out: dict[str, Any] = {"candidates": [candidate]}
        # Gemini always ends with usageMetadata (litellm fails without it): Reply(usage=False) reports zeros
        tin, tout = answer.usage or (0, 0)
        if finish:
            out["usageMetadata"] = {
                "promptTokenCount": tin,
                "candidatesTokenCount": tout,
                "totalTokenCount": tin + tout,
            }
        elif answer.usage is not None:
            out["usageMetadata"] = {"promptTokenCount": tin, "totalTokenCount": tin}
        out.update(modelVersion=ask.model, responseId="fake-response-0001")
        return out

    def whole(self, answer: Answer, ask: Ask, quirks: frozenset[str]) -> Any:
        """A ``GenerateContentResponse``."""
        return self._response(ask, self._parts(answer), answer.finish or "STOP", answer)

    def frames(self, answer: Answer, ask: Ask, quirks: frozenset[str]) -> list[Frame]:
        """One ``GenerateContentResponse`` per piece; the last carries finishReason and the token counts."""
        out = [
            Frame(gemini_sse(self._response(ask, [{"text": p, "thought": True}], None, answer)), True)
            for p in answer.reasoning_pieces
        ]
        out += [
            Frame(gemini_sse(self._response(ask, [{"text": p}], None, answer)), True)
            for p in answer.text_pieces
        ]
        if answer.tool:
            call = {"functionCall": {"name": answer.tool[0], "args": answer.tool[1]}}
            out.append(Frame(gemini_sse(self._response(ask, [call], None, answer)), True))
        out.append(Frame(gemini_sse(self._response(ask, [{"text": ""}], answer.finish or "STOP", answer))))
        return out

    def error(
        self, status: int, message: str, retry_after: float | None = None
    ) -> tuple[Any, dict[str, str]]:
        """``{"error": {"code", "message", "status", "details"}}`` (RetryInfo on a 429 with a delay)."""
        err: dict[str, Any] = {"code": status, "message": message, "status": STATUSES.get(status, "UNKNOWN")}
        if retry_after is not None:
            err["details"] = [
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after:g}s"}
            ]
        return {"error": err}, {}
