"""Reading an SSE response in tests the way a browser's EventSource does."""

from __future__ import annotations

import json

import httpx


def sse_events(response: httpx.Response) -> list[tuple[str, object]]:
    """(event name or 'message', data) per SSE message; ``: comment`` lines as ("comment", text)."""
    events: list[tuple[str, object]] = []
    name, data = None, []
    for line in response.iter_lines():
        if line.startswith(":"):
            events.append(("comment", line[1:].strip()))
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and (name or data):
            events.append((name or "message", json.loads("\n".join(data)) if data else None))
            name, data = None, []
    return events
