"""One retry policy for every kind of call (chat streams and media): when to try again, and how long to wait.

Every attempt goes through the run's concurrency limiter (DataFrame runs: the AIMD limiter, which a 429
shrinks), and every retry is announced as a ``retry`` event (attempt 2, reason RateLimitError, wait seconds), so a
consumer can show why the answer restarts.

What is retried: errors that say so (``retryable``: 429, 5xx, resets, stalls), within the run's
``max_attempts``, each class at most its ``retry_limit`` times (a stall is retried once), never once
output was shown unless the caller allows it, and never when the provider asks to wait longer than
:data:`MAX_RETRY_AFTER`. What never reached a server (a missing package, credentials, an invalid URL,
DNS, a refused connection) is not retryable at all.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from nbplayground.core import errors as E
from nbplayground.core.types import Event, RunRequest, RunResult

T = TypeVar("T")

#: Backoff settings: first retry after ~BASE s, doubling, jittered, capped; Retry-After is honoured
#: up to MAX_RETRY_AFTER s (a longer wait fails the run with a message saying how long was asked).
BACKOFF_BASE = 0.5
BACKOFF_CAP = 20.0
MAX_RETRY_AFTER = 60.0


def backoff_delay(attempt: int, retry_after: float | None) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): jittered exponential, >= Retry-After."""
    delay = min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** (attempt - 1)) * random.uniform(0.5, 1.0)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def should_retry(
    exc: E.NBPlaygroundError, attempt: int, req: RunRequest, output_began: bool, retried: dict[type, int]
) -> bool:
    """Whether to try again after ``exc`` ended attempt number ``attempt``."""
    if not exc.retryable or attempt >= req.max_attempts:
        return False
    if output_began and not req.retry_after_output:
        return False
    if exc.retry_after is not None and exc.retry_after > MAX_RETRY_AFTER:
        return False
    limit = getattr(exc, "retry_limit", None)
    if limit is not None and retried.get(type(exc), 0) >= limit:
        return False
    retried[type(exc)] = retried.get(type(exc), 0) + 1
    return True


async def with_retries(
    req: RunRequest,
    result: RunResult,
    emit: Callable[[Event], None],
    attempt_once: Callable[[], Awaitable[T]],
    output_began: Callable[[], bool] = lambda: False,
    restart: Callable[[], None] = lambda: None,
) -> T:
    """Run ``attempt_once`` until it succeeds or fails for good; ``restart`` clears a failed try's output."""
    attempt = 0
    retried: dict[type, int] = {}
    while True:
        attempt += 1
        result.attempts = max(result.attempts, attempt)
        limiter = req.limiter
        try:
            if limiter is not None:
                await limiter.acquire()
            value = await attempt_once()
            if limiter is not None:
                limiter.release(ok=True)
                limiter = None
            return value
        except E.NBPlaygroundError as exc:
            if limiter is not None:
                limiter.release(ok=False, rate_limited=isinstance(exc, E.RateLimitError))
                limiter = None
            if not should_retry(exc, attempt, req, output_began(), retried):
                raise
            restart()
            wait = backoff_delay(attempt, exc.retry_after)
            emit(
                Event(
                    "retry", req.target_index, req.run_id, attempt=attempt + 1, reason=type(exc).__name__,
                    wait=round(wait, 3),
                )
            )
            await asyncio.sleep(wait)
        finally:
            if limiter is not None:  # stopped, or an unexpected error: give the slot back
                limiter.release(ok=False)
