"""The experiment view (``exp.show()``): data rows by variants, each answer with its scores, one page at a time.

The kernel holds the matrix and pages it: the front end (``js/experiment.ts``) writes the ``query`` trait
(filters and the page's offset) and the kernel answers with the ``page`` trait, the 50 or so rows asked for,
so 10 variants by 10,000 rows never cross the wire at once. Filters (a variant, a run status, an
evaluator's outcome, a text search) are applied here, over an index built once; a page serializes only its
own rows. Clicking an answer sends ``{"type": "open", "run_id": ...}`` and the kernel shows that run in a
:class:`~nbplayground.widgets.playground.Playground` in an output area below the matrix.

The messages are this widget's own (self-contained, typed in ``js/experiment.ts``), not the Playground's
``widgets/protocol.py``: three traits and one command.
"""

from __future__ import annotations

import html
import math
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets
import traitlets as t

from nbplayground.core import errors as E
from nbplayground.widgets._base import StaticCopyWidget, bundle

if TYPE_CHECKING:
    from nbplayground.core.evals import Score
    from nbplayground.experimenting import Cell, Experiment
    from nbplayground.widgets.playground import Playground

#: Rows on a page unless the front end asks for another size (bounded by MAX_LIMIT).
LIMIT = 50
MAX_LIMIT = 500
#: Characters of an answer a cell shows; the whole answer is one click away (the Playground).
PREVIEW_CHARS = 400
#: Characters of a score's reason or error in a tooltip.
NOTE_CHARS = 500
#: Outcomes a filter on an evaluator may ask for.
OUTCOMES = ("pass", "fail", "error", "disagree")
QUERY_KEYS = ("variant", "status", "evaluator", "outcome", "text", "sort", "offset", "limit")
#: Orders a ``sort`` may ask for, after an evaluator's name and a colon: ``"exact:asc"`` shows the lowest scores first.
ORDERS = ("asc", "desc")



def _clip(text: str | None, n: int) -> str | None:
    if text is None:
        return None
    return text if len(text) <= n else text[: n - 1] + "…"


def _number(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x


def _score_state(s: Score) -> dict[str, Any]:
    return {"value": _number(s.value), "passed": s.passed, "reason": _clip(s.reason, NOTE_CHARS),
            "error": _clip(s.error, NOTE_CHARS)}  # fmt: skip


def _outcome(s: Score | None) -> str | None:
    """``pass``, ``fail``, ``error``, or None (a plain number, or not scored)."""
    if s is None:
        return None
    if s.error is not None or s.value is None:
        return "error"
    if s.passed is None:
        return None
    return "pass" if s.passed else "fail"


def cell_state(c: Cell) -> dict[str, Any]:
    """One answer as the ``page`` trait carries it: a preview of the text, its status, cost and scores."""
    return {
        "run_id": c.run_id, "repeat": c.repeat, "status": c.status, "output": _clip(c.output, PREVIEW_CHARS) or "",
        "truncated": len(c.output) > PREVIEW_CHARS, "error": _clip(c.error, NOTE_CHARS),
        "latency_ms": _number(c.latency_ms), "cost_usd": _number(c.cost_usd),
        "scores": {name: _score_state(s) for name, s in c.scores.items()},
    }  # fmt: skip


class Query:
    """A normalized ``query`` trait: which rows (filters) and which page of them."""

    def __init__(self, raw: Mapping[str, Any], variants: Sequence[str], evaluators: Sequence[str]) -> None:
        unknown = sorted(set(raw) - set(QUERY_KEYS))
        if unknown:
            raise E.BadParameterError(f"Unknown filter {unknown[0]!r}; the view filters by {', '.join(QUERY_KEYS)}.")
        self.variant = str(raw.get("variant") or "")
        self.status = str(raw.get("status") or "")
        self.evaluator = str(raw.get("evaluator") or "")
        self.outcome = str(raw.get("outcome") or "")
        self.text = str(raw.get("text") or "").strip().casefold()
        if self.variant and self.variant not in variants:
            raise E.BadParameterError(f"No variant {self.variant!r}; this experiment has {', '.join(variants)}.")
        if self.evaluator and self.evaluator not in evaluators:
            raise E.BadParameterError(
                f"No evaluator {self.evaluator!r}; this experiment has {', '.join(evaluators) or 'none'}."
            )
        if self.outcome and self.outcome not in OUTCOMES:
            raise E.BadParameterError(f"An outcome is one of {', '.join(OUTCOMES)}; got {self.outcome!r}.")
        self.sort = str(raw.get("sort") or "")
        if self.sort:
            name, _, order = self.sort.rpartition(":")
            if name not in evaluators or order not in ORDERS:
                raise E.BadParameterError(f"sort is '<evaluator>:asc' or '<evaluator>:desc'; got {self.sort!r}.")
        self.offset = _int(raw.get("offset"), 0, "offset")
        self.limit = min(max(_int(raw.get("limit"), LIMIT, "limit"), 1), MAX_LIMIT)
        self.evaluators = [self.evaluator] if self.evaluator else list(evaluators)

    def key(self) -> tuple[str, ...]:
        """What decides the rows (not the page)."""
        return (self.variant, self.status, self.evaluator, self.outcome, self.text, self.sort)

    def active(self) -> bool:
        return any(self.key())

    def cell_matches(self, c: Cell, text: bool = True) -> bool:
        """The answer passes the filters (``text=False``: the text search is already met by its row's key)."""
        if self.variant and c.variant != self.variant:
            return False
        if self.status and c.status != self.status:
            return False
        if text and self.text and self.text not in c.output.casefold() and self.text not in (c.error or "").casefold():
            return False
        if self.outcome and self.outcome != "disagree":
            return any(_outcome(c.scores.get(ev)) == self.outcome for ev in self.evaluators)
        return True

    def row_matches(self, key: str, by_variant: Mapping[str, list[Cell]]) -> bool:
        cells = [c for cs in by_variant.values() for c in cs]
        if self.outcome == "disagree" and not any(self._disagree(ev, by_variant) for ev in self.evaluators):
            return False
        by_key = bool(self.text) and self.text in key.casefold()
        return any(self.cell_matches(c, text=not by_key) for c in cells)

    @staticmethod
    def _disagree(ev: str, by_variant: Mapping[str, list[Cell]]) -> bool:
        """The variants' scores on this row differ (repeats averaged first)."""
        means = set()
        for cells in by_variant.values():
            values = [s.value for c in cells if (s := c.scores.get(ev)) is not None and s.value is not None]
            if values:
                means.add(round(sum(values) / len(values), 9))
        return len(means) > 1


def _int(value: Any, default: int, name: str) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise E.BadParameterError(f"The page's {name} is a whole number ≥ 0; got {value!r}.")
    return int(value)


class Matrix:
    """The experiment's answers indexed by row and variant (built once), filtered per query, paged."""

    def __init__(self, cells: Sequence[Cell], variants: Sequence[str], evaluators: Sequence[str]) -> None:
        self.variants = list(variants)
        self.evaluators = list(evaluators)
        self.by_row: dict[str, dict[str, list[Cell]]] = {}
        self.run_ids: set[str] = set()
        statuses: set[str] = set()
        for c in cells:
            self.by_row.setdefault(c.row, {}).setdefault(c.variant, []).append(c)
            statuses.add(c.status)
            if c.run_id is not None:
                self.run_ids.add(c.run_id)
        seen = set(self.variants)
        self.variants += [v for v in dict.fromkeys(c.variant for c in cells) if v not in seen]
        self.statuses = sorted(statuses)
        self.rows = list(self.by_row)
        self._filtered: tuple[tuple[str, ...], list[str]] = ((), self.rows)

    def query(self, raw: Mapping[str, Any]) -> Query:
        return Query(raw, self.variants, self.evaluators)

    def matching(self, q: Query) -> list[str]:
        """The keys of the rows that pass the filters, in the experiment's order or sorted by a score (the last
        answer cached)."""
        if not q.active():
            return self.rows
        if self._filtered[0] != q.key():
            keys = [k for k in self.rows if q.row_matches(k, self.by_row[k])] if any(q.key()[:-1]) else self.rows
            if q.sort:
                keys = self._sorted(keys, q)
            self._filtered = (q.key(), keys)
        return self._filtered[1]

    def _sorted(self, keys: list[str], q: Query) -> list[str]:
        """By the row's mean score on the evaluator (over the variant filtered on, or all); unscored rows last."""
        name, _, order = q.sort.rpartition(":")
        sign = 1.0 if order == "asc" else -1.0
        scored: list[tuple[float, int, str]] = []
        unscored: list[str] = []
        for i, key in enumerate(keys):
            values = [s.value for v, cells in self.by_row[key].items() if not q.variant or v == q.variant
                      for c in cells if (s := c.scores.get(name)) is not None and s.value is not None]  # fmt: skip
            if values:
                scored.append((sign * sum(values) / len(values), i, key))
            else:
                unscored.append(key)
        return [k for _, _, k in sorted(scored)] + unscored

    def page(self, q: Query) -> dict[str, Any]:
        """One page of rows: for each, every variant's answers (one per repeat) with their scores."""
        keys = self.matching(q)
        offset = min(q.offset, max(0, (len(keys) - 1) // q.limit * q.limit))
        rows = []
        for key in keys[offset : offset + q.limit]:
            by_variant = self.by_row[key]
            rows.append({"key": key, "cells": {v: [cell_state(c) for c in sorted(by_variant.get(v, []),
                                                                               key=lambda c: c.repeat)]
                                               for v in self.variants}})  # fmt: skip
        return {"offset": offset, "limit": q.limit, "total": len(keys), "all": len(self.rows), "rows": rows}


class ExperimentView(StaticCopyWidget):
    """``exp.show()``: the experiment's rows by variants, scores coloured, filters, a click opens a run.

    ``view.query = {...}`` (or the filters in the widget) picks the rows; ``view.open_run(run_id)`` shows a run
    in a Playground below the matrix and returns that Playground.
    """

    _esm = bundle("experiment.js", "experiment view's")
    _css = bundle("experiment.css", "experiment view's")

    title = t.Unicode(help="The experiment's name.").tag(sync=True)
    variants = t.List(t.Unicode(), help="The matrix's columns.").tag(sync=True)
    evaluators = t.List(t.Unicode(), help="Evaluator names (the filters' choices).").tag(sync=True)
    statuses = t.List(t.Unicode(), help="Run statuses present (the filter's choices).").tag(sync=True)
    query = t.Dict(help="Filters and page: variant, status, evaluator, outcome, text, offset, limit.").tag(sync=True)
    page = t.Dict(help="The page shown: offset, limit, total (filtered), all, rows.").tag(sync=True)
    opened = t.Unicode("", help="The run id shown in the Playground below, or ''.").tag(sync=True)
    error = t.Unicode("", help="The last error (a bad filter, a run that cannot be opened), or ''.").tag(sync=True)

    def __init__(self, experiment: Experiment, *, limit: int = LIMIT, **kwargs: Any) -> None:
        matrix = Matrix(experiment.cells, experiment.variants, experiment.evaluators)
        q = matrix.query({"limit": limit})
        super().__init__(title=experiment.name, variants=matrix.variants, evaluators=matrix.evaluators,
                         statuses=matrix.statuses, query={"limit": q.limit}, page=matrix.page(q), **kwargs)  # fmt: skip
        self.matrix = matrix
        self.experiment = experiment
        self.slot = ipywidgets.Output()
        self.playground: Playground | None = None
        self._lock = threading.Lock()
        self.observe(self._on_query, names="query")
        self.on_msg(self._on_front_msg)

    # -- Python API -----------------------------------------------------------------------------------
    def open_run(self, run_id: str) -> Playground:
        """Show one of this experiment's runs in a Playground below the matrix (and return it)."""
        from nbplayground.widgets.playground import Playground

        if run_id not in self.matrix.run_ids:
            raise E.RunNotFoundError(f"Run {run_id!r} is not an answer of this experiment; click a cell of the matrix.")
        with self._lock:
            pg = Playground.from_run(run_id)
            bundle = pg._repr_mimebundle_()
            data = bundle[0] if isinstance(bundle, tuple) else bundle
            # set, not captured (`with slot:`): this runs in a comm handler, where capture depends on timing
            self.slot.outputs = ({"output_type": "display_data", "data": data, "metadata": {}},)
            self.playground = pg
            self.opened = run_id
            self.error = ""
            return pg

    # -- traits and commands ----------------------------------------------------------------------------
    def _on_query(self, change: Any) -> None:
        try:
            q = self.matrix.query(dict(change["new"] or {}))
        except E.NBPlaygroundError as exc:
            self.error = str(exc)
            return
        self.page = self.matrix.page(q)
        self.error = ""

    def _on_front_msg(self, _widget: Any, msg: dict[str, Any], _buffers: list[bytes]) -> None:
        try:
            if msg.get("type") == "open":
                self.open_run(str(msg.get("run_id")))
            else:
                raise E.BadParameterError(f"Unknown experiment view command {msg.get('type')!r}.")
        except E.NBPlaygroundError as exc:
            self.error = str(exc)
        except Exception as exc:  # shown in the widget, not lost in the kernel log
            self.error = f"{type(exc).__name__}: {exc}"

    # -- display with a static fallback -----------------------------------------------------------------
    def fallback_html(self) -> str:
        """The first page as a plain HTML table (every text escaped), for a saved notebook without a kernel."""
        page = self.page
        esc = html.escape
        head = "".join(f"<th>{esc(v)}</th>" for v in self.variants)
        body = []
        for row in page.get("rows", []):
            tds = []
            for v in self.variants:
                parts = []
                for c in row["cells"].get(v, []):
                    scores = ", ".join(
                        f"{esc(name)}: {_score_text(s)}" for name, s in sorted(c["scores"].items())
                    )
                    parts.append(f"<div>{esc(c['output'] or c['error'] or c['status'])}"
                                 + (f"<br><small>{scores}</small>" if scores else "") + "</div>")  # fmt: skip
                tds.append(f"<td>{''.join(parts) or '—'}</td>")
            body.append(f"<tr><th>{esc(row['key'])}</th>{''.join(tds)}</tr>")
        shown = len(page.get("rows", []))
        caption = (f"<b>Experiment {esc(self.title)}</b> · rows 1–{shown} of {page.get('total', 0)} "
                   "(open the notebook with a kernel to filter, page and open runs)")  # fmt: skip
        return (f'<div class="nbp-fallback"><div>{caption}</div><table><thead><tr><th>row</th>{head}</tr></thead>'
                f"<tbody>{''.join(body)}</tbody></table></div>")  # fmt: skip

    def display_after(self) -> None:
        """The area where a clicked run opens, then the static copy of the first page."""
        from IPython.display import display as ipy_display

        ipy_display(self.slot)
        ipy_display({"text/html": self.fallback_html(), "text/plain": ""}, raw=True)

    def __repr__(self) -> str:
        return (f"ExperimentView({self.title!r}: {len(self.matrix.rows)} rows × {len(self.variants)} variants, "
                f"{len(self.evaluators)} evaluators)")  # fmt: skip


def _score_text(s: Mapping[str, Any]) -> str:
    if s.get("error"):
        return "error"
    if s.get("passed") is not None:
        return "pass" if s["passed"] else "fail"
    value = s.get("value")
    return "–" if value is None else f"{value:.3g}"
