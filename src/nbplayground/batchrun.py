"""A batch: one planned spec run over many rows, scheduled, budgeted, checkpointed and resumable.

:class:`BatchRun` is what ``df.prompt.run`` (``nbp.run_prompt``) does once the frame is read: the spec was
planned once (a :class:`~nbplayground.core.plan.Planner`: the model resolved, its parameters split), each
row is rendered and made into its request only when a worker takes it, the engine's AIMD limiter
bounds the requests in flight, finished rows are stored as they come (the store's backlog pauses the
workers) and ``max_cost`` holds a budget. It knows rows by position and key, never the frame.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, NamedTuple

from nbplayground.core import errors as E
from nbplayground.core import providers
from nbplayground.core.batch import AIMDLimiter, Batch
from nbplayground.core.plan import PlannedTarget, Planner, Rendered, schema_of
from nbplayground.core.types import Media, RunRequest, RunResult, new_id

SKIPPED = "skipped"
#: Finished rows allowed to wait for the store before workers pause (bounds memory on fast models).
MAX_BACKLOG = 2000
#: Rows rendered to guess the cost of one row (max_cost holds this much for each row in flight).
COST_SAMPLE = 50

__all__ = ["MAX_BACKLOG", "SKIPPED", "BatchRun", "Estimate", "RowOutcome"]


class RowOutcome(NamedTuple):
    """What the output frame needs of a finished row (the full run lives in the history)."""

    id: str | None  # None: no run was made (a skipped row)
    status: str
    text: str
    data: Any
    media: list[Media]
    error: str | None
    tokens_in: int | None
    tokens_out: int | None
    cost_usd: float | None
    latency_ms: float | None

    @classmethod
    def of(cls, r: RunResult) -> RowOutcome:
        """The slim copy of a run: 100,000 rows stay small."""
        return cls(r.id, r.status, r.text, r.data, r.media, r.error, r.tokens_in, r.tokens_out, r.cost_usd,
                   r.latency_ms)  # fmt: skip

    @classmethod
    def skipped(cls, reason: str) -> RowOutcome:
        """A row not sent (a missing value, an empty prompt): never stored, so looked at again next run."""
        return cls(None, SKIPPED, "", None, [], reason, None, None, None, None)


@dataclass
class Estimate:
    """What a batch would do, without calling any model."""

    rows: int
    calls: int
    already_done: int
    tokens_in: int
    tokens_out_max: int | None
    cost_usd: float | None
    model: str
    skipped: int = 0  # rows that will not be sent: missing values or an empty prompt

    def __str__(self) -> str:
        if self.cost_usd is None:
            cost = "unknown (no price for this model)"
        elif self.tokens_out_max is None:  # only the input is priced: a floor, not an estimate
            cost = f"at least ${self.cost_usd:.4f} (input only: output unbounded)"
        else:
            cost = f"${self.cost_usd:.4f}"
        out = self.tokens_out_max if self.tokens_out_max is not None else "unbounded (set max_tokens)"
        skipped = f", {self.skipped} skipped: missing values or empty prompts" if self.skipped else ""
        return (
            f"{self.calls} calls to {self.model} for {self.rows} rows ({self.already_done} already done{skipped}) · "
            f"~{self.tokens_in:,} tokens in · up to {out} tokens out · est. cost {cost}"
        )

    def _repr_html_(self) -> str:
        from nbplayground.core import render

        return render.page(render.paragraph(str(self)))


class Budget:
    """What a batch has spent, and what its rows in flight hold, of ``max_cost`` (None: only counted).

    A row in flight holds a guess of one row's cost; once rows come back without usage (so without a
    cost) each holds its worst case when that is finite (one request per attempt and a ``max_tokens``
    cap), and such rows count at that worst case for every attempt. When it is not finite the batch is
    halted: a cap that cannot be enforced stops scheduling.
    """

    def __init__(
        self, target: PlannedTarget, max_cost: float | None, per_row: float | None, schema: Any, tools: bool
    ) -> None:
        send = target.split[0]
        self.max_cost = max_cost
        self.per_row = per_row or 0.0
        self.price = target.resolved.price
        self.max_out = send.get("max_tokens") or send.get("max_completion_tokens")
        # the worst case of a row without usage is finite with one request per attempt and a cap on output
        self.bounded = target.kind == "chat" and not tools and isinstance(self.max_out, int)
        self.why_unbounded = (
            "set params={'max_tokens': N} so such rows count at their worst case"
            if target.kind == "chat" and not tools
            else "its worst case cannot be bounded"
        )
        self.schema = schema
        self.spent = 0.0  # known costs
        self.ceiling = 0.0  # worst-case costs of rows that came back without usage (max_cost only)
        self.reserved = 0.0
        self.worst: dict[int, float] = {}  # row -> worst-case cost of one attempt, for rows in flight
        self.held: dict[int, float] = {}  # row -> what it holds of the budget while in flight
        self.unknown = 0  # finished rows that may have been billed but have no cost
        self.estimated = 0  # rows whose server sent no usage: their tokens (and cost) were counted here
        self.halted: str | None = None  # why scheduling stopped: the cap could no longer be enforced
        self.hit = False  # the cap stopped scheduling
        self._lock = threading.Lock()

    def admit(self, i: int, rendered: Rendered) -> bool:
        """Reserve row ``i``'s share before it is sent; False: over the cap (or halted), do not send it."""
        if self.max_cost is None:
            return self.halted is None
        hold = self.per_row
        if self.bounded and isinstance(self.max_out, int):  # a token is at least one byte: the request's
            size = len(json.dumps([rendered.messages, rendered.input, self.schema], default=str).encode())
            self.worst[i] = self.price(size, self.max_out) or 0.0  # JSON bytes bound its input tokens
        with self._lock:
            if self.unknown and i in self.worst:  # usage has gone missing: hold each row's worst case
                hold = max(hold, self.worst[i])
            if self.halted is not None or self.spent + self.ceiling + self.reserved + hold > self.max_cost:
                self.hit = self.hit or self.halted is None
                self.worst.pop(i, None)
                return False
            self.reserved += hold
            self.held[i] = hold
        return True

    def settle(self, i: int, r: RunResult, row: RowOutcome) -> None:
        """Count row ``i``'s finished run and give back what it held."""
        with self._lock:
            bound = self.worst.pop(i, None)
            self.estimated += bool(r.tokens_estimated)
            if r.cost_usd is not None:
                self.spent += r.cost_usd
            elif _cost_unknown(row):
                self.unknown += 1
                if self.max_cost is not None and bound is not None:
                    self.ceiling += bound * max(1, r.attempts)  # every attempt may have been billed
                elif self.max_cost is not None and self.halted is None:
                    self.halted = (
                        f"Stopped the batch: row {r.row_key} came back without token usage, so its cost is "
                        f"unknown and max_cost cannot be enforced; {self.why_unbounded}, or drop max_cost."
                    )
            self.reserved = max(0.0, self.reserved - self.held.pop(i, 0.0))

    def cost_text(self) -> str:
        """The cost so far, for the progress bar."""
        return f"${self.spent:.4f}" if not self.unknown else f"unknown ({self.unknown} unpriced)"


class BatchRun:
    """One planned spec over ``len(keys)`` rows; ``results`` holds each row's outcome (None: not run yet).

    ``render(i)`` renders row ``i`` (a :class:`Rendered`; raises :class:`TemplateError` for a row that cannot
    be); a row whose prompt renders empty is skipped. Rows already in ``results`` (skipped up front, or
    found by :meth:`resume`) are not sent. :meth:`estimate` counts without calling; :meth:`run` runs the
    rest and returns the batch's figures (``info``).
    """

    def __init__(
        self,
        planner: Planner,
        keys: list[str],
        render: Callable[[int], Rendered],
        results: list[RowOutcome | None],
        *,
        has_input: bool,
        concurrency: int = 8,
        max_cost: float | None = None,
        progress: bool | str = True,
        keys_are_parents: bool = False,
    ) -> None:
        if len(planner.targets) != 1:
            raise E.BadParameterError("A batch runs one model.", field="models")
        self.planner = planner
        self.target = planner.targets[0]
        self.group_id = str(planner.group_id)
        self.keys = keys
        self.render = render
        self.results = results
        self.has_input = has_input
        self.keys_are_parents = keys_are_parents  # each row judges the run its key names: link them
        self.concurrency = concurrency
        self.max_cost = max_cost
        self.progress = progress
        self.skipped_early = sum(1 for r in results if r is not None and r.status == SKIPPED)
        self.resumed = 0
        self.counts = {"ok": 0, "error": 0, "stopped": 0, SKIPPED: 0}
        self.interrupted = False
        self.budget: Budget | None = None
        self._position = {k: i for i, k in enumerate(keys)}
        self._lock = threading.Lock()
        self._shown = 0  # rows the progress bar has counted
        self._resumed_ok = 0

    # ----------------------------------------------------------------------------------------------
    # Before running
    # ----------------------------------------------------------------------------------------------
    @property
    def model(self) -> str:
        """The model's resolved name."""
        return self.target.resolved.name

    def resume(self, retry_failed: bool = False) -> int:
        """Take each row's latest finished run of an earlier attempt at this batch (``ok`` ones only with
        ``retry_failed``); returns how many rows were found."""
        from nbplayground.storage import history

        done = history.finished_by_row_key(self.group_id, ("ok",) if retry_failed else ("ok", "error"))
        for pos, key in enumerate(self.keys):
            prev = done.get(key) if self.results[pos] is None else None
            if prev is not None:
                self.results[pos] = RowOutcome.of(prev)
                self.resumed += 1
        return self.resumed

    def todo(self) -> list[int]:
        """The positions of the rows still to run."""
        return [i for i, r in enumerate(self.results) if r is None]

    def empty(self, rendered: Rendered) -> bool:
        """True when what would be sent has no text: the user messages (or a media kind's input) are blank."""
        return _empty_prompt(rendered.messages, rendered.input, self.target.kind, self.has_input)

    def estimate(self) -> Estimate:
        """Calls, tokens and cost of the rows still to run, without calling any model."""
        tin = calls = empties = 0
        for i in self.todo():
            try:
                rendered = self.render(i)
            except E.TemplateError:
                continue  # the row fails without a call
            if self.empty(rendered):  # skipped, not sent
                empties += 1
            else:
                tin += _tokens(rendered)
                calls += 1
        rm, send = self.target.resolved, self.target.split[0]
        tout = send.get("max_tokens") or send.get("max_completion_tokens")
        cost = rm.price(tin, (tout or 0) * calls) if tout else rm.price(tin, 0)
        return Estimate(rows=len(self.keys), calls=calls, already_done=self.resumed, tokens_in=tin,
                        tokens_out_max=tout * calls if tout else None, cost_usd=cost, model=rm.name,
                        skipped=self.skipped_early + empties)  # fmt: skip

    # ----------------------------------------------------------------------------------------------
    # Running
    # ----------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Run the rows still to run (Ctrl-C stops them: finished rows are kept) and return ``info``."""
        from nbplayground.storage import history

        rm = self.target.resolved
        priced = rm.price(1, 1) is not None
        max_cost = self.max_cost
        if max_cost is not None:
            if isinstance(max_cost, bool) or not isinstance(max_cost, int | float) or max_cost < 0:
                raise E.BadParameterError(f"max_cost must be a number of USD >= 0, got {max_cost!r}.",
                                          field="max_cost")  # fmt: skip
            if not priced:  # checked before any request: a cap that cannot be enforced is refused
                raise E.BadParameterError(_no_price_message(rm.name), field="max_cost")
        todo = self.todo()
        self._resumed_ok = sum(1 for r in self.results if r is not None and r.status == "ok")
        per_row = None if max_cost is None else _row_cost_guess(rm, self.target.split[0], todo[:COST_SAMPLE],
                                                                self.render)  # fmt: skip
        tools = bool(self.planner.spec.tools) and self.target.tools
        self.budget = Budget(self.target, max_cost, per_row, schema_of(self.target.response_format), tools)
        limiter = AIMDLimiter(self.concurrency)
        batch = Batch(self._make, todo, workers=self.concurrency, on_result=self._on_result, limiter=limiter,
                      throttle=lambda: history.backlog() > MAX_BACKLOG)  # fmt: skip
        future = batch.start()
        bar = _progress(self.progress, len(self.keys), len(self.keys) - len(todo))  # resumed, skipped: done
        try:
            self._wait(future, bar, limiter)
        except KeyboardInterrupt:
            self.interrupted = True
            batch.stop()
            try:
                future.result(timeout=10)
            except Exception:
                pass
        finally:
            if bar is not None:
                self._refresh(bar, limiter, final=True)  # the true count, also when it ended before a look
                bar.close()
        history.flush()
        return self.info(ran=len(todo) - self.counts[SKIPPED], priced=priced)

    def _make(self, i: int) -> RunRequest | None:
        """Row ``i``'s request, made when a worker takes the row; None: not sent (and why is recorded)."""
        budget = self.budget
        assert budget is not None
        if budget.halted is not None:
            return None
        try:
            rendered = self.render(i)
        except E.TemplateError as exc:
            from nbplayground.storage import history

            failed = RunResult(id=new_id(), model=self.model, status="error", error=str(exc),
                               error_type=type(exc).__name__, surface="dataframe", group_id=self.group_id,
                               row_key=self.keys[i])  # fmt: skip
            self.results[i] = RowOutcome.of(failed)
            history.record(failed)
            with self._lock:
                self.counts["error"] += 1
            return None
        if _empty_prompt(rendered.messages, rendered.input, self.target.kind, self.has_input):
            # nothing to ask: no call, nothing charged, looked at again next run
            self.results[i] = RowOutcome.skipped(f"the prompt is empty at row {self.keys[i]}: not sent")
            with self._lock:
                self.counts[SKIPPED] += 1
            return None
        if budget.max_cost is not None and not budget.admit(i, rendered):
            return None
        key = self.keys[i]
        return self.planner.requests(rendered, row_key=key, parent_id=key if self.keys_are_parents else None)[0]

    def _on_result(self, r: RunResult) -> None:
        from nbplayground.storage import history

        i = self._position.get(r.row_key) if r.row_key is not None else None  # by key: rows never shift
        if i is None:  # _make gives every request its row's key: this is no row of the frame; keep the run
            if r.status != "stopped" or r.text:
                history.record(r)
            return
        row = self.results[i] = RowOutcome.of(r)
        with self._lock:
            self.counts[r.status] = self.counts.get(r.status, 0) + 1
        assert self.budget is not None
        self.budget.settle(i, r, row)
        if r.status != "stopped" or r.text:
            history.record(r)

    def _wait(self, future: Future[None], bar: Any, limiter: AIMDLimiter) -> None:
        while not future.done():
            try:
                future.result(timeout=0.1)
            except TimeoutError:
                pass
            except Exception:
                break
            if bar is not None:
                self._refresh(bar, limiter)

    def _refresh(self, bar: Any, limiter: AIMDLimiter, final: bool = False) -> None:
        """Move the bar to the rows finished so far; ``final`` draws it now (tqdm waits mininterval)."""
        counts = self.counts
        finished = counts["ok"] + counts["error"] + counts[SKIPPED]  # a stopped row is not finished
        if finished == self._shown and not final:
            return
        bar.update(finished - self._shown)
        self._shown = finished
        resumed_ok = self._resumed_ok
        skipped = self.skipped_early + counts[SKIPPED]
        extra = {"skipped": skipped} if skipped else {}
        assert self.budget is not None
        bar.set_postfix(ok=resumed_ok + counts["ok"], failed=self.resumed - resumed_ok + counts["error"], **extra,
                        retrying=limiter.rate_limited, limit=limiter.allowed, cost=self.budget.cost_text(),
                        refresh=False)  # fmt: skip
        if final:
            bar.refresh()

    # ----------------------------------------------------------------------------------------------
    # After
    # ----------------------------------------------------------------------------------------------
    def info(self, ran: int, priced: bool) -> dict[str, Any]:
        """What the batch did and cost (``out.attrs["nbplayground"]``), with a one-line ``summary``."""
        results, budget = self.results, self.budget
        assert budget is not None
        halted = budget.halted is not None
        info = {"group_id": self.group_id, "model": self.model, "rows": len(results), "ran": ran,
                "resumed": self.resumed,
                "ok": sum(1 for r in results if r is not None and r.status == "ok"),
                "failed": sum(1 for r in results if r is not None and r.status == "error"),
                "skipped": sum(1 for r in results if r is not None and r.status == SKIPPED),
                "not_run": sum(1 for r in results if r is None),
                "cost_usd": None if budget.unknown else round(budget.spent, 8), "unpriced_rows": budget.unknown,
                "estimated_rows": budget.estimated,
                "cost_usd_at_most": round(budget.spent + budget.ceiling, 8) if budget.unknown
                and budget.max_cost is not None and not halted else None,
                "interrupted": self.interrupted, "budget_exhausted": budget.hit,
                "cost_unenforceable": halted}  # fmt: skip
        info["summary"] = _summary(info, priced)
        return info


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------
def _empty_prompt(msgs: list[dict[str, Any]], value: Any, kind: str, has_input: bool) -> bool:
    if kind != "chat" and has_input:
        if isinstance(value, str | bytes | bytearray):
            return not value.strip()
        return value is None
    users = [m for m in msgs if m.get("role") == "user"] or [
        m for m in msgs if m.get("role") not in ("assistant", "tool", "function")
    ]
    for m in users:
        content = m.get("content")
        if isinstance(content, str):
            if content.strip():
                return False
        elif isinstance(content, list):
            for part in content:
                if not (isinstance(part, dict) and part.get("type") == "text"):
                    return False  # an image or audio part is something to answer
                if str(part.get("text") or "").strip():
                    return False
        elif content is not None:
            return False
    return True


def _cost_unknown(r: RowOutcome) -> bool:
    """True when a finished row may have been billed but has no cost (no price, or no token usage).

    A row that failed or stopped with nothing back (a 4xx, a refused connection, a template error) is
    not counted: providers do not bill requests they rejected.
    """
    if r.cost_usd is not None:
        return False
    return (
        r.status == "ok"
        or bool(r.text)
        or bool(r.media)
        or r.tokens_in is not None
        or r.tokens_out is not None
    )


def _no_price_message(name: str) -> str:
    return (
        f"max_cost cannot be enforced: {name} has no price. Set input_cost_per_token and output_cost_per_token "
        f"for it in nbp.configure(models={{{name!r}: {{...}}}}) (0 for a free local model), or drop max_cost."
    )


def _summary(info: dict[str, Any], priced: bool) -> str:
    """One line on what a batch did and cost; an unknown cost says how many rows had none, and why."""
    text = f"{info['rows']} rows: {info['ok']} ok, {info['failed']} failed, {info['not_run']} not run"
    if info.get("skipped"):
        text += f", {info['skipped']} skipped (missing values or empty prompts: see the __error column)"
    if info["resumed"]:
        text += f" ({info['resumed']} from an earlier run)"
    if info["cost_usd"] is not None:
        counted = info.get("estimated_rows") or 0
        note = f" (~: {counted} rows sent no usage and were counted here)" if counted else ""
        return f"{text} · cost ${info['cost_usd']:.4f}{note}"
    why = (
        "the server sent no token usage"
        if priced
        else f"{info['model']} has no price: set input_cost_per_token / output_cost_per_token in "
        "nbp.configure(models=...)"
    )
    text += f" · cost unknown: {info['unpriced_rows']} of {info['ran']} rows had no price ({why})"
    if info["cost_usd_at_most"] is not None:
        text += f", at most ${info['cost_usd_at_most']:.4f}"
    return text


def _tokens(rendered: Rendered) -> int:
    value = rendered.input
    text = " ".join(str(m.get("content") or "") for m in rendered.messages)
    text += value if isinstance(value, str) else ""
    return max(1, len(text) // 4)


def _row_cost_guess(
    rm: providers.ResolvedModel, send: dict[str, Any], sample: list[int], render: Callable[[int], Rendered]
) -> float | None:
    if not sample:
        return 0.0
    try:
        tin = sum(_tokens(render(i)) for i in sample) / len(sample)
    except E.TemplateError:
        tin = 0
    tout = send.get("max_tokens") or send.get("max_completion_tokens") or 256
    return rm.price(int(tin) + 1, int(tout))


def _progress(enabled: bool | str, total: int, initial_done: int) -> Any:
    """A tqdm bar over ``total`` rows that starts at ``initial_done`` (resumed or skipped before the run);
    ``enabled`` may be the bar's label."""
    if not enabled or total == 0:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    label = enabled if isinstance(enabled, str) else "nbplayground"
    return tqdm(total=total, initial=initial_done, desc=label, unit="row", leave=True)
