"""OpenAI chat completions (``/v1/chat/completions``), Azure OpenAI, and llama-cpp-python's quirks."""

from __future__ import annotations

import re
import time
from typing import Any, ClassVar

from support.fakes.core import Answer, Ask, Frame, Reject, Wire, WireSpec, last_text, sse

OPENAI_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


def pydantic_errors(index: int) -> str:
    """llama-cpp-python's validation error for an assistant message whose content is null: long, one relevant line."""
    members = [
        ("ChatCompletionRequestSystemMessage", "role", "Input should be 'system'", "literal_error", "'assistant'", "str"),
        ("ChatCompletionRequestUserMessage", "role", "Input should be 'user'", "literal_error", "'assistant'", "str"),
        ("ChatCompletionRequestUserMessage", "content", "Field required", "missing", "{...}", "dict"),
        ("ChatCompletionRequestAssistantMessage", "content", "Input should be a valid string", "string_type", "None", "NoneType"),
        ("ChatCompletionRequestToolMessage", "role", "Input should be 'tool'", "literal_error", "'assistant'", "str"),
        ("ChatCompletionRequestToolMessage", "tool_call_id", "Field required", "missing", "{...}", "dict"),
        ("ChatCompletionRequestFunctionMessage", "role", "Input should be 'function'", "literal_error", "'assistant'", "str"),
        ("ChatCompletionRequestFunctionMessage", "name", "Field required", "missing", "{...}", "dict"),
    ]  # fmt: skip
    lines = [f"{len(members)} validation errors for CreateChatCompletionRequest"]
    for model, loc, msg, kind, value, typ in members:
        lines += [
            f"messages.{index}.{model}.{loc}",
            f"  {msg} [type={kind}, input_value={value}, input_type={typ}]",
            f"    For further information visit https://errors.pydantic.dev/2.9/v/{kind}",
        ]
    return "\n".join(lines)


class OpenAIChat(Wire):
    """OpenAI's chat-completions wire (and any OpenAI-compatible server)."""

    name = "openai"
    quirks: ClassVar[frozenset[str]] = frozenset(
        {"null_content_rejected", "json_object_schema_only", "no_stream_usage", "done_without_finish"}
    )

    def spec(self, url: str) -> WireSpec:
        """``openai/<model>`` with ``api_base=<url>/v1``."""
        return WireSpec(
            self.name, "openai/fake-model", f"{url}/v1", {"OPENAI_API_KEY": "sk-fake"}, {"api_key": "sk-fake"}
        )

    def route(self, method: str, path: str) -> bool:
        """``POST .../chat/completions``."""
        return method == "POST" and path.rstrip("/").endswith("/chat/completions")

    def sample(self, stream: bool) -> tuple[str, dict[str, Any]]:
        """``POST /v1/chat/completions``."""
        return "/v1/chat/completions", {
            "model": "fake-model",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": stream,
        }

    def ask(self, path: str, query: dict[str, str], body: Any, quirks: frozenset[str]) -> Ask:
        """Read an OpenAI chat request."""
        messages = body.get("messages") or []
        if not messages:
            raise Reject(400, self.error(400, "'messages' is a required property")[0])
        if "null_content_rejected" in quirks:
            for i, msg in enumerate(messages):
                if msg.get("role") == "assistant" and msg.get("content") is None:
                    raise Reject(
                        500, self._error_body(500, pydantic_errors(i), "internal_server_error", None)
                    )
        ask = Ask(stream=bool(body.get("stream")), model=str(body.get("model") or "fake-model"))
        for tool in body.get("tools") or []:
            fn = tool.get("function") or {}
            ask.tools[fn.get("name", "")] = fn.get("parameters") or {}
        choice = body.get("tool_choice")
        if choice == "required" and ask.tools:
            ask.forced = ""
        elif isinstance(choice, dict) and (choice.get("function") or {}).get("name"):
            ask.forced = choice["function"]["name"]
        last = messages[-1]
        if last.get("role") in ("tool", "function"):
            ask.tool_result = last_text(last.get("content"))
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_schema":
            if "json_object_schema_only" in quirks:
                raise Reject(400, self._error_body(400, _JSON_SCHEMA_REJECTED, "invalid_request_error", None))
            ask.schema = (fmt.get("json_schema") or {}).get("schema") or {}
        elif fmt.get("type") == "json_object":
            if isinstance(fmt.get("schema"), dict):
                ask.schema = fmt["schema"]
            else:
                ask.json_mode = True
        ask.include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return ask

    def _base(self, ask: Ask, obj: str) -> dict[str, Any]:
        return {
            "id": "chatcmpl-fake0001", "object": obj, "created": int(time.time()), "model": ask.model,
            "system_fingerprint": "fp_fake",
        }  # fmt: skip

    @staticmethod
    def _usage(answer: Answer) -> dict[str, int] | None:
        if answer.usage is None:
            return None
        tin, tout = answer.usage
        return {"prompt_tokens": tin, "completion_tokens": tout, "total_tokens": tin + tout}

    def _finish(self, answer: Answer) -> str:
        return answer.finish or ("tool_calls" if answer.tool else "stop")

    def whole(self, answer: Answer, ask: Ask, quirks: frozenset[str]) -> Any:
        """A ``chat.completion`` object."""
        msg: dict[str, Any] = {"role": "assistant", "content": answer.text or None, "refusal": None}
        if answer.reasoning:
            msg["reasoning_content"] = answer.reasoning
        if answer.tool:
            msg["tool_calls"] = [
                {
                    "id": answer.tool_id,
                    "type": "function",
                    "function": {"name": answer.tool[0], "arguments": answer.args},
                }
            ]
        out = {
            **self._base(ask, "chat.completion"),
            "choices": [
                {"index": 0, "message": msg, "logprobs": None, "finish_reason": self._finish(answer)}
            ],
        }
        usage = self._usage(answer)
        if usage is not None:
            out["usage"] = usage
        return out

    def _chunk(self, ask: Ask, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return sse({**self._base(ask, "chat.completion.chunk"), "choices": [choice]})

    def frames(self, answer: Answer, ask: Ask, quirks: frozenset[str]) -> list[Frame]:
        """``data:`` chunks, a finish chunk, a usage chunk when asked for, ``data: [DONE]``."""
        out = [Frame(self._chunk(ask, {"role": "assistant", "content": ""}))]
        out += [Frame(self._chunk(ask, {"reasoning_content": p}), True) for p in answer.reasoning_pieces]
        out += [Frame(self._chunk(ask, {"content": p}), True) for p in answer.text_pieces]
        if answer.tool:
            head = {
                "index": 0,
                "id": answer.tool_id,
                "type": "function",
                "function": {"name": answer.tool[0], "arguments": ""},
            }
            out.append(Frame(self._chunk(ask, {"tool_calls": [head]}), True))
            out += [
                Frame(self._chunk(ask, {"tool_calls": [{"index": 0, "function": {"arguments": p}}]}), True)
                for p in answer.args_pieces
            ]
        if "done_without_finish" not in quirks:
            out.append(Frame(self._chunk(ask, {}, self._finish(answer))))
        usage = self._usage(answer)
        if usage is not None and ask.include_usage and "no_stream_usage" not in quirks:
            out.append(
                Frame(sse({**self._base(ask, "chat.completion.chunk"), "choices": [], "usage": usage}))
            )
        out.append(Frame(b"data: [DONE]\n\n"))
        return out

    def _error_body(self, status: int, message: str, kind: str, code: Any) -> dict[str, Any]:
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}

    def error(
        self, status: int, message: str, retry_after: float | None = None
    ) -> tuple[Any, dict[str, str]]:
        """``{"error": {"message", "type", "param", "code"}}``."""
        kind, code = OPENAI_ERROR_TYPES.get(status, ("server_error", None))
        return self._error_body(status, message, kind, code), {"x-request-id": "req_fake"}


_JSON_SCHEMA_REJECTED = (
    "1 validation error for CreateChatCompletionRequest\nresponse_format.type\n"
    "  Input should be 'text' or 'json_object' [type=literal_error, input_value='json_schema', input_type=str]\n"
    "    For further information visit https://errors.pydantic.dev/2.9/v/literal_error"
)


class AzureOpenAI(OpenAIChat):
    """Azure OpenAI: ``/openai/deployments/{deployment}/chat/completions?api-version=...``, ``api-key`` header."""

    name = "azure"
    quirks: ClassVar[frozenset[str]] = frozenset()
    DEPLOYMENT = re.compile(r"/openai/deployments/([^/]+)/chat/completions/?$")

    def spec(self, url: str) -> WireSpec:
        """``azure/<deployment>`` with ``api_base=<url>`` and an ``api_version``."""
        return WireSpec(
            self.name, "azure/fake-deployment", url,
            {"AZURE_API_KEY": "fake-azure-key", "AZURE_API_VERSION": "2024-10-21"},
            {"api_key": "fake-azure-key", "api_version": "2024-10-21"},
        )  # fmt: skip

    def route(self, method: str, path: str) -> bool:
        """``POST /openai/deployments/{deployment}/chat/completions``."""
        return method == "POST" and bool(self.DEPLOYMENT.search(path))

    def sample(self, stream: bool) -> tuple[str, dict[str, Any]]:
        """``POST /openai/deployments/fake-deployment/chat/completions?api-version=2024-10-21``."""
        _path, body = super().sample(stream)
        return "/openai/deployments/fake-deployment/chat/completions?api-version=2024-10-21", body

    def ask(self, path: str, query: dict[str, str], body: Any, quirks: frozenset[str]) -> Ask:
        """An OpenAI body; the deployment in the path and ``api-version`` in the query are required."""
        if not query.get("api-version"):
            raise Reject(404, self.error(404, "Resource not found")[0])
        ask = super().ask(path, query, body, quirks)
        match = self.DEPLOYMENT.search(path)
        ask.model = match.group(1) if match else ask.model
        return ask

    def frames(self, answer: Answer, ask: Ask, quirks: frozenset[str]) -> list[Frame]:
        """Azure starts a stream with a ``prompt_filter_results`` chunk that has no choices."""
        filters = {
            "choices": [], "created": 0, "id": "", "model": "", "object": "",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {
                k: {"filtered": False, "severity": "safe"} for k in ("hate", "self_harm", "sexual", "violence")
            }}],
        }  # fmt: skip
        return [Frame(sse(filters)), *super().frames(answer, ask, quirks)]

    def error(
        self, status: int, message: str, retry_after: float | None = None
    ) -> tuple[Any, dict[str, str]]:
        """``{"error": {"code": "429", "message": ...}}``."""
        return {"error": {"code": str(status), "message": message}}, {"apim-request-id": "fake-apim"}
