"""Experiments (``nbp.experiment``): prompt variants over a dataset, every answer scored, and whether a difference is real.

``nbp.experiment(data=df, variants={...}, evaluators=[...])`` runs each variant (a prompt, a model, its
params; or a saved ``ref``) over every row, ``repeats`` times, through the same planner, scheduler and
history as ``df.prompt.run``: AIMD concurrency, retries, ``max_cost`` across the whole experiment, a
progress bar per variant. Every answer is then scored by each evaluator (``nbp.evals``): code evaluators in
this process, judges as runs of their own (``surface="eval"``, keyed by and linked to the run they judge: ``row_key`` and ``parent_id``).

Nothing is done twice. A variant's runs are grouped by the variant's version (``exp-<variant id>-r<repeat>``)
and keyed by the row's index plus a hash of the values its prompt reads, so calling ``nbp.experiment`` again
with the same ``name`` reuses every finished cell and runs only new rows, new variants and new evaluators
(an added evaluator scores the stored answers without calling the model again). A variant whose prompt,
model or params changed under the same name is a new version: the old one stays in the store.

Statistics are over rows, paired: repeats are averaged per row first, and :meth:`Experiment.compare` tests
the per-row differences between two variants on the rows both have (:mod:`nbplayground.core.stats`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from nbplayground import dataframe, frames
from nbplayground.batchrun import RowOutcome
from nbplayground.core import errors as E
from nbplayground.core import stats
from nbplayground.core.evals import Case, Evaluator, Score, as_evaluators, evaluate
from nbplayground.core.judge import Judge
from nbplayground.core.plan import compose, schema_of
from nbplayground.core.types import ToolCall
from nbplayground.storage import experiments as store

__all__ = ["Comparison", "Experiment", "experiment", "experiments", "get_experiment"]

#: What a variant may say (the keys of ``df.prompt.run``, or ``ref`` for a registry prompt).
VARIANT_KEYS = ("ref", "prompt", "messages", "system", "model", "params", "response_format", "tools", "tool_mode",
                "kind", "input")  # fmt: skip
#: Scores are written to the store in transactions of this many (each costs ~15 ms of attach and checkpoint
#: whatever its size: 500 made storing 10,000 code scores cost 0.3 s).
SCORE_BATCH = 5000


# --------------------------------------------------------------------------------------------------
# Variants
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    """One arm of an experiment: a template, a model and its settings (a registry ``ref`` already read)."""

    name: str
    template: list[dict[str, Any]]
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    response_format: Any = None
    tools: tuple[Any, ...] = ()
    tool_mode: str = "auto"
    kind: str = "chat"
    input: str | None = None
    ref: str | None = None

    def describe(self) -> dict[str, Any]:
        """What the variant is, as JSON (stored with its version, and what its fingerprint hashes)."""
        tools = [getattr(t, "__name__", None) or (t.get("function", {}).get("name") if isinstance(t, dict) else
                 repr(t)) for t in self.tools]  # fmt: skip
        return {"template": self.template, "model": self.model, "params": self.params,
                "response_format": schema_of(self.response_format), "tools": tools, "tool_mode": self.tool_mode,
                "kind": self.kind, "input": self.input, "ref": self.ref}  # fmt: skip

    def fingerprint(self) -> str:
        """Identity of what is sent: the same fingerprint under the same name is the same version."""
        text = json.dumps(self.describe(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _variant(name: Any, spec: Any) -> Variant:
    if not isinstance(name, str) or not name.strip():
        raise E.BadParameterError(f"A variant's name must be non-empty text, got {name!r}.", field="variants")
    if not isinstance(spec, Mapping):
        raise E.BadParameterError(
            f"Variant {name!r} must be a dict like {{'prompt': '...', 'model': '...'}}, got {type(spec).__name__}.",
            field=f"variants.{name}",
        )
    unknown = sorted(set(spec) - set(VARIANT_KEYS))
    if unknown:
        raise E.BadParameterError(
            f"Variant {name!r} has unknown key {unknown[0]!r}; a variant takes {', '.join(VARIANT_KEYS)}.",
            field=f"variants.{name}.{unknown[0]}",
        )
    saved_messages: list[dict[str, Any]] = []
    model, params, ref = spec.get("model"), dict(spec.get("params") or {}), spec.get("ref")
    if ref is not None:
        from nbplayground.storage import registry

        saved = registry.get(ref)
        saved_messages = [dict(m) for m in saved.messages]
        model = model or saved.model
        params = {**dict(saved.params or {}), **params}
        ref = saved.ref
    template = compose(spec.get("prompt"), system=spec.get("system"), messages=spec.get("messages"),
                       saved=saved_messages, required=spec.get("kind", "chat") == "chat")  # fmt: skip
    return Variant(name=name, template=template, model=model, params=params,
                   response_format=spec.get("response_format"), tools=tuple(spec.get("tools") or ()),
                   tool_mode=spec.get("tool_mode", "auto"), kind=spec.get("kind", "chat"), input=spec.get("input"),
                   ref=ref)  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Cells: one answer of one variant to one row
# --------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Cell:
    """An answer of a variant (one repeat) to one row, and its scores by evaluator name."""

    row: str  # the row's key (its index value)
    variant: str
    variant_id: str
    version: int
    repeat: int
    run_id: str | None
    status: str
    output: str
    data: Any = None
    error: str | None = None
    cost_usd: float | None = None
    latency_ms: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    scores: dict[str, Score] = field(default_factory=dict)


def _cell(key: str, variant: str, variant_id: str, version: int, repeat: int, r: RowOutcome | None) -> Cell:
    row = sys.intern(key.rsplit("~", 1)[0])  # one string per data row, however many variants and repeats
    if r is None:
        return Cell(row, variant, variant_id, version, repeat, None, "not run", "")
    return Cell(row, variant, variant_id, version, repeat, r.id, r.status, r.text, r.data, r.error, r.cost_usd, r.latency_ms,
                r.tokens_in, r.tokens_out)  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------------
def experiment(
    data: pd.DataFrame,
    variants: Mapping[str, Mapping[str, Any]],
    evaluators: Iterable[Any] = (),
    *,
    repeats: int = 1,
    concurrency: int = 16,
    max_cost: float | None = None,
    name: str | None = None,
    max_attempts: int = 6,
    on_missing: str = "skip",
    progress: bool = True,
) -> Experiment:
    """Run every variant over every row of ``data`` (``repeats`` times), score each answer, and keep it all.

    ``variants`` maps a name to the keys of ``df.prompt.run`` (``prompt``, ``messages``, ``system``,
    ``model``, ``params``, ``response_format``, ``tools``, ...) or ``ref`` for a saved prompt. ``evaluators``
    are ``nbp.evals`` evaluators or any function ``(output, row) -> bool | float | dict``. ``name`` makes
    the experiment resumable: the same call again reuses every finished cell. ``max_cost`` bounds what the
    whole experiment may spend (judges included). Returns an :class:`Experiment`.
    """
    if not isinstance(data, pd.DataFrame):
        raise E.BadParameterError(f"data must be a pandas DataFrame, got {type(data).__name__}.", field="data")
    if not isinstance(variants, Mapping) or not variants:
        raise E.BadParameterError("Give at least one variant: variants={'v1': {'prompt': ..., 'model': ...}}.",
                                  field="variants")  # fmt: skip
    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= 100:
        raise E.BadParameterError(f"repeats must be an integer from 1 to 100, got {repeats!r}.", field="repeats")
    arms = [_variant(n, s) for n, s in variants.items()]
    evs = as_evaluators(evaluators)  # refuses two with one name: each is a results column
    prints = [e.fingerprint for e in evs]
    if len(set(prints)) < len(prints):
        same = next(e for e in evs if prints.count(e.fingerprint) > 1)
        raise E.BadParameterError(f"The same evaluator is given twice ({same!r}): keep one.", field="evaluators")
    name = name or f"experiment-{pd.Timestamp.now(tz='UTC').strftime('%Y%m%d-%H%M%S')}"
    config = {"evaluators": [e.spec() for e in evs],
              "columns": [str(c) for c in data.columns], "concurrency": concurrency, "max_cost": max_cost}  # fmt: skip
    row = store.upsert_experiment(name, rows=len(data), repeats=repeats, config=config, status="running")
    run = _Run(row.id, data, evs, concurrency, max_cost, max_attempts, on_missing, progress)
    try:
        for arm in arms:
            version = store.variant(row.id, arm.name, arm.fingerprint(), arm.describe())
            for rep in range(repeats):
                run.variant(arm, version.id, version.version, rep)
        run.score()
    except KeyboardInterrupt:
        store.set_status(row.id, "partial")
        raise
    except Exception:
        store.set_status(row.id, "error")
        raise
    status = "partial" if run.halted or any(c.status == "not run" for c in run.cells) else "done"
    store.set_status(row.id, status)
    return Experiment(row.id, name, [a.name for a in arms], [e.name for e in evs], run.cells, repeats,
                      run.notes)  # fmt: skip


class _Run:
    """The work of one ``nbp.experiment`` call: batches per variant and repeat, then the scores."""

    def __init__(self, experiment_id: str, data: pd.DataFrame, evaluators: list[Evaluator], concurrency: int,
                 max_cost: float | None, max_attempts: int, on_missing: str, progress: bool) -> None:  # fmt: skip
        self.id = experiment_id
        self.data = data
        self.records: dict[str, dict[str, Any]] = {}
        self.evaluators = evaluators
        self.concurrency = concurrency
        self.max_cost = max_cost
        self.spent = 0.0
        self.max_attempts = max_attempts
        self.on_missing = on_missing
        self.progress = progress
        self.cells: list[Cell] = []
        self.pending: list[store.ScoreRow] = []  # new scores not yet written
        self.tool_calls: dict[str, dict[str, list[ToolCall]]] = {}  # by group, run id: for evaluators that read them
        self.halted = False
        self.notes: list[str] = []
        keys = frames.row_keys(data.index)
        records = data.to_dict("records")
        self.records = {k: {str(c): v for c, v in r.items()} for k, r in zip(keys, records, strict=True)}

    def _budget(self) -> float | None:
        return None if self.max_cost is None else max(0.0, self.max_cost - self.spent)

    def _count(self, info: Mapping[str, Any]) -> None:
        if info.get("cost_usd") is not None:
            self.spent += float(info["cost_usd"])
        if info.get("budget_exhausted") or info.get("cost_unenforceable") or info.get("interrupted"):
            self.halted = True
            self.notes.append(str(info.get("summary", "")))

    def variant(self, arm: Variant, variant_id: str, version: int, repeat: int) -> None:
        """Run (or resume) one variant's repeat over every row."""
        if self.halted:
            return
        label = f"{arm.name}" + (f" r{repeat + 1}" if repeat else "")
        batch = dataframe.prepare_batch(
            self.data, messages=arm.template, model=arm.model, params=arm.params, kind=arm.kind, input=arm.input,
            response_format=arm.response_format, tools=arm.tools, tool_mode=arm.tool_mode,
            concurrency=self.concurrency, max_attempts=self.max_attempts, max_cost=self._budget(),
            progress=label if self.progress else False, on_missing=self.on_missing,  # type: ignore[arg-type]
            group_id=store.group_id(variant_id, repeat), surface="experiment", content_keys=True, prompt_ref=arm.ref,
        )  # fmt: skip
        batch.resume()
        if batch.todo():
            self._count(batch.run())
        self.cells.extend(_cell(k, arm.name, variant_id, version, repeat, r) for k, r in zip(batch.keys, batch.results,
                                                                                 strict=True))  # fmt: skip

    # -- scores ------------------------------------------------------------------------------------
    def score(self) -> None:
        """Score every cell with every evaluator, reusing the scores already stored."""
        done = {(s.run_id, s.evaluator_fingerprint): s for s in store.scores(self.id)}
        for ev in self.evaluators:
            todo: list[Cell] = []
            for cell in self.cells:
                if cell.run_id is None:
                    continue
                known = done.get((cell.run_id, ev.fingerprint))
                if known is not None:
                    cell.scores[ev.name] = Score(known.value, known.passed, known.reason, known.error)
                elif cell.status != "ok":  # a failed run is not scored: a failure never counts as a 0
                    why = f"not scored: the run {cell.status}" + (f" ({cell.error})" if cell.error else "")
                    self._keep(ev, cell, Score(None, None, None, why))
                else:
                    todo.append(cell)
            if isinstance(ev, Judge):
                self._judge(ev, todo)
            else:
                for cell in todo:
                    self._keep(ev, cell, evaluate(ev, self._case(ev, cell)))
        self._write(0)

    def _keep(self, ev: Evaluator, cell: Cell, score: Score, judge_run: str | None = None) -> None:
        """A new score: on the cell, and to the store (in transactions of :data:`SCORE_BATCH`)."""
        cell.scores[ev.name] = score
        self.pending.append(store.ScoreRow(
            experiment_id=self.id, run_id=str(cell.run_id), evaluator=ev.name, evaluator_fingerprint=ev.fingerprint,
            variant_id=cell.variant_id, row_key=cell.row, repeat=cell.repeat, value=score.value,
            passed=score.passed, reason=score.reason, error=score.error, judge_run_id=judge_run,
        ))  # fmt: skip
        self._write(SCORE_BATCH)

    def _write(self, at_least: int) -> None:
        if self.pending and len(self.pending) >= at_least:
            store.record_scores(self.pending)
            self.pending = []

    def _case(self, ev: Evaluator, cell: Cell) -> Case:
        tool_calls: list[ToolCall] = []
        if ev.needs_run and cell.run_id is not None:
            group = store.group_id(cell.variant_id, cell.repeat)
            if group not in self.tool_calls:  # the whole batch's runs at once: one read, not one per cell
                from nbplayground.storage import history

                found = history.finished_by_row_key(group, ("ok",)).values()
                self.tool_calls[group] = {r.id: list(r.tool_calls) for r in found}
            tool_calls = self.tool_calls[group].get(cell.run_id, [])
        return Case(output=cell.output, data=cell.data, row=self.records.get(cell.row, {}), status=cell.status,
                    latency_ms=cell.latency_ms, cost_usd=cell.cost_usd, tool_calls=tool_calls, variant=cell.variant,
                    run_id=cell.run_id)  # fmt: skip

    def _judge(self, judge: Judge, todo: list[Cell]) -> None:
        """Judge answers as one batch of runs (each keyed by, and the child of, the run it judges)."""
        if not todo or self.halted:
            return
        rows = [{**self.records.get(c.row, {}), "output": c.output} for c in todo]
        frame = pd.DataFrame(rows, index=pd.Index([c.run_id for c in todo], dtype=object))
        batch = dataframe.prepare_batch(
            frame, prompt=judge.template, system=judge.system, model=judge.model,
            params=judge.model_params, response_format=judge.schema, concurrency=self.concurrency,
            max_attempts=self.max_attempts,
            max_cost=self._budget(), progress=f"judge {judge.name}" if self.progress else False,
            on_missing="empty", group_id=store.judge_group_id(self.id, judge.fingerprint), surface="eval",
            keys_are_parents=True,
        )  # fmt: skip
        batch.resume()
        if batch.todo():
            self._count(batch.run())
        for cell, outcome in zip(todo, batch.results, strict=True):
            if outcome is None:
                continue  # not judged (the budget ran out): judged on the next call
            self._keep(judge, cell, judge.read(outcome.status, outcome.data, outcome.error), outcome.id)


# --------------------------------------------------------------------------------------------------
# Results and statistics
# --------------------------------------------------------------------------------------------------
@dataclass
class Comparison:
    """Two variants compared evaluator by evaluator over the rows both answered (paired)."""

    a: str
    b: str
    table: pd.DataFrame
    disagreements: pd.DataFrame

    def __str__(self) -> str:
        lines = [f"{self.b} vs {self.a} (difference = {self.b} − {self.a}, per row, repeats averaged first)"]
        for r in self.table.to_dict("records"):
            lines.append(f"  {r['evaluator']}: {r['summary']}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from nbplayground.core import render

        return render.paragraph(str(self).splitlines()[0]) + frames.frame_html(frames.shown(self.table))


class Experiment:
    """An experiment's cells (answers and scores) and what they say: :meth:`summary`, :meth:`compare`."""

    def __init__(self, experiment_id: str, name: str, variants: Sequence[str], evaluators: Sequence[str],
                 cells: list[Cell], repeats: int, notes: Sequence[str] = ()) -> None:  # fmt: skip
        self.id = experiment_id
        self.name = name
        self.variants = list(variants)
        self.evaluators = list(evaluators)
        self.cells = cells
        self.repeats = repeats
        self.notes = list(notes)
        self._results: pd.DataFrame | None = None

    def __repr__(self) -> str:
        return (f"Experiment({self.name!r}, {len(self.variants)} variants, {len({c.row for c in self.cells})} rows, "
                f"{len(self.evaluators)} evaluators)")  # fmt: skip

    @property
    def results(self) -> pd.DataFrame:
        """One row per (data row, variant, repeat): the answer, its status, run id, cost, latency and one
        column per evaluator (with ``<name>__reason`` and ``<name>__error``)."""
        if self._results is None:
            cells = self.cells
            # built column by column: 100,000 cells as 100,000 dicts would double the memory it takes
            columns: dict[str, Any] = {
                name: [getattr(c, attr) for c in cells]
                for name, attr in (("row", "row"), ("variant", "variant"), ("version", "version"),
                                   ("repeat", "repeat"), ("output", "output"), ("status", "status"),
                                   ("error", "error"), ("run_id", "run_id"), ("cost_usd", "cost_usd"),
                                   ("latency_ms", "latency_ms"), ("tokens_in", "tokens_in"),
                                   ("tokens_out", "tokens_out"))
            }  # fmt: skip
            for ev in self.evaluators:
                found = [c.scores.get(ev) for c in cells]
                columns[ev] = [math.nan if s is None or s.value is None else s.value for s in found]
                columns[f"{ev}__reason"] = [None if s is None else s.reason for s in found]
                columns[f"{ev}__error"] = [None if s is None else s.error for s in found]
            self._results = frames.shown(pd.DataFrame(columns))
        return self._results

    def _values(self, variant: str, evaluator: str) -> dict[str, float]:
        """Per row, the mean of a variant's scores over repeats (rows without any score left out)."""
        per_row: dict[str, list[float]] = {}
        for c in self.cells:
            if c.variant != variant:
                continue
            s = c.scores.get(evaluator)
            if s is not None and s.value is not None:
                per_row.setdefault(c.row, []).append(s.value)
        return stats.per_row_means(per_row)

    def summary(self) -> pd.DataFrame:
        """Per variant: rows, errors, each evaluator's mean with its 95 % interval and pass rate, cost,
        tokens and p50/p95 latency. ``attrs["notes"]`` says how the intervals were made."""
        out = []
        for v in self.variants:
            cells = [c for c in self.cells if c.variant == v]
            rec: dict[str, Any] = {"variant": v, "rows": len({c.row for c in cells}), "cells": len(cells),
                                   "errors": sum(c.status == "error" for c in cells)}  # fmt: skip
            for ev in self.evaluators:
                mean = stats.mean_interval(list(self._values(v, ev).values()))
                rec[f"{ev}__n"] = mean.n  # rows with a score (repeats averaged per row)
                rec[ev] = mean.mean
                rec[f"{ev}__low"], rec[f"{ev}__high"] = mean.low, mean.high
                passed = [bool(c.scores[ev].passed) for c in cells if ev in c.scores and c.scores[ev].passed is not None]
                rec[f"{ev}__pass_rate"] = sum(passed) / len(passed) if passed else math.nan
            costs = [c.cost_usd for c in cells if c.cost_usd is not None]
            rec["cost_usd"] = sum(costs) if costs and len(costs) == sum(c.run_id is not None for c in cells) else None
            rec["tokens_in"] = sum(c.tokens_in or 0 for c in cells)
            rec["tokens_out"] = sum(c.tokens_out or 0 for c in cells)
            latency = [c.latency_ms for c in cells if c.latency_ms is not None]
            rec["p50_latency_ms"] = stats.percentile(latency, 50) if latency else math.nan
            rec["p95_latency_ms"] = stats.percentile(latency, 95) if latency else math.nan
            out.append(rec)
        df = pd.DataFrame.from_records(out)
        frames.shown(df)
        few = sorted({ev for ev in self.evaluators for r in out if (r.get(f"{ev}__n") or 0) < 2})
        df.attrs["notes"] = [
            "Means are over rows (<evaluator>__n rows scored; repeats averaged per row first), with a 95 % "
            "Student-t interval; pass rates over scored cells. compare(a, b) tests a difference.",
            *([f"Too few scored rows for an interval: {', '.join(few)}."] if few else []), *self.notes,
        ]
        return df

    def show(self, limit: int = 50) -> Any:
        """A widget: rows by variants, scores coloured, filters, ``limit`` rows a page; a click opens the run in a
        Playground. Returns :class:`~nbplayground.widgets.experiment_view.ExperimentView`."""
        from nbplayground.widgets.experiment_view import ExperimentView

        return ExperimentView(self, limit=limit)

    def compare(self, a: str, b: str, top: int = 10) -> Comparison:
        """``b`` against ``a`` per evaluator: the paired difference over the rows both have, its 95 % interval
        and p-value (:func:`nbplayground.core.stats.paired`), and the ``top`` rows where they disagree most."""
        for v in (a, b):
            if v not in self.variants:
                raise E.BadParameterError(f"No variant {v!r} in this experiment; it has {', '.join(self.variants)}.",
                                          field="variant")  # fmt: skip
        rows: list[dict[str, Any]] = []
        gaps: list[tuple[float, str, str, float, float]] = []
        for ev in self.evaluators:
            va, vb = self._values(a, ev), self._values(b, ev)
            p = stats.paired(va, vb, labels=(a, b))
            rows.append({"evaluator": ev, **p.to_dict(), "summary": str(p)})
            gaps.extend((abs(vb[k] - va[k]), ev, k, va[k], vb[k]) for k in set(va) & set(vb) if vb[k] != va[k])
        gaps.sort(key=lambda g: -g[0])
        text = {(c.variant, c.row): c.output for c in self.cells if c.repeat == 0}
        worst = [{"row": k, "evaluator": ev, a: sa, b: sb, f"{a} output": text.get((a, k)),
                  f"{b} output": text.get((b, k))} for _, ev, k, sa, sb in gaps[:top]]  # fmt: skip
        return Comparison(a, b, frames.shown(pd.DataFrame.from_records(rows)),
                          frames.shown(pd.DataFrame.from_records(worst)))  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Stored experiments
# --------------------------------------------------------------------------------------------------
def experiments() -> pd.DataFrame:
    """Every stored experiment: name, id, created, variants, rows, status."""
    df = pd.DataFrame.from_records([dataclasses.asdict(r) for r in store.list_experiments()])
    frames.shown(df)
    return df


def get_experiment(name_or_id: str) -> Experiment:
    """A stored experiment (its latest variant versions), with its answers and scores, from the store."""
    from nbplayground.storage import history

    row = store.get_experiment(name_or_id)
    if row is None:
        raise E.ExperimentNotFoundError(f"No experiment named {name_or_id!r}; nbp.experiments() lists them.",
                                        field="experiment")  # fmt: skip
    latest = store.latest(store.variants(row.id))
    names = [e["name"] for e in (row.config or {}).get("evaluators", [])]
    fingerprints = {e["fingerprint"]: e["name"] for e in (row.config or {}).get("evaluators", [])}
    scores: dict[str, dict[str, Score]] = {}
    for s in store.scores(row.id):
        if s.evaluator_fingerprint in fingerprints:
            scores.setdefault(s.run_id, {})[fingerprints[s.evaluator_fingerprint]] = Score(
                s.value, s.passed, s.reason, s.error
            )
    cells = []
    for v in sorted(latest, key=lambda v: v.created_at):
        for rep in range(row.repeats or 1):
            found = history.finished_by_row_key(v.group_id(rep), ("ok", "error", "stopped"))
            for key, r in found.items():
                cell = _cell(key, v.name, v.id, v.version, rep, RowOutcome.of(r))
                cell.scores = scores.get(r.id, {})
                cells.append(cell)
    return Experiment(row.id, row.name, [v.name for v in latest], names, cells, row.repeats or 1)

