"""One mapping from provider failures (HTTP statuses, litellm exceptions) to nbplayground errors."""

from __future__ import annotations

import re
from typing import Any

from nbplayground.core import errors as E
from nbplayground.core.providers import suggestions
from nbplayground.core.secrets import redact
from nbplayground.core.types import ProviderCall

_CONTEXT = re.compile(
    r"context[_ ]length|maximum context|context window|too many tokens|prompt is too long", re.I
)
_MODEL_MISSING = re.compile(r"model.*(not found|does not exist|not exist|unknown|invalid model)", re.I)


def from_http(
    status: int, message: str, retry_after: float | None, call: ProviderCall
) -> E.NBPlaygroundError:
    """Map an HTTP error answer to the error a user can act on."""
    message = (redact(message) or "").rstrip(". ") or "no details"
    where = f"{call.provider}/{call.model}"
    if status == 429:
        wait = f" (asked to wait {retry_after:g} s)" if retry_after is not None else ""
        return E.RateLimitError(
            f"Rate limited by {call.provider}{wait}: {message}", retry_after=retry_after, status=status
        )
    if status in (401, 403):
        return E.AuthError(
            f"{call.provider} refused the API key (HTTP {status}): {message}. Check the key's value and access.",
            status=status,
        )
    if status == 404 and (_MODEL_MISSING.search(message) or "model" in message.lower()):
        return E.UnknownModelError(
            where, suggestions(where), detail=f"the provider says: {message}", status=status
        )
    if status in (400, 413, 422) and _CONTEXT.search(message):
        return E.ContextTooLongError(
            f"The prompt is too long for {where}: {message}. Shorten it or pick a model with a larger context.",
            status=status,
        )
    if status in (400, 422):
        if _MODEL_MISSING.search(message):
            return E.UnknownModelError(
                where, suggestions(where), detail=f"the provider says: {message}", status=status
            )
        return E.BadParameterError(f"{where} rejected the request (HTTP {status}): {message}", status=status)
    if status == 408:
        return E.ProviderTimeoutError(f"{where} timed out (HTTP 408): {message}", status=status)
    if status >= 500:
        return E.ServerError(
            f"{call.provider} failed (HTTP {status}): {message}", retry_after=retry_after, status=status
        )
    return E.ProviderError(f"{where} answered HTTP {status}: {message}", status=status)


def from_litellm(exc: BaseException, call: ProviderCall) -> E.NBPlaygroundError:
    """Map a litellm (or openai SDK / httpx) exception raised by litellm to our vocabulary."""
    if isinstance(exc, E.NBPlaygroundError):
        return exc
    import httpx

    status: int | None = getattr(exc, "status_code", None)
    message = str(getattr(exc, "message", None) or exc)
    # litellm prefixes messages with "litellm.RateLimitError: OpenAIException - ..." — keep the tail.
    message = re.sub(r"^(litellm\.\w+:\s*)+", "", message)
    message = re.sub(r"^\w+Exception - ", "", message).strip()
    if message.startswith(("b'{", 'b"{', "{")):  # a raw error body: keep its human message
        from nbplayground.core.openai_compat import error_message

        message = error_message(message[message.index("{") : message.rindex("}") + 1])
    name = type(exc).__name__
    if name == "MidStreamFallbackError" or "before a finish_reason" in message:
        return E.StreamError(
            "The stream ended before the model finished (no finish reason): the answer is incomplete."
        )
    response: Any = getattr(exc, "response", None)
    headers = getattr(exc, "litellm_response_headers", None) or getattr(response, "headers", None)
    from nbplayground.core.openai_compat import parse_retry_after

    retry_after = parse_retry_after(headers) if headers is not None else None
    if name in ("Timeout", "APITimeoutError") or isinstance(exc, httpx.TimeoutException | TimeoutError):
        return E.ProviderTimeoutError(f"{call.provider} did not answer in time: {redact(message)}")
    if name in ("APIConnectionError", "ServiceUnavailableError") and not status:
        return E.ConnectionLostError(f"Could not reach {call.provider}: {redact(message)}")
    if isinstance(exc, httpx.TransportError | ConnectionError):
        return E.ConnectionLostError(f"The connection to {call.provider} failed: {name}")
    if name == "ContextWindowExceededError":
        return E.ContextTooLongError(
            f"The prompt is too long for {call.provider}/{call.model}: {redact(message)}"
        )
    if name == "AuthenticationError" and status is None:
        status = 401
    if name == "RateLimitError" and status is None:
        status = 429
    if name == "NotFoundError" and status is None:
        status = 404
    if name == "BadRequestError" and "LLM Provider NOT provided" in message:
        where = f"{call.provider}/{call.model}"
        return E.UnknownModelError(where, suggestions(where))
    if status:
        return from_http(int(status), message, retry_after, call)
    if name in ("InternalServerError", "APIError", "ServiceUnavailableError"):
        return E.ServerError(f"{call.provider} failed: {redact(message)}")
    return E.ProviderError(f"{call.provider} call failed ({name}): {redact(message)}")
