"""Where runs live: the engine's background loop and ``RunHandle`` (iterate, poll, stop, wait for results).

How one target runs (streaming, retries, tools, structured output, usage, cost, timing) is in
:mod:`nbplayground.core.runner`; ``Runner``, ``OnDone`` and ``new_result`` are re-exported here.

All provider I/O runs on one background asyncio loop (a daemon thread), so that a Jupyter kernel (which
already runs its own loop), plain scripts and asyncio code can all use the same engine, and so that the
caller's thread stays free: a ``RunHandle`` can be iterated synchronously or asynchronously, and
``stop()`` from any thread cancels the request and closes its HTTP connection at once.

Core never imports storage: a finished run is handed to the ``on_done`` callback the surface wires up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from nbplayground.core import secrets
from nbplayground.core.runner import OnDone, Runner, new_result
from nbplayground.core.types import Event, RunRequest, RunResult

__all__ = ["OnDone", "RunHandle", "Runner", "engine_loop", "new_result"]


# --------------------------------------------------------------------------------------------------
# The background loop
# --------------------------------------------------------------------------------------------------
class _Loop:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    def get(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is not None and self._pid == os.getpid():
            return loop
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                ready = threading.Event()
                new_loop = asyncio.new_event_loop()

                def runner() -> None:
                    asyncio.set_event_loop(new_loop)
                    ready.set()
                    new_loop.run_forever()

                threading.Thread(target=runner, name="nbplayground-engine", daemon=True).start()
                ready.wait()
                self._loop, self._pid = new_loop, os.getpid()
            return self._loop


_engine_loop = _Loop()


def engine_loop() -> asyncio.AbstractEventLoop:
    """The engine's background event loop (started on first use)."""
    return _engine_loop.get()


# --------------------------------------------------------------------------------------------------
# RunHandle
# --------------------------------------------------------------------------------------------------
class RunHandle:
    """A run (or a compare of 1-4 targets) in progress.

    Iterate it (``for ev in h`` or ``async for ev in h``) to receive :class:`Event` objects as they
    happen; every consumer sees every event from the start. ``stop()`` ends it within milliseconds and
    keeps the partial text; ``result()`` / ``results()`` wait for the end.
    """

    def __init__(self, requests: list[RunRequest], on_done: OnDone | None = None) -> None:
        if not requests:
            raise ValueError("a run needs at least one target")
        self.requests = requests
        self.group_id = requests[0].group_id
        self._on_done = on_done
        self._events: list[Event] = []
        self._cond = threading.Condition()
        self._results: list[RunResult | None] = [None] * len(requests)
        self._remaining = len(requests)
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._tasks: list[asyncio.Task[RunResult]] = []
        self._stop_requested = False
        self._loop = engine_loop()
        self._started = concurrent.futures.Future[None]()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop)

    # -- engine side ------------------------------------------------------------------------------
    async def _start(self) -> None:
        runner = Runner(self._emit, self._on_done)
        self._tasks = []
        for req in self.requests:
            task = asyncio.create_task(runner.execute(req))
            task.add_done_callback(functools.partial(self._ensure_done, req=req))
            self._tasks.append(task)
        if self._stop_requested:
            for task in self._tasks:
                task.cancel()
        self._started.set_result(None)

    def _ensure_done(self, task: asyncio.Task[RunResult], req: RunRequest) -> None:
        """A task cancelled before it began never reached its own handler: end it as 'stopped'."""
        if self._results[req.target_index] is not None:
            return
        failed = None if task.cancelled() else task.exception()
        result = new_result(req)
        result.status = "error" if failed else "stopped"
        if failed:
            result.error = secrets.redact(f"Unexpected {type(failed).__name__}: {failed}")
            result.error_type = type(failed).__name__
        if self._on_done is not None:
            try:
                self._on_done(result)
            except Exception:
                pass
        self._emit(Event("done", req.target_index, req.run_id, result=result))

    def _emit(self, event: Event) -> None:
        with self._cond:
            self._events.append(event)
            if event.type == "done" and event.result is not None:
                self._results[event.target] = event.result
                self._remaining -= 1
            self._cond.notify_all()
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            loop.call_soon_threadsafe(_wake, fut)

    # -- caller side ------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """True once every target has finished."""
        return self._remaining == 0

    @property
    def run_ids(self) -> list[str]:
        """The run id of each target, in target order."""
        return [r.run_id for r in self.requests]

    def stop(self) -> None:
        """Stop every target now: cancel the requests, close their connections, keep partial text."""
        self._stop_requested = True

        def cancel() -> None:
            for task in self._tasks:
                task.cancel()

        self._loop.call_soon_threadsafe(cancel)

    def poll(self, index: int, timeout: float) -> tuple[list[Event], bool]:
        """Events after ``index``, waiting up to ``timeout`` s for one; and whether every target ended.

        Lets a display refresh on its own clock (e.g. 20 times a second) however fast tokens arrive.
        """
        with self._cond:
            if index >= len(self._events) and self._remaining:
                self._cond.wait(timeout)
            return self._events[index:], not self._remaining

    def __iter__(self) -> Iterator[Event]:
        index = 0
        while True:
            with self._cond:
                while index >= len(self._events) and self._remaining:
                    self._cond.wait(0.5)
                batch = self._events[index:]
                finished = not self._remaining
            index += len(batch)
            yield from batch
            if finished and index >= len(self._events):
                return

    async def apoll(self, index: int, timeout: float) -> tuple[list[Event], bool]:
        """Async :meth:`poll`: events after ``index``, waiting up to ``timeout`` s; never stops the run.

        For servers that must wake up on silence (SSE heartbeats) without blocking their event loop.
        """
        loop = asyncio.get_running_loop()
        with self._cond:
            if index < len(self._events) or not self._remaining:
                return self._events[index:], not self._remaining
            fut: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, fut))
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            pass
        with self._cond:
            return self._events[index:], not self._remaining

    async def __aiter__(self) -> AsyncIterator[Event]:
        index = 0
        loop = asyncio.get_running_loop()
        while True:
            with self._cond:
                batch = self._events[index:]
                finished = not self._remaining
                fut: asyncio.Future[None] | None = None
                if not batch and not finished:
                    fut = loop.create_future()
                    self._waiters.append((loop, fut))
            if fut is not None:
                try:
                    await fut
                except asyncio.CancelledError:
                    self.stop()
                    raise
                continue
            index += len(batch)
            for ev in batch:
                yield ev
            if finished and index >= len(self._events):
                return

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every target ends (True) or the timeout passes (False).

        A KeyboardInterrupt while waiting stops the run (partial text kept, status 'stopped') and is
        re-raised once the stopped result is recorded.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            with self._cond:
                while self._remaining:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    self._cond.wait(0.25 if left is None else min(left, 0.25))
        except KeyboardInterrupt:
            self.stop()
            with self._cond:
                end = time.monotonic() + 2.0
                while self._remaining and time.monotonic() < end:
                    self._cond.wait(0.05)
            raise
        return True

    def results(self, timeout: float | None = None) -> list[RunResult]:
        """Wait and return one RunResult per target (in target order)."""
        if not self.wait(timeout):
            raise TimeoutError(f"run did not finish within {timeout} s")
        return [r for r in self._results if r is not None]

    def result(self, timeout: float | None = None) -> RunResult:
        """Wait and return the RunResult (the first target's, for compares)."""
        return self.results(timeout)[0]

    def __await__(self) -> Any:
        async def _wait() -> list[RunResult]:
            async for _ in self:
                pass
            return [r for r in self._results if r is not None]

        results = yield from _wait().__await__()
        return results[0] if len(results) == 1 else results

    @property
    def events(self) -> list[Event]:
        """Every event so far (a copy)."""
        with self._cond:
            return list(self._events)

    def __repr__(self) -> str:
        state = "done" if self.done else "running"
        return f"RunHandle({len(self.requests)} target(s), {state}, run_ids={[i[:8] for i in self.run_ids]})"


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
