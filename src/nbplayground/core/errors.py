"""Errors a user can act on. Every message says what went wrong and what to do about it."""

from __future__ import annotations

from collections.abc import Iterable


class NBPlaygroundError(Exception):
    """Base class of every nbplayground error."""

    #: whether the engine may retry the call that raised it (429, 5xx, timeouts, resets)
    retryable: bool = False
    #: seconds the provider asked us to wait (Retry-After), if any
    retry_after: float | None = None

    def __init__(self, message: str, *, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        if retry_after is not None:
            self.retry_after = retry_after

    def __str__(self) -> str:
        return self.message


class TemplateError(NBPlaygroundError, ValueError):
    """A template could not be rendered (for example, variables are missing)."""


class MissingVariablesError(TemplateError, KeyError):
    """One or more ``{{placeholders}}`` have no value. Lists all of them at once."""

    def __init__(self, missing: Iterable[str], available: Iterable[str]) -> None:
        self.missing = sorted(set(missing))
        self.available = sorted(set(available))
        names = ", ".join(self.missing)
        have = ", ".join(self.available) if self.available else "none"
        plural = "s" if len(self.missing) > 1 else ""
        super().__init__(f"Missing template variable{plural}: {names}. Available variables: {have}.")


class MissingColumnsError(MissingVariablesError):
    """A DataFrame run names columns the frame does not have. Lists all of them at once."""

    def __init__(self, missing: Iterable[str], available: Iterable[str]) -> None:
        super().__init__(missing, available)
        names = ", ".join(self.missing)
        plural = "s" if len(self.missing) > 1 else ""
        self.message = (
            f"Missing column{plural}: {names}. The frame has: {', '.join(self.available) or 'no columns'}."
        )
        self.args = (self.message,)


class ConfigError(NBPlaygroundError, ValueError):
    """The configuration file or a ``configure()`` call is invalid."""


class UnknownModelError(NBPlaygroundError, ValueError):
    """The model name is not known to nbplayground, litellm or the provider."""

    def __init__(self, model: str, suggestions: Iterable[str] = (), detail: str = "") -> None:
        self.model = model
        self.suggestions = list(suggestions)
        hint = f" Did you mean: {', '.join(self.suggestions)}?" if self.suggestions else ""
        more = f" ({detail})" if detail else ""
        super().__init__(
            f"Unknown model {model!r}{more}.{hint} "
            "Use 'provider/model' (e.g. 'openai/gpt-4o-mini'), a 'mock/...' model, or add it with "
            "nbp.configure(models=...)."
        )


class BadParameterError(NBPlaygroundError, ValueError):
    """A parameter was rejected (by nbplayground's checks or by the provider)."""


class MissingKeyError(NBPlaygroundError):
    """No API key is available for the provider. Names the env var to set, never a value."""

    def __init__(self, provider: str, env_var: str) -> None:
        self.provider = provider
        self.env_var = env_var
        super().__init__(
            f"No API key for {provider}: set the environment variable {env_var} "
            f"(or point the model at another variable with api_key_env in nbp.configure)."
        )


class AuthError(NBPlaygroundError):
    """The provider refused the API key (401/403)."""


class ContextTooLongError(NBPlaygroundError):
    """The prompt does not fit in the model's context window."""


class RateLimitError(NBPlaygroundError):
    """The provider answered 429: too many requests."""

    retryable = True


class ProviderError(NBPlaygroundError):
    """The provider failed (5xx) or sent something nbplayground could not use."""


class ServerError(ProviderError):
    """A 5xx from the provider: retryable."""

    retryable = True


class ProviderTimeoutError(ProviderError):
    """The provider did not answer in time (connect or read timeout, or a stalled stream)."""

    retryable = True


class ConnectionLostError(ProviderError):
    """The connection failed or was reset (before or during the stream)."""

    retryable = True


class StreamError(ProviderError):
    """The stream broke off or ended without a finish reason: the text is incomplete."""


class StructuredOutputError(NBPlaygroundError, ValueError):
    """The model's output is not valid for the requested schema. The raw text is kept on the run."""


class RunStopped(NBPlaygroundError):
    """Raised inside the engine when a run is stopped; surfaces see status 'stopped' instead."""


class StoreError(NBPlaygroundError):
    """The history store could not be read or written."""


class PromptNotFoundError(NBPlaygroundError, KeyError):
    """No prompt (or version, or label) with that reference exists in the registry."""
