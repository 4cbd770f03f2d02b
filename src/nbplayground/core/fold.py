"""Folding a run's events into what a viewer shows: the Python twin of ``js/lib/reducer.ts``.

Every consumer of the :class:`~nbplayground.core.types.Event` stream (the ``%%prompt`` output, the
Playground's stream pump, the server) folds events the same way, so they agree on what a retry or a tool
round does to the text:

- ``delta`` appends text; ``tool_call`` closes the current tool round (its text and usage are final);
- ``retry`` voids the current round's partial text (finished rounds stay), as the engine does;
- ``usage`` is reported per round: the total is the finished rounds' sum plus the current round's last;
- ``error`` and ``done`` carry the run's result, which wins over what was folded.

``tests/test_reducer.py`` folds the same real event lists through this and through ``reducer.ts`` and
requires the same final state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from nbplayground.core.types import Event, RunResult, ToolCall

FoldStatus = Literal["idle", "streaming", "ok", "error", "stopped"]
_FINAL = ("ok", "error", "stopped")


def _add(a: int | None, b: int | None) -> int | None:
    return None if a is None and b is None else (a or 0) + (b or 0)


@dataclass(slots=True)
class TargetFold:
    """What one target (one model of a compare) shows so far."""

    index: int
    model: str = ""
    run_id: str = ""
    text: str = ""
    status: FoldStatus = "idle"
    tool_calls: list[ToolCall] = field(default_factory=list)
    tokens_in: int | None = None
    tokens_out: int | None = None
    error: str | None = None
    result: RunResult | None = None
    attempt: int = 1  # the attempt being streamed (a ``retry`` event raises it)
    retry_reason: str = ""  # why the last retry happened (the error class)
    round_start: int = 0  # length of ``text`` when the current tool round began
    _prior_in: int | None = None
    _prior_out: int | None = None
    _round_in: int | None = None
    _round_out: int | None = None

    def _upsert(self, call: ToolCall) -> None:
        for i, known in enumerate(self.tool_calls):
            if known.id == call.id:
                self.tool_calls[i] = call
                return
        self.tool_calls.append(call)

    def _take_result(self, r: RunResult) -> None:
        self.result = r
        self.status = r.status
        if r.text or r.status == "ok":
            self.text = r.text
        if r.model:
            self.model = r.model
        self.tokens_in = r.tokens_in if r.tokens_in is not None else self.tokens_in
        self.tokens_out = r.tokens_out if r.tokens_out is not None else self.tokens_out
        if r.error:
            self.error = r.error
        for c in r.tool_calls:
            self._upsert(c)

    def apply(self, ev: Event) -> None:
        """Fold one event of this target."""
        kind = ev.type
        if kind == "start":
            if ev.model:
                self.model = ev.model
            if self.status not in _FINAL:
                self.status = "streaming"
        elif kind == "delta":
            self.text += ev.text
            if self.status not in _FINAL:
                self.status = "streaming"
        elif kind == "retry":
            self.text = self.text[: self.round_start]
            self.attempt, self.retry_reason = ev.attempt, ev.reason
            self._round_in = self._round_out = None
            if self.status not in _FINAL:
                self.status = "streaming"
        elif kind == "tool_call":
            if ev.tool_call is not None:
                self._upsert(ev.tool_call)
            self.round_start = len(self.text)
            # the round ended with tool calls: its usage is final (several calls of one round fold once)
            self._prior_in = _add(self._prior_in, self._round_in)
            self._prior_out = _add(self._prior_out, self._round_out)
            self._round_in = self._round_out = None
        elif kind == "tool_result":
            if ev.tool_call is not None:
                self._upsert(ev.tool_call)
        elif kind == "usage":
            if ev.usage is not None:
                self._round_in, self._round_out = ev.usage.tokens_in, ev.usage.tokens_out
                self.tokens_in = _add(self._prior_in, self._round_in)
                self.tokens_out = _add(self._prior_out, self._round_out)
        elif kind == "error":
            self.error = ev.error or (ev.result.error if ev.result else None) or "error"
            self.status = "error"
            if ev.result is not None:
                self._take_result(ev.result)
        elif kind == "done":
            if ev.result is not None:
                self._take_result(ev.result)
            elif self.status not in _FINAL:
                self.status = "ok"


class StreamFold:
    """The state of a run (1-4 targets) built from its events; see the module docstring for the rules."""

    __slots__ = ("targets",)

    def __init__(self, models: list[str] | None = None, run_ids: list[str] | None = None) -> None:
        models = models or []
        ids = run_ids or [""] * len(models)
        self.targets: list[TargetFold] = [
            TargetFold(i, model=m, run_id=r, status="streaming")
            for i, (m, r) in enumerate(zip(models, ids, strict=True))
        ]

    def target(self, index: int) -> TargetFold:
        """The fold of target ``index`` (created on first use)."""
        while len(self.targets) <= index:
            self.targets.append(TargetFold(len(self.targets)))
        return self.targets[index]

    def apply(self, ev: Event) -> TargetFold:
        """Fold one event; returns the target it changed."""
        t = self.target(ev.target)
        if ev.run_id and t.run_id and t.run_id != ev.run_id:  # a new run here that we did not see start
            t = self.targets[ev.target] = TargetFold(ev.target, model=t.model, run_id=ev.run_id)
        if ev.run_id and not t.run_id:
            t.run_id = ev.run_id
        t.apply(ev)
        return t

    def apply_all(self, events: list[Event]) -> None:
        """Fold events in order."""
        for ev in events:
            self.apply(ev)

    def finish(self) -> None:
        """The run ended: a target still streaming ends with its result's status (or ``ok``)."""
        for t in self.targets:
            if t.status == "streaming":
                t.status = t.result.status if t.result is not None else "ok"

    @property
    def texts(self) -> list[str]:
        """Each target's text so far."""
        return [t.text for t in self.targets]


def coalesce(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge consecutive ``delta`` events of the same target (and run) into one; keep everything else."""
    out: list[dict[str, Any]] = []
    for ev in events:
        last = out[-1] if out else None
        if (
            ev["type"] == "delta"
            and last is not None
            and last["type"] == "delta"
            and last["target"] == ev["target"]
            and last["run_id"] == ev["run_id"]
        ):
            last["text"] += ev["text"]
        else:
            out.append(dict(ev))
    return out
