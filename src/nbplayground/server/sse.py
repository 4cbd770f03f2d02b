"""Server-sent events: framing, and engine events and results as the API sends them (one vocabulary)."""

from __future__ import annotations

import json
import os
from typing import Any

from nbplayground.core.errors import caller_message
from nbplayground.core.fold import coalesce
from nbplayground.core.types import Event, RunResult

#: Seconds of silence before a ``: ping`` comment keeps proxies and clients from timing out.
HEARTBEAT_S = float(os.environ.get("NBPLAYGROUND_SSE_HEARTBEAT_S", "15"))


def frame(data: Any, event: str | None = None) -> bytes:
    """One SSE message: optional ``event:`` line, one ``data:`` line of compact JSON, blank line."""
    head = f"event: {event}\n" if event else ""
    return (
        f"{head}data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'), default=str)}\n\n".encode()
    )


PING = b": ping\n\n"


def error_message(r: RunResult) -> str:
    """A run's error as an API caller sees it: never a provider's own text (see ``errors.caller_message``)."""
    return caller_message(r.error_type, r.error_status, r.error)


def result_dict(r: RunResult) -> dict[str, Any]:
    """A run as the API returns it: ``RunResult.to_dict()``, the one result shape of every surface, minus
    what only the history keeps (``error_detail``: a provider's bytes), with the caller's error message."""
    out = r.to_dict()
    out.pop("error_detail", None)
    if r.error is not None:
        out["error"] = error_message(r)
    return out


def event_dict(ev: Event) -> dict[str, Any]:
    """An engine event as the API sends it: ``Event.to_dict()``, with results and errors as callers see them."""
    if ev.result is None:
        return ev.to_dict()
    out: dict[str, Any] = {"type": ev.type, "target": ev.target, "run_id": ev.run_id,
                           "result": result_dict(ev.result)}  # fmt: skip
    if ev.type == "error":
        out["error"] = out["result"]["error"]
    return out


def frames(events: list[Event]) -> bytes:
    """SSE messages for a batch of events: ``event: <Event.type>``, ``data: <the event>``; consecutive text
    of one target is merged into one ``delta``."""
    return b"".join(frame(d, d["type"]) for d in coalesce([event_dict(ev) for ev in events]))
