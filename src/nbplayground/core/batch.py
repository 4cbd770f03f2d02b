"""Many runs at once: an AIMD concurrency limiter and a worker pool that feeds the engine.

The limiter gates every *attempt* (not every row): on a 429 the allowed concurrency halves (once per
window, however many requests hit the limit together), each success adds about one slot per window
(additive increase), so throughput settles just under the provider's limit instead of hammering it.
Rows are produced lazily by the caller, so 100,000 rows never become 100,000 tasks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from nbplayground.core.engine import OnDone, Runner, engine_loop
from nbplayground.core.types import Event, RunRequest, RunResult


class AIMDLimiter:
    """Additive-increase / multiplicative-decrease cap on requests in flight (engine loop only)."""

    def __init__(self, maximum: int, minimum: int = 1, cooldown: float = 1.0) -> None:
        self.maximum = max(1, int(maximum))
        self.minimum = max(1, min(int(minimum), self.maximum))
        self.limit = float(self.maximum)
        self.cooldown = cooldown
        self.in_flight = 0
        self.rate_limited = 0
        self._last_cut = -1e9
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def allowed(self) -> int:
        """How many requests may be in flight now."""
        return max(self.minimum, int(self.limit))

    async def acquire(self) -> None:
        """Wait for a slot."""
        while self.in_flight >= self.allowed:
            fut = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut in self._waiters:
                    self._waiters.remove(fut)
                raise
        self.in_flight += 1

    def release(self, ok: bool, rate_limited: bool = False) -> None:
        """Give a slot back; ``rate_limited`` halves the limit, ``ok`` grows it by ~1 per window."""
        self.in_flight -= 1
        now = time.monotonic()
        if rate_limited:
            self.rate_limited += 1
            if now - self._last_cut >= self.cooldown:
                self.limit = max(float(self.minimum), self.limit / 2)
                self._last_cut = now
        elif ok and self.limit < self.maximum:
            self.limit = min(float(self.maximum), self.limit + 1.0 / max(self.limit, 1.0))
        free = self.allowed - self.in_flight
        while free > 0 and self._waiters:
            fut = self._waiters.pop(0)
            if not fut.done():
                fut.set_result(None)  # it re-checks the limit when it runs
                free -= 1


class Batch:
    """Run ``make(i)`` for i in ``rows`` with at most ``workers`` in progress; results go to ``on_result``.

    ``make`` returns a RunRequest, or None to skip the row (already done, over budget...). ``throttle``,
    when it returns True, pauses workers before their next row (backpressure). ``stop()`` ends
    the batch promptly: runs in flight end as 'stopped', rows not started are left alone.
    """

    def __init__(
        self,
        make: Callable[[int], RunRequest | None],
        rows: list[int],
        workers: int,
        on_result: OnDone,
        limiter: AIMDLimiter | None = None,
        throttle: Callable[[], bool] | None = None,
    ) -> None:
        self.make = make
        self.throttle = throttle
        self.rows = rows
        self.workers = max(1, workers)
        self.on_result = on_result
        self.limiter = limiter
        self.stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._next = 0

    async def _worker(self, runner: Runner) -> None:
        while not self.stopping and self._next < len(self.rows):
            while self.throttle is not None and self.throttle() and not self.stopping:
                await asyncio.sleep(0.01)  # let the consumer of results (e.g. the store) catch up
            if self.stopping or self._next >= len(self.rows):
                return
            i = self.rows[self._next]
            self._next += 1
            req = self.make(i)
            if req is None:
                continue
            req.limiter = self.limiter
            result = await runner.execute(req)
            if result.status == "stopped" and self.stopping:
                return

    async def run(self) -> None:
        """Run to the end (on the engine loop)."""
        runner = Runner(_drop, self.on_result, events=False)
        self._tasks = [
            asyncio.create_task(self._worker(runner)) for _ in range(min(self.workers, len(self.rows)))
        ]
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def start(self) -> Any:
        """Start on the engine loop; returns a concurrent.futures.Future."""
        return asyncio.run_coroutine_threadsafe(self.run(), engine_loop())

    def stop(self) -> None:
        """Stop scheduling rows and cancel the ones in flight (thread-safe)."""

        def cancel() -> None:
            self.stopping = True
            for task in self._tasks:
                task.cancel()

        self.stopping = True
        engine_loop().call_soon_threadsafe(cancel)


def _drop(event: Event) -> None:
    """Batch rows need no streaming events."""


def ok_result(result: RunResult) -> bool:
    """True for a row that needs no re-run."""
    return result.status == "ok"
