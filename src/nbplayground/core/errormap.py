"""One mapping from provider failures (HTTP statuses, litellm exceptions) to nbplayground errors.

Errors are mapped from their *original* cause: litellm wraps a provider's 429 raised mid-stream in a
``MidStreamFallbackError`` (with ``original_exception``), a connection failure in ``APIConnectionError``
(with the httpx error as its cause); the mapping looks through the wrappers, so a 429 is retried as a 429
and a refused connection is reported as one. Failures on this machine (a missing package, missing
credentials, an invalid URL, DNS, a refused connection) never reached a server: they are not retried.
"""

from __future__ import annotations

import re
from typing import Any

from nbplayground.core import errors as E
from nbplayground.core.providers import DEFAULT_API_BASE, suggestions
from nbplayground.core.secrets import redact
from nbplayground.core.transports import http as H
from nbplayground.core.types import ProviderCall

_CONTEXT = re.compile(
    r"context[_ ]length|maximum context|context window|too many tokens|prompt is too long", re.I
)
_MODEL_MISSING = re.compile(r"model.*(not found|does not exist|not exist|unknown|invalid model)", re.I)
_MISSING_MODULE = re.compile(r"No module named '?([\w.]+)'?")
#: What litellm says when a 200 answer is not in the provider's format (it then invents a status 500).
_UNREADABLE = re.compile(
    r"Expecting (value|property name|',' delimiter)|Error parsing chunk|Unterminated string|Extra data|"
    r"Invalid control character|JSONDecodeError|Checksum mismatch|Invalid JSON|not valid JSON|Unable to parse",
    re.I,
)
_MISSING_CREDENTIALS = re.compile(
    r"missing credentials|api_key client option must be set|no api key|api key (is )?(required|missing)|"
    r"could not (load|find) (the )?(default )?credentials|unable to locate credentials|"
    r"DefaultCredentialsError",
    re.I,
)
#: The pip package to install for a module litellm could not import.
_PACKAGES = {"google": "google-auth", "google.auth": "google-auth", "boto3": "boto3", "botocore": "boto3",
             "vertexai": "google-cloud-aiplatform", "anthropic": "anthropic", "azure": "azure-identity"}  # fmt: skip


def label(call: ProviderCall) -> str:
    """How errors name the model: ``provider/model``, or ``model at host`` for a configured endpoint."""
    if call.api_base and call.api_base.rstrip("/") != DEFAULT_API_BASE.get(call.provider, "").rstrip("/"):
        return f"{call.model} at {H.host_of(call.api_base)}"
    return f"{call.provider}/{call.model}"


def from_status(status: int, message: str, retry_after: float | None, where: str) -> E.NBPlaygroundError:
    """Map an HTTP error status (with the provider's message) for the model or endpoint ``where``."""
    message = H.shorten(redact(message) or "").rstrip(". ") or "no details"
    if status == 429:
        wait = f" (asked to wait {retry_after:g} s)" if retry_after is not None else ""
        return E.RateLimitError(
            f"Rate limited by {where}{wait}: {message}", retry_after=retry_after, status=status
        )
    if status in (401, 403):
        return E.AuthError(
            f"{where} refused the API key (HTTP {status}): {message}. Check the key's value and access.",
            status=status,
        )
    if status in (400, 413, 422) and _CONTEXT.search(message):
        return E.ContextTooLongError(
            f"The prompt is too long for {where}: {message}. Shorten it or pick a model with a larger context.",
            status=status,
        )
    if status in (400, 422):
        return E.BadParameterError(f"{where} rejected the request (HTTP {status}): {message}", status=status)
    if status == 408:
        return E.ProviderTimeoutError(f"{where} timed out (HTTP 408): {message}", status=status)
    if status >= 500:
        return E.ServerError(
            f"{where} failed (HTTP {status}): {message}", retry_after=retry_after, status=status
        )
    return E.ProviderError(f"{where} answered HTTP {status}: {message}", status=status)


def from_http(
    status: int, message: str, retry_after: float | None, call: ProviderCall
) -> E.NBPlaygroundError:
    """Map an HTTP error answer to the error a user can act on."""
    where = label(call)
    missing_model = status == 404 and (_MODEL_MISSING.search(message) or "model" in message.lower())
    if missing_model or (status in (400, 422) and _MODEL_MISSING.search(message)):
        detail = f"{where} says: {redact(message).rstrip('. ')}"
        if " at " in where:  # a configured endpoint: suggesting other providers' models would not help
            hint = (f"Check the model name the server at {H.host_of(call.api_base)} serves (its /models list) "
                    "and that api_base ends where its API begins (often /v1).")  # fmt: skip
            return E.UnknownModelError(call.model, [], detail=detail, status=status, hint=hint)
        model = f"{call.provider}/{call.model}"
        return E.UnknownModelError(
            model, [s for s in suggestions(model) if s != model], detail=detail, status=status
        )
    if status == 404 and " at " in where:
        return E.ProviderError(
            f"{where} answered HTTP 404: {redact(message).rstrip('. ') or 'not found'}. Check that api_base "
            "ends where its API begins (often /v1).",
            status=status,
        )
    return from_status(status, message, retry_after, where)


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, what it wraps (``original_exception``) and its causes, outermost first."""
    out: list[BaseException] = []
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        cur = todo.pop(0)
        if cur is None or id(cur) in seen:
            continue
        seen.add(id(cur))
        out.append(cur)
        inner = getattr(cur, "original_exception", None)
        todo += [inner if isinstance(inner, BaseException) else None, cur.__cause__, cur.__context__]
    return out


def _clean(message: str) -> str:
    # litellm prefixes messages with "litellm.RateLimitError: OpenAIException - ..." — keep the tail.
    message = re.sub(r"^(litellm\.\w+:\s*)+", "", message)
    message = re.sub(r"^\w+Exception - ", "", message).strip()
    message = message.split("\nTraceback (most recent call last)")[0].strip()
    if message.startswith(("b'{", 'b"{', "{", "[{")):  # a raw error body: keep its human message
        start, end = message.find("{"), message.rfind("}")
        if start != -1 and end > start:
            body = message[start : end + 1]
            message = H.error_message(f"[{body}]" if message.startswith("[") else body)
    return message


def _retry_after(chain: list[BaseException]) -> float | None:
    """Retry-After from whichever layer kept the response's headers (litellm's own exceptions often
    carry an empty response; the httpx error underneath has the real one)."""
    for exc in chain:
        response: Any = getattr(exc, "response", None)
        for headers in (getattr(exc, "litellm_response_headers", None), getattr(response, "headers", None)):
            if headers:
                found = H.parse_retry_after(headers)
                if found is not None:
                    return found
    return None


def _status_of(chain: list[BaseException]) -> int | None:
    for exc in chain:
        status = getattr(exc, "status_code", None)
        if isinstance(status, int) and 400 <= status < 600:
            return status
    return None


def local_failure(chain: list[BaseException], call: ProviderCall) -> E.NBPlaygroundError | None:
    """The error for a failure on this machine (nothing reached a server), else None."""
    where = H.host_of(call.api_base) or f"the {call.provider} endpoint"
    for exc in chain:
        if isinstance(exc, ImportError) or _MISSING_MODULE.search(str(exc)):
            found = _MISSING_MODULE.search(str(exc))
            module = (getattr(exc, "name", None) or (found.group(1) if found else "")) or "a package"
            package = _PACKAGES.get(module, _PACKAGES.get(module.split(".")[0], module.split(".")[0]))
            return E.SetupError(
                f"{call.provider} needs the Python package {package!r}, which is not installed: "
                f"pip install {package} (then restart the kernel)."
            )
        if _MISSING_CREDENTIALS.search(str(exc)) and _status_of(chain) is None:
            return E.SetupError(
                f"No credentials for {label(call)}: set its API key (api_key_env in nbp.configure, or the "
                "provider's environment variable) or its cloud credentials."
            )
    for exc in chain:
        unreachable = H.unreachable(exc, where)
        if unreachable is not None:
            return unreachable
    return None


def from_litellm(exc: BaseException, call: ProviderCall) -> E.NBPlaygroundError:
    """Map an exception raised through litellm (its own, the openai SDK's, httpx's) to our vocabulary."""
    if isinstance(exc, E.NBPlaygroundError):
        return exc
    import httpx

    chain = _chain(exc)
    if not any(isinstance(c, E.NBPlaygroundError) for c in chain):
        found = local_failure(chain, call)
        if found is not None:
            return found
    for inner in chain:
        if isinstance(inner, E.NBPlaygroundError):
            return inner
    where = label(call)
    if any("before a finish_reason" in str(c) for c in chain):
        return E.StreamError("The stream ended before the model finished (no finish reason): the answer is incomplete.")
    unreadable = next((c for c in chain if isinstance(c, ValueError) or _UNREADABLE.search(str(c))), None)
    if unreadable is not None:
        return E.StreamError(
            f"{where} sent an answer that could not be read (not the provider's format: a proxy page, a torn "
            "body?); the answer is incomplete.",
            detail=H.first_bytes(_clean(str(unreadable))),
        )
    transport = next((c for c in chain if isinstance(c, httpx.TransportError)), None)
    if transport is not None:  # the connection failed: any status litellm attached to it is its own invention
        if isinstance(transport, httpx.TimeoutException):
            return E.ProviderTimeoutError(f"{where} did not answer in time ({type(transport).__name__}).")
        return E.ConnectionLostError(
            f"The connection to {where} was cut ({type(transport).__name__}): the answer is incomplete."
        )
    status = _status_of(chain)
    names = {type(c).__name__ for c in chain}
    message = next((_clean(str(getattr(c, "message", None) or c)) for c in chain if status is None
                    or getattr(c, "status_code", None) == status), _clean(str(exc)))  # fmt: skip
    retry_after = _retry_after(chain)
    if status is not None:
        if "ContextWindowExceededError" in names:
            return E.ContextTooLongError(
                f"The prompt is too long for {where}: {redact(message)}", status=status
            )
        return from_http(status, message, retry_after, call)
    if "before a finish_reason" in message or "MidStreamFallbackError" in names:
        return E.StreamError(
            "The stream ended before the model finished (no finish reason): the answer is incomplete."
        )
    if names & {"Timeout", "APITimeoutError"} or any(
        isinstance(c, httpx.TimeoutException | TimeoutError) for c in chain
    ):
        return E.ProviderTimeoutError(f"{where} did not answer in time: {redact(message)}")
    if (
        any(isinstance(c, httpx.TransportError | ConnectionError) for c in chain)
        or "APIConnectionError" in names
    ):
        return E.ConnectionLostError(f"The connection to {where} failed: {redact(H.shorten(message, 300))}")
    if "ContextWindowExceededError" in names:
        return E.ContextTooLongError(f"The prompt is too long for {where}: {redact(message)}")
    fallback = {"AuthenticationError": 401, "RateLimitError": 429, "NotFoundError": 404}
    for name, code in fallback.items():
        if name in names:
            return from_http(code, message, retry_after, call)
    if "BadRequestError" in names and "LLM Provider NOT provided" in message:
        model = f"{call.provider}/{call.model}"
        return E.UnknownModelError(model, suggestions(model))
    if names & {"InternalServerError", "APIError", "ServiceUnavailableError"}:
        return E.ServerError(f"{where} failed: {redact(H.shorten(message))}")
    return E.ProviderError(f"{where}: the call failed ({type(exc).__name__}): {redact(H.shorten(message))}")
