"""Coalescing of engine events into few comm messages: one per ~50 ms for all targets, deltas merged.

Sending a message per token would cost a front end thousands of messages a second; re-sending a growing
string trait would cost O(n²) bytes. Merged deltas cost O(n) bytes in about 20 messages a second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from nbplayground.core.engine import RunHandle
from nbplayground.core.fold import StreamFold, coalesce
from nbplayground.core.types import Event

#: Flush period: at most ~20 stream messages a second.
INTERVAL_S = 0.05


class StreamPump:
    """Follows a :class:`RunHandle` on its own thread and hands batched events to ``send``.

    ``send(events)`` is called at most once per ``interval`` while events arrive, and once more at the
    end; ``fold`` holds each target's state so far (for a view that attaches mid-run).
    """

    def __init__(
        self,
        handle: RunHandle,
        send: Callable[[list[dict[str, Any]]], None],
        on_end: Callable[[], None],
        interval: float = INTERVAL_S,
        event_dict: Callable[[Event], dict[str, Any]] | None = None,
    ) -> None:
        self.handle = handle
        self.fold = StreamFold([r.model for r in handle.requests], [r.run_id for r in handle.requests])
        self._send = send
        self._on_end = on_end
        self._interval = interval
        self._event_dict = event_dict or (lambda ev: ev.to_dict())
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="nbp-playground-stream", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def snapshot(self) -> list[str]:
        """Each target's text so far, folded as the front end folds it."""
        with self._lock:
            return self.fold.texts

    def _loop(self) -> None:
        index, last_sent = 0, 0.0
        pending: list[dict[str, Any]] = []
        finished = False
        try:
            while not finished:
                events, finished = self.handle.poll(index, self._interval)
                index += len(events)
                with self._lock:
                    self.fold.apply_all(events)
                pending.extend(self._event_dict(ev) for ev in events)
                now = time.monotonic()
                if pending and (finished or now - last_sent >= self._interval):
                    self._send(coalesce(pending))
                    pending, last_sent = [], now
        finally:
            self._on_end()
