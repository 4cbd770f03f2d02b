"""Named threads (multi-turn conversations) rebuilt from the history, so they survive kernel restarts.

A thread is every run stored with ``thread_id = name``. Its conversation is the request messages of the
latest successful run plus that run's answer (and, in manual tool mode, the tool calls it asked for).
Clearing a thread records a ``cleared_at`` time: runs before it no longer count.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from nbplayground.core.types import RunResult
from nbplayground.storage import db, history


def clear(name: str) -> None:
    """Empty a thread: its next run starts a fresh conversation (older runs stay in history)."""
    history.flush()
    with db.connect(write=True) as con:
        con.execute("INSERT OR REPLACE INTO threads VALUES (?, ?)", [name, datetime.now(UTC)])


def _cleared_at(name: str) -> datetime | None:
    with db.connect(write=False) as con:
        row = con.execute("SELECT cleared_at FROM threads WHERE name = ?", [name]).fetchone()
    return row[0] if row else None


def runs(name: str) -> list[RunResult]:
    """The runs of the thread since it was last cleared, oldest first."""
    cleared = _cleared_at(name)
    return [r for r in history.thread_runs(name) if cleared is None or r.created_at > cleared]


def last_turn(name: str) -> RunResult | None:
    """The latest successful run of the thread (the one the conversation continues from)."""
    ok = [r for r in runs(name) if r.status == "ok"]
    return ok[-1] if ok else None


def assistant_message(run: RunResult) -> dict[str, Any]:
    """The assistant turn a run added to its thread."""
    msg: dict[str, Any] = {"role": "assistant", "content": run.text or None}
    pending = [tc for tc in run.tool_calls if tc.result is None and tc.error is None]
    if pending and run.finish_reason == "tool_calls":
        msg["tool_calls"] = [
            {"id": tc.id, "type": "function", "function": {"name": tc.name, "arguments": tc.arguments}}
            for tc in pending
        ]
    return msg


def messages(name: str) -> list[dict[str, Any]]:
    """The conversation so far: the latest successful run's messages and its answer."""
    last = last_turn(name)
    if last is None:
        return []
    return [*last.messages, assistant_message(last)]
