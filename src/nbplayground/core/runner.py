"""Running one target to its end: the chat/tool loop, streaming with retries, media, token estimates,
the completeness check and structured-output parsing.

``Runner.execute`` runs on the engine loop (see :mod:`nbplayground.core.engine`, which owns the loop and
``RunHandle``); it reports through the ``emit`` and ``on_done`` callbacks it is given and never imports storage.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from nbplayground.core import errors as E
from nbplayground.core import providers, secrets, tokens, transports
from nbplayground.core.plan import schema_of
from nbplayground.core.retry import with_retries
from nbplayground.core.tools import execute
from nbplayground.core.types import Event, ProviderCall, RunRequest, RunResult, ToolCall

OnDone = Callable[[RunResult], None]


def new_result(req: RunRequest) -> RunResult:
    """A run's result before it ends: everything about where it came from (a run stopped before it began
    is stored with the same provenance as one that finished)."""
    result = RunResult(
        id=req.run_id, model=req.model, kind=req.kind, surface=req.surface, messages=req.messages,
        variables=req.variables, template=_template_info(req), prompt_ref=req.prompt_ref,
        thread_id=req.thread_id, parent_id=req.parent_id, group_id=req.group_id, target_index=req.target_index,
        row_key=req.row_key,
    )  # fmt: skip
    result.params = {k: v for k, v in req.params.items() if k not in providers.CALL_OPTIONS}
    return result


class _State:
    __slots__ = ("done_text", "first_token_at", "parts", "reasoning", "started_at")

    def __init__(self) -> None:
        self.started_at = time.perf_counter()
        self.first_token_at: float | None = None
        self.done_text = ""  # text of finished tool rounds
        self.parts: list[str] = []  # text of the current round
        self.reasoning: list[str] = []

    @property
    def text(self) -> str:
        return self.done_text + "".join(self.parts)


class Runner:
    """Runs one request to its end on the engine loop: ``emit`` gets its events, ``on_done`` its result.

    ``events=False`` (batch rows, which nobody watches) skips the start, delta, usage, error and done
    events: building them for every row was work no one read.
    """

    def __init__(self, emit: Callable[[Event], None], on_done: OnDone | None = None, events: bool = True) -> None:
        self.emit = emit
        self.on_done = on_done
        self.events = events

    async def execute(self, req: RunRequest) -> RunResult:
        emit = self.emit
        target = req.target_index
        state = _State()
        result = new_result(req)
        if self.events:
            emit(Event("start", target, req.run_id, model=req.model))
        rm: providers.ResolvedModel | None = None
        try:
            if req.resolved is None and not providers.cost_map_ready():
                await asyncio.to_thread(providers.cost_map)  # ~20-50 ms once: not on the loop
            rm = req.resolved or providers.resolve(req.model)  # plan() resolved it already
            result.provider = rm.provider
            send, options = req.split or providers.split_params(rm, req.params)
            send = dict(send)
            result.params = dict(send)
            call = ProviderCall(
                model=rm.model, provider=rm.provider, messages=list(req.messages), params=send,
                tools=req.tools, response_format=schema_of(req.response_format), kind=req.kind,
                input=req.input, api_base=options.get("api_base") or options.get("base_url") or rm.api_base,
                api_key=providers.api_key_for(rm, options), timeout=options.get("timeout"),
                total_timeout=options.get("total_timeout"), litellm_model=rm.litellm_model,
                transport=rm.transport, stream=req.stream,
            )  # fmt: skip
            if options.get("extra_headers"):
                call.params = {**send, "extra_headers": options["extra_headers"]}
            call.options = {k: options[k] for k in ("api_version", "organization") if options.get(k)}
            transport = transports.for_call(call)
            if req.kind != "chat" and req.kind not in transport.capabilities.media:
                transport = transports.get("litellm")
            await transports.prepare(transport, call)  # slow first-use imports, in a thread
            state.started_at = time.perf_counter()  # timings start when the request is sent
            if req.kind == "chat":
                await self._chat(req, call, transport, result, state)
                if result.tokens_in is None or result.tokens_out is None:
                    await _estimate_tokens(call, result, state)
            else:
                await self._media(req, call, transport, result, state)
            result.status = "ok"
        except asyncio.CancelledError:
            result.status = "stopped"
            result.error = None
        except E.NBPlaygroundError as exc:
            result.status = "error"
            streaming = not isinstance(exc, E.StructuredOutputError | E.EmptyAnswerError)
            result.error = secrets.redact(_with_partial_note(str(exc), state) if streaming else str(exc))
            result.error_type = type(exc).__name__
            result.error_status = exc.status
            result.error_detail = secrets.redact(exc.detail) if exc.detail else None
        except Exception as exc:  # a bug or an unexpected library error: report, never crash the loop
            result.status = "error"
            result.error = secrets.redact(f"Unexpected {type(exc).__name__}: {exc}")
            result.error_type = type(exc).__name__
        if req.kind == "chat" or result.status != "ok":
            result.text = state.text if req.kind == "chat" else result.text
        if state.reasoning:
            result.reasoning = "".join(state.reasoning)
        end = time.perf_counter()
        result.latency_ms = round((end - state.started_at) * 1000, 3)
        if state.first_token_at is not None:
            result.ttft_ms = round((state.first_token_at - state.started_at) * 1000, 3)
        if rm is not None:
            result.cost_usd = rm.price(result.tokens_in, result.tokens_out)
        if self.on_done is not None:
            try:
                self.on_done(result)
            except Exception as exc:  # storage must never break a run
                import warnings

                warnings.warn(f"nbplayground: could not hand the run to storage: {exc}", stacklevel=1)
        if self.events:
            if result.status == "error":
                emit(Event("error", target, req.run_id, error=result.error, result=result))
            emit(Event("done", target, req.run_id, result=result))
        return result

    # -- chat -------------------------------------------------------------------------------------
    async def _chat(
        self,
        req: RunRequest,
        call: ProviderCall,
        transport: transports.Transport,
        result: RunResult,
        state: _State,
    ) -> None:
        for round_no in range(req.max_tool_rounds + 1):
            calls, finish, usage_in, usage_out = await self._stream_with_retries(
                req, call, transport, state, result
            )
            _add_usage(result, usage_in, usage_out)
            result.finish_reason = finish
            if not calls:
                break
            result.tool_calls.extend(calls)
            for tc in calls:
                self.emit(Event("tool_call", req.target_index, req.run_id, tool_call=tc))
            if req.tool_mode == "manual" or not req.tool_functions:
                break
            if round_no == req.max_tool_rounds:
                raise E.ProviderError(
                    f"The model kept calling tools after {req.max_tool_rounds} rounds; raise max_tool_rounds "
                    "or check the tools' results."
                )
            round_text = "".join(state.parts)
            state.done_text += round_text
            state.parts = []
            assistant = {
                "role": "assistant",
                "content": round_text or None,
                "tool_calls": [
                    {
                        "id": tc.id,
                        "type": "function",
                        "function": {"name": tc.name, "arguments": tc.arguments},
                    }
                    for tc in calls
                ],
            }
            tool_messages = []
            for tc in calls:
                content = await execute(tc, req.tool_functions)
                tool_messages.append({"role": "tool", "tool_call_id": tc.id, "content": content})
                self.emit(Event("tool_result", req.target_index, req.run_id, tool_call=tc))
            call.messages = [*call.messages, assistant, *tool_messages]
            if _forces_tool(call.params.get("tool_choice")):
                # A forced tool applies to the first round only: forced again after its result, the model
                # would call it forever (the OpenAI Agents SDK resets tool_choice the same way).
                call.params = {**call.params, "tool_choice": "auto"}
        _check_complete(state, result)
        if req.response_format is not None and result.finish_reason != "tool_calls":
            result.data = parse_structured(state.text, req.response_format)

    async def _stream_with_retries(
        self,
        req: RunRequest,
        call: ProviderCall,
        transport: transports.Transport,
        state: _State,
        result: RunResult,
    ) -> tuple[list[ToolCall], str | None, int | None, int | None]:
        emit = self.emit
        events = self.events
        target, run_id = req.target_index, req.run_id
        began = [False]

        async def once() -> tuple[list[ToolCall], str | None, int | None, int | None]:
            pending: dict[int, ToolCall] = {}
            finish: str | None = None
            tokens_in = tokens_out = None
            parts = state.parts
            async for chunk in transport.stream(call):
                text = chunk.text
                if text:
                    if state.first_token_at is None:
                        state.first_token_at = time.perf_counter()
                    parts.append(text)
                    began[0] = True
                    if events:
                        emit(Event("delta", target, run_id, text=text))
                if chunk.reasoning:
                    state.reasoning.append(chunk.reasoning)
                if chunk.tool_calls:
                    began[0] = True
                    if state.first_token_at is None:
                        state.first_token_at = time.perf_counter()
                    _merge_tool_calls(pending, chunk.tool_calls)
                if chunk.usage is not None:
                    tokens_in, tokens_out = chunk.usage.tokens_in, chunk.usage.tokens_out
                    if events:
                        emit(Event("usage", target, run_id, usage=chunk.usage))
                if chunk.finish_reason:
                    finish = chunk.finish_reason
            if finish is None:
                raise E.StreamError(
                    "The stream ended before the model finished (no finish reason): the answer is incomplete."
                )
            calls = [pending[i] for i in sorted(pending)]
            for i, tc in enumerate(calls):
                if not tc.id:
                    tc.id = f"call_{run_id[:8]}_{i}"
            return calls, finish, tokens_in, tokens_out

        def restart() -> None:  # retrying after output was shown: consumers start the text over
            if began[0]:
                del state.parts[:]
                del state.reasoning[:]
            began[0] = False

        return await with_retries(req, result, emit, once, lambda: began[0], restart)

    # -- media ------------------------------------------------------------------------------------
    async def _media(
        self,
        req: RunRequest,
        call: ProviderCall,
        transport: transports.Transport,
        result: RunResult,
        state: _State,
    ) -> None:
        if call.input is None and req.kind == "transcription":
            raise E.BadParameterError("A transcription needs input= (audio bytes, a file path or a Media).")
        out = await with_retries(req, result, self.emit, lambda: transport.generate(call))
        state.first_token_at = time.perf_counter()
        if out.media is not None:
            result.media.append(out.media)
        if req.kind == "transcription":
            result.text = out.text
        elif req.kind == "image":
            result.text = (out.media.revised_prompt if out.media else None) or out.text or ""
        else:
            result.text = out.text or (call.input if isinstance(call.input, str) else "")
        if result.text and self.events:
            self.emit(Event("delta", req.target_index, req.run_id, text=result.text))
        if out.usage is not None:
            _add_usage(result, out.usage.tokens_in, out.usage.tokens_out)
        result.finish_reason = "stop"


async def _estimate_tokens(call: ProviderCall, result: RunResult, state: _State) -> None:
    """Count the tokens a server did not report (many local servers omit usage), and say they are counted."""
    if not tokens.ready():
        await asyncio.to_thread(tokens.load)  # reading the encoding takes ~0.3 s once
    if result.tokens_in is None:
        result.tokens_in = tokens.count_messages(call.messages, call.tools)
    if result.tokens_out is None:
        produced = state.text + "".join(state.reasoning) + "".join(tc.arguments for tc in result.tool_calls)
        result.tokens_out = tokens.count(produced)
    result.tokens_estimated = True


def _forces_tool(choice: Any) -> bool:
    """Whether a ``tool_choice`` forces a tool call ("required", "any", or a named function)."""
    if isinstance(choice, dict):
        return choice.get("type") not in (None, "auto", "none")
    return choice in ("required", "any")


def _check_complete(state: _State, result: RunResult) -> None:
    """A run is complete only when it delivered something: text or a tool call (a finish alone is not)."""
    if state.text or result.tool_calls:
        return
    finish = result.finish_reason
    if finish == "length":
        thought = " (all of it went to reasoning)" if state.reasoning else ""
        raise E.EmptyAnswerError(
            f"The model used all its tokens before writing any answer{thought}: raise max_tokens."
        )
    if finish in ("content_filter", "safety", "SAFETY", "blocked", "recitation"):
        raise E.EmptyAnswerError(
            f"The provider withheld the answer (finish reason {finish!r}): its content filter blocked it."
        )
    raise E.EmptyAnswerError(
        f"The provider returned an empty or unreadable answer (finish reason {finish!r}, no text and no tool call)."
    )


def _merge_tool_calls(pending: dict[int, ToolCall], deltas: list[Any]) -> None:
    for d in deltas:
        tc = pending.get(d.index)
        if tc is None:
            pending[d.index] = ToolCall(id=d.id or "", name=d.name or "", arguments=d.arguments or "")
            continue
        if d.id and not tc.id:
            tc.id = d.id
        if d.name and not tc.name:
            tc.name = d.name
        if d.arguments:
            tc.arguments += d.arguments


def _add_usage(result: RunResult, tokens_in: int | None, tokens_out: int | None) -> None:
    if tokens_in is not None:
        result.tokens_in = (result.tokens_in or 0) + tokens_in
    if tokens_out is not None:
        result.tokens_out = (result.tokens_out or 0) + tokens_out


def _with_partial_note(message: str, state: _State) -> str:
    if state.text and "incomplete" not in message:
        return f"{message} The partial text is kept."
    return message


#: The template record made last, with what it was made of: the rows of a batch share their template's parts,
#: so they share one record (and the store dumps it once for the batch, not once per row).
_last_info: tuple[tuple[Any, ...], tuple[Any, ...], dict[str, Any] | None] | None = None


def _template_info(req: RunRequest) -> dict[str, Any] | None:
    global _last_info
    parts = (req.template_messages, req.tools, req.response_format)
    text_input = req.input if isinstance(req.input, str) and req.kind != "transcription" else None
    last = _last_info
    if last is not None and all(a is b for a, b in zip(last[0], parts, strict=True)) and last[1] == (
        req.tool_mode, text_input
    ):
        return last[2]
    info = _make_template_info(req)
    _last_info = (parts, (req.tool_mode, text_input), info)
    return info


def _make_template_info(req: RunRequest) -> dict[str, Any] | None:
    info: dict[str, Any] = {}
    if req.template_messages is not None:
        info["messages"] = req.template_messages
    if req.tools:
        info["tools"] = req.tools
    if req.response_format is not None:
        try:
            info["response_format"] = schema_of(req.response_format)
        except E.NBPlaygroundError:
            pass
    if req.tool_mode != "auto":
        info["tool_mode"] = req.tool_mode
    if isinstance(req.input, str) and req.kind != "transcription":
        info["input"] = req.input
    return info or None


def _strip_fences(text: str) -> str:
    stripped = text.strip()
    if stripped.startswith("```"):
        first_nl = stripped.find("\n")
        if first_nl != -1 and stripped.endswith("```"):
            return stripped[first_nl + 1 : -3].strip()
    return stripped


def parse_structured(text: str, response_format: Any) -> Any:
    """Parse the model's text for a pydantic model or JSON schema; clear error when it does not fit."""
    raw = _strip_fences(text)
    name = getattr(response_format, "__name__", None) or (
        response_format.get("title", "the schema") if isinstance(response_format, dict) else "the schema"
    )
    if hasattr(response_format, "model_validate_json"):
        from pydantic import ValidationError

        try:
            return response_format.model_validate_json(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
                for err in exc.errors()[:3]
            )
            raise E.StructuredOutputError(
                f"The output does not match {name}: {problems}. The raw text is kept in .text."
            ) from None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise E.StructuredOutputError(
            f"The output is not valid JSON for {name} ({exc.msg} at char {exc.pos}). The raw text is kept in .text."
        ) from None
    except ValueError as exc:  # valid JSON that Python refuses, e.g. an integer over the 4300-digit limit
        raise E.StructuredOutputError(
            f"The output is not usable JSON for {name} ({exc}). The raw text is kept in .text."
        ) from None
    schema = response_format.get("schema", response_format) if isinstance(response_format, dict) else {}
    if isinstance(schema, dict) and schema.get("type") == "object":
        if not isinstance(value, dict):
            raise E.StructuredOutputError(f"The output is not a JSON object as {name} requires.")
        missing = [k for k in schema.get("required", []) if k not in value]
        if missing:
            raise E.StructuredOutputError(
                f"The output lacks required field(s) {', '.join(missing)} of {name}. The raw text is kept in .text."
            )
    return value
