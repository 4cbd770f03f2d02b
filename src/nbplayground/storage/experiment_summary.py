"""Per-variant summaries of a stored experiment: scores with intervals, pass rates, cost, tokens, latency.

The same numbers as ``Experiment.summary()`` in a notebook, read straight from the store (the server's
``GET experiments/{id}`` shows them): over the cells of each variant version (the latest run of each
row and repeat), each evaluator's mean over rows (repeats averaged per row first) with a 95 % Student-t
interval, and its pass rate over the cells with a pass/fail, with a Wilson interval
(:mod:`nbplayground.core.stats`). Aggregation per row happens in DuckDB, so a 10,000-row experiment
brings one number per row and evaluator into Python, not every score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nbplayground.core import stats
from nbplayground.storage import experiments, queries


@dataclass(frozen=True, slots=True)
class EvaluatorSummary:
    """One evaluator over one variant version.

    ``n``: cells with a value; ``rows``: data rows with a value; ``errors``: cells whose evaluator failed;
    ``mean``: over rows (repeats averaged per row first); ``pass_rate``: over the ``pass_rate.n`` cells
    that have a pass/fail, ``passed`` of them passed.
    """

    evaluator: str
    n: int
    rows: int
    errors: int
    mean: stats.Interval
    passed: int
    pass_rate: stats.Interval

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the counts, the mean and pass rate flattened with their bounds."""
        return {
            "evaluator": self.evaluator, "n": self.n, "rows": self.rows, "errors": self.errors,
            "mean": self.mean.mean, "low": self.mean.low, "high": self.mean.high, "method": self.mean.method,
            "passed": self.passed, "pass_n": self.pass_rate.n, "pass_rate": self.pass_rate.mean,
            "pass_low": self.pass_rate.low, "pass_high": self.pass_rate.high,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class VariantSummary:
    """One variant version: its cells, run errors, cost (None when any cell's cost is unknown), tokens,
    p50/p95 latency of its runs, and one :class:`EvaluatorSummary` per evaluator."""

    variant: str
    variant_id: str
    version: int
    rows: int
    cells: int
    errors: int
    cost_usd: float | None
    tokens_in: int
    tokens_out: int
    p50_latency_ms: float | None
    p95_latency_ms: float | None
    evaluators: tuple[EvaluatorSummary, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (evaluators as a list of their dicts)."""
        return {
            "variant": self.variant, "variant_id": self.variant_id, "version": self.version, "rows": self.rows,
            "cells": self.cells, "errors": self.errors, "cost_usd": self.cost_usd, "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out, "p50_latency_ms": self.p50_latency_ms,
            "p95_latency_ms": self.p95_latency_ms, "evaluators": [e.to_dict() for e in self.evaluators],
        }  # fmt: skip


def summary(experiment_id: str, variant_ids: Sequence[str] | None = None) -> list[VariantSummary]:
    """Per variant version (the latest ones unless ``variant_ids`` names others), in the variants' order.

    Evaluators are the experiment config's (in its order), then any other scored name; only the scores of
    the config's evaluator fingerprints count (an evaluator changed since keeps its old scores stored).
    """
    experiment = experiments.get_experiment(experiment_id)
    if experiment is None:
        return []
    found = experiments.variants(experiment.id)
    chosen = (experiments.latest(found) if variant_ids is None
              else [v for v in found if v.id in set(variant_ids)])  # fmt: skip
    if not chosen:
        return []
    current = sorted(experiments.current_fingerprints(experiment))
    cells_sql, cells_args = experiments.cells_query([v.id for v in chosen])
    only = f"AND evaluator_fingerprint IN ({', '.join('?' * len(current))})" if current else ""
    scored = f"""
        WITH cells AS ({cells_sql}),
        picked AS (
            SELECT * FROM scores WHERE experiment_id = ? {only}
            QUALIFY row_number() OVER (PARTITION BY run_id, evaluator ORDER BY created_at DESC) = 1
        )
        SELECT c.variant_id, s.evaluator, c.row_key, avg(s.value) AS mean, count(s.value) AS n,
               count(s.error) AS errors, count(s.passed) AS pass_n, count(*) FILTER (WHERE s.passed) AS passed
        FROM cells c JOIN picked s ON s.run_id = c.run_id
        GROUP BY c.variant_id, s.evaluator, c.row_key
    """
    runs = f"""
        SELECT variant_id, count(DISTINCT row_key), count(*), count(*) FILTER (WHERE status = 'error'), sum(cost_usd),
               count(cost_usd), coalesce(sum(tokens_in), 0), coalesce(sum(tokens_out), 0),
               list(latency_ms) FILTER (WHERE latency_ms IS NOT NULL)
        FROM ({cells_sql}) GROUP BY variant_id
    """
    queries._before_read()  # this process's runs not stored yet count too
    with queries._reader() as con:
        per_row = con.execute(scored, [*cells_args, experiment.id, *current]).fetchall()
        per_variant = {r[0]: r for r in con.execute(runs, cells_args).fetchall()}
    names = [str(e["name"]) for e in experiment.config.get("evaluators") or [] if isinstance(e, dict)]
    by: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    for row in per_row:
        by.setdefault((row[0], row[1]), []).append(row)
        if row[1] not in names:
            names.append(row[1])
    out = []
    for v in chosen:
        _, n_rows, n_cells, errors, cost, n_cost, tokens_in, tokens_out, latency = per_variant.get(
            v.id, (v.id, 0, 0, 0, None, 0, 0, 0, None)
        )
        evaluators = []
        for name in names:
            rows = by.get((v.id, name), [])
            means = [r[3] for r in rows if r[4]]
            passed, pass_n = sum(int(r[7]) for r in rows), sum(int(r[6]) for r in rows)
            evaluators.append(EvaluatorSummary(
                evaluator=name, n=sum(int(r[4]) for r in rows), rows=len(means), errors=sum(int(r[5]) for r in rows),
                mean=stats.mean_interval(means), passed=passed, pass_rate=stats.proportion_interval(passed, pass_n),
            ))  # fmt: skip
        out.append(VariantSummary(
            variant=v.name, variant_id=v.id, version=v.version, rows=int(n_rows), cells=int(n_cells),
            errors=int(errors), cost_usd=float(cost) if n_cells and n_cost == n_cells else None,
            tokens_in=int(tokens_in), tokens_out=int(tokens_out),
            p50_latency_ms=stats.percentile(latency or [], 50), p95_latency_ms=stats.percentile(latency or [], 95),
            evaluators=tuple(evaluators),
        ))  # fmt: skip
    return out
