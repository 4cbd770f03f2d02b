"""Errors a user can act on. Every message says what went wrong and what to do about it.

Each error carries ``field``, the input it is about when one is to blame (``"model"``,
``"params.temperature"``, ``"variables.name"``, ``"messages[2].role"``, ``"response_format"``, ``"run_id"``),
set where it is raised, and its class's ``http_status``, the one table from error to HTTP status:

- 400: the input is wrong and the caller can fix it (template, parameter, model name, prompt too long,
  an ambiguous run id prefix);
- 404: the run or prompt it names does not exist;
- 429: the provider is rate limiting; 502: the provider failed, refused the server's credentials or
  answered something unusable; 504: the provider did not answer in time;
- 500: this machine is not set up for it (configuration, API key, a package), or an unclassified error;
  503: the history store is busy or failed (try again); 499: the run was stopped (never sent as a response).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class NBPlaygroundError(Exception):
    """Base class of every nbplayground error."""

    #: whether the engine may retry the call that raised it (429, 5xx, timeouts, resets)
    retryable: bool = False
    #: seconds the provider asked us to wait (Retry-After), if any
    retry_after: float | None = None
    #: the HTTP status an API answers with when this error refuses a request (see the module docstring)
    http_status: int = 500

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = None,
        detail: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        #: the provider's HTTP status, when the error came from its answer (not ``http_status``)
        self.status = status
        #: the input the error is about (``"params.temperature"``), when one is to blame
        self.field = field
        #: what helps debugging but is not for the message (the first bytes of an unreadable body)
        self.detail = detail
        if retry_after is not None:
            self.retry_after = retry_after

    def __str__(self) -> str:
        return self.message


class TemplateError(NBPlaygroundError, ValueError):
    """A template could not be rendered (for example, variables are missing)."""

    http_status = 400


class MissingVariablesError(TemplateError):
    """One or more ``{{placeholders}}`` have no value. Lists all of them at once."""

    def __init__(self, missing: Iterable[str], available: Iterable[str], *, field: str | None = None) -> None:
        self.missing = sorted(set(missing))
        self.available = sorted(set(available))
        names = ", ".join(self.missing)
        have = ", ".join(self.available) if self.available else "none"
        plural = "s" if len(self.missing) > 1 else ""
        super().__init__(f"Missing template variable{plural}: {names}. Available variables: {have}.", field=field)


class MissingColumnsError(MissingVariablesError):
    """A DataFrame run names columns the frame does not have. Lists all of them at once."""

    def __init__(self, missing: Iterable[str], available: Iterable[str], *, field: str | None = None) -> None:
        super().__init__(missing, available, field=field)
        names = ", ".join(self.missing)
        plural = "s" if len(self.missing) > 1 else ""
        self.message = (
            f"Missing column{plural}: {names}. The frame has: {', '.join(self.available) or 'no columns'}."
        )
        self.args = (self.message,)


class ConfigError(NBPlaygroundError, ValueError):
    """The configuration file or a ``configure()`` call is invalid."""

    http_status = 500  # on a server the configuration is the administrator's, not the caller's


class UnknownModelError(NBPlaygroundError, ValueError):
    """The model name is not known to nbplayground, litellm or the provider."""

    http_status = 400

    def __init__(
        self,
        model: str,
        suggestions: Iterable[str] = (),
        detail: str = "",
        *,
        status: int | None = None,
        hint: str | None = None,
        field: str | None = "model",
    ) -> None:
        self.model = model
        self.suggestions = list(suggestions)
        did_you_mean = f" Did you mean: {', '.join(self.suggestions)}?" if self.suggestions else ""
        more = f" ({detail})" if detail else ""
        advice = hint or (
            "Use 'provider/model' (e.g. 'openai/gpt-4o-mini'), a 'mock/...' model, or add it with "
            "nbp.configure(models=...)."
        )
        super().__init__(f"Unknown model {model!r}{more}.{did_you_mean} {advice}", status=status, field=field)


class BadParameterError(NBPlaygroundError, ValueError):
    """A parameter was rejected (by nbplayground's checks or by the provider)."""

    http_status = 400


class MissingKeyError(NBPlaygroundError):
    """No API key is available for the provider. Names the env var to set, never a value."""

    http_status = 500  # the key is the server's to hold, not the caller's to send

    def __init__(self, provider: str, env_var: str) -> None:
        self.provider = provider
        self.env_var = env_var
        super().__init__(
            f"No API key for {provider}: set the environment variable {env_var} "
            f"(or point the model at another variable with api_key_env in nbp.configure)."
        )


class AuthError(NBPlaygroundError):
    """The provider refused the API key (401/403)."""

    http_status = 502  # the provider refused the server's credentials: not the caller's to fix


class ContextTooLongError(NBPlaygroundError):
    """The prompt does not fit in the model's context window."""

    http_status = 400


class RateLimitError(NBPlaygroundError):
    """The provider answered 429: too many requests."""

    retryable = True
    http_status = 429


class ProviderError(NBPlaygroundError):
    """The provider failed (5xx) or sent something nbplayground could not use."""

    http_status = 502


class ServerError(ProviderError):
    """A 5xx from the provider: retryable."""

    retryable = True


class ProviderTimeoutError(ProviderError):
    """The provider made no progress in time (nothing after the request, or a stalled stream).

    Retried at most once (``retry_limit``): a server that stalls twice is unlikely to answer a third time,
    and each try costs a whole timeout.
    """

    retryable = True
    retry_limit = 1
    http_status = 504

    def __init__(self, message: str, *, first_byte: bool = True, **kw: Any) -> None:
        super().__init__(message, **kw)
        #: whether the stall came before any byte of the answer
        self.first_byte = first_byte


class ConnectionLostError(ProviderError):
    """The connection failed or was reset (before or during the stream)."""

    retryable = True


class StreamError(ProviderError):
    """The stream broke off or ended without a finish reason: the text is incomplete."""


class EmptyAnswerError(ProviderError):
    """The provider's answer held no text, tool call or structured result, or could not be read at all.

    ``detail`` keeps the first bytes of an unreadable body (an HTML page, say) for debugging.
    """


class UnreachableError(ProviderError):
    """The request never reached a server (an invalid URL, a DNS failure, a refused connection). Not retried."""


class SetupError(NBPlaygroundError):
    """Something on this machine is missing before any request can be made (a package, credentials). Not retried."""

    http_status = 500


class StructuredOutputError(NBPlaygroundError, ValueError):
    """The model's output is not valid for the requested schema. The raw text is kept on the run."""

    http_status = 502  # the request was fine; the model's answer was not


class RunStopped(NBPlaygroundError):
    """Raised inside the engine when a run is stopped; surfaces see status 'stopped' instead."""

    http_status = 499  # nginx's "client closed request": a stop comes from the caller


class StoreError(NBPlaygroundError):
    """The history store could not be read or written."""

    http_status = 503  # busy or failing for now: trying again may work


class StoreQueryError(StoreError):
    """The caller's read names no one thing (an ambiguous run id prefix) or its SQL is wrong: fix the input."""

    http_status = 400


class StoreCorruptError(StoreError):
    """The history file is damaged; nbplayground sets it aside (``history.corrupt-<time>.duckdb``)."""

    http_status = 500


class StoreReadOnlyError(StoreError):
    """The history store cannot be written here (a read-only home, mount or file); reads still work."""

    http_status = 500


class RunNotFoundError(NBPlaygroundError):
    """No run with that id (or id prefix) is in the history.

    Not a ``KeyError``: ``except LookupError`` around a dict lookup must not swallow it.
    """

    http_status = 404


class PromptNotFoundError(NBPlaygroundError):
    """No prompt (or version, or label) with that reference exists in the registry. Not a ``KeyError``."""

    http_status = 404


class ExperimentNotFoundError(NBPlaygroundError):
    """No experiment with that name or id is in the store (``field`` is ``"experiment"``). Not a ``KeyError``."""

    http_status = 404


# --------------------------------------------------------------------------------------------------
# What an API caller may see of a run's error
# --------------------------------------------------------------------------------------------------
#: Where the whole error is: API callers get a fixed sentence, the run history on the server keeps the text.
_DETAILS = "The full error is kept in the run history on the server."
#: One fixed, short message per error class ({status} is the provider's HTTP status, or "no status").
PUBLIC_MESSAGES: dict[str, str] = {
    "NBPlaygroundError": f"The run failed ({{status}}). {_DETAILS}",
    "TemplateError": "The prompt template could not be rendered; check its {{placeholders}} and the variables.",
    "MissingVariablesError": "The prompt has placeholders without values; pass them in variables.",
    "MissingColumnsError": "The prompt names columns the frame does not have; rename them or add the columns.",
    "ConfigError": "The server's nbplayground configuration is invalid; ask its administrator to fix it.",
    "UnknownModelError": "The provider does not know this model ({status}); pick one from GET playground/providers.",
    "BadParameterError": f"The provider rejected the request ({{status}}); check the parameters. {_DETAILS}",
    "MissingKeyError": "The server has no API key for this provider; ask its administrator to set one.",
    "AuthError": f"The provider refused the server's credentials ({{status}}); ask the server's administrator "
    f"to check the API key. {_DETAILS}",
    "ContextTooLongError": "The prompt is too long for this model's context window; shorten it or pick a model "
    "with a larger context.",
    "RateLimitError": "The provider is rate limiting requests ({status}); wait a moment and try again.",
    "ProviderError": f"The provider failed ({{status}}); try again later. {_DETAILS}",
    "ServerError": f"The provider failed ({{status}}); try again later. {_DETAILS}",
    "ProviderTimeoutError": "The provider did not answer in time; try again later or raise parameters.timeout.",
    "ConnectionLostError": "The connection to the provider failed or was reset; try again later.",
    "StreamError": "The provider's stream broke off before the answer was complete; any partial text is kept.",
    "EmptyAnswerError": "The provider returned an empty or unreadable answer; try again or check the endpoint.",
    "UnreachableError": "The server could not reach the provider's endpoint; ask its administrator to check it.",
    "SetupError": "The server is missing something this provider needs; ask its administrator to check the setup.",
    "StructuredOutputError": "The model's output does not match the requested schema; the raw text is kept.",
    "RunStopped": "The run was stopped before it finished.",
    "StoreError": f"The run history could not be read or written; try again. {_DETAILS}",
    "StoreQueryError": "The run history read was not valid (an ambiguous run id or an SQL error); fix it and retry.",
    "StoreCorruptError": "The run history file was damaged; the server set it aside and started a new one.",
    "StoreReadOnlyError": "The run history cannot be written on the server; runs are kept until it can be.",
    "PromptNotFoundError": "No such prompt in the registry; list the prompts with GET prompts.",
    "RunNotFoundError": "No such run in the history; list runs with GET history.",
    "ExperimentNotFoundError": "No such experiment; list them with GET experiments.",
}
#: Errors nbplayground raises itself, never carrying a provider's text when they have no HTTP status:
#: their own message is safe to show and says more than the fixed one.
OWN_ERRORS = frozenset({
    "TemplateError", "MissingVariablesError", "MissingColumnsError", "ConfigError", "UnknownModelError",
    "BadParameterError", "MissingKeyError", "StructuredOutputError", "RunStopped", "PromptNotFoundError",
    "ExperimentNotFoundError",
})  # fmt: skip


def public_message(error_type: str | None, status: int | None) -> str:
    """A short fixed message for an error class (and the provider's HTTP status): no provider text in it.

    Classes without their own entry use their nearest base class's; unknown types (a bug, an unexpected
    library error) get a generic sentence naming the type.
    """
    cls = globals().get(error_type or "")
    if isinstance(cls, type) and issubclass(cls, NBPlaygroundError):
        template = next(PUBLIC_MESSAGES[c.__name__] for c in cls.__mro__ if c.__name__ in PUBLIC_MESSAGES)
    else:
        name = error_type if error_type and error_type.isidentifier() else "unknown error"
        template = f"The run failed unexpectedly ({name}). {_DETAILS}"
    where = f"HTTP {int(status)}" if status is not None else "no HTTP status"
    return template.replace("{status}", where)


def caller_message(error_type: str | None, status: int | None, message: str | None) -> str:
    """What an API caller sees of a run's error: our own message when no provider text can be in it
    (one of :data:`OWN_ERRORS`, raised without an HTTP status), else :func:`public_message`."""
    if status is None and error_type in OWN_ERRORS and message:
        return message
    return public_message(error_type, status)
