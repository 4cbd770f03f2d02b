"""Server-sent events: framing, and turning engine events into the API's event vocabulary."""

from __future__ import annotations

import json
import os
from typing import Any

from nbplayground.core.errors import caller_message
from nbplayground.core.types import RunResult

#: Seconds of silence before a ``: ping`` comment keeps proxies and clients from timing out.
HEARTBEAT_S = float(os.environ.get("NBPLAYGROUND_SSE_HEARTBEAT_S", "15"))


def frame(data: Any, event: str | None = None) -> bytes:
    """One SSE message: optional ``event:`` line, one ``data:`` line of compact JSON, blank line."""
    head = f"event: {event}\n" if event else ""
    return (
        f"{head}data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'), default=str)}\n\n".encode()
    )


PING = b": ping\n\n"


def stats(r: RunResult) -> dict[str, Any]:
    """The stats block shared by every surface: tokens, latency, time to first token, cost."""
    return {"tokens_in": r.tokens_in, "tokens_out": r.tokens_out, "latency_ms": r.latency_ms,
            "ttft_ms": r.ttft_ms, "cost_usd": r.cost_usd}  # fmt: skip


def summary(r: RunResult) -> dict[str, Any]:
    """A finished run as the API returns it (``stream: false`` body and the ``done`` event)."""
    out: dict[str, Any] = {
        "id": r.id, "status": r.status, "content": r.text, "stats": stats(r), "model": r.model,
        "finish_reason": r.finish_reason, "group_id": r.group_id,
        "tool_calls": [t.to_dict() for t in r.tool_calls],
    }  # fmt: skip
    if r.data is not None:
        out["data"] = r.to_dict()["data"]
    if r.status == "error":
        out["error"], out["error_type"], out["error_status"] = error_message(r), r.error_type, r.error_status
    return out


def error_message(r: RunResult) -> str:
    """A run's error as an API caller sees it: never a provider's own text (see ``errors.caller_message``)."""
    return caller_message(r.error_type, r.error_status, r.error)
