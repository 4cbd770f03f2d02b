"""``nbp.evals``: evaluators for :func:`nbplayground.experiment`.

>>> import nbplayground as nbp
>>> checks = [nbp.evals.contains("{{expected}}"), nbp.evals.regex(r"^\\d+ days$"), nbp.evals.json_valid()]

Deterministic checks (value 1.0 or 0.0, with ``passed`` and a ``reason``): :func:`equals`, :func:`contains`,
:func:`icontains`, :func:`regex`, :func:`starts_with`, :func:`json_valid`, :func:`json_schema`,
:func:`json_path`, :func:`levenshtein` (a similarity in [0, 1]), :func:`max_latency_ms`, :func:`max_cost`,
:func:`tool_called`; :func:`function` wraps any Python function ``(output, row) -> bool | float | dict``
(a plain function in ``evaluators=[...]`` is wrapped for you). Every one takes ``name=``, its column in the
results: an experiment refuses two evaluators with the same name, so name the second ``contains`` yourself.
Text to compare may be a template over the data row (``"{{expected}}"``, ``"{{answer.text}}"``).
See :mod:`nbplayground.core.evals` for the rules (templates, hostile output, time limits).
"""

from __future__ import annotations

from nbplayground.core.evals import (
    Case,
    Evaluator,
    Score,
    contains,
    equals,
    evaluate,
    function,
    icontains,
    json_path,
    json_schema,
    json_valid,
    levenshtein,
    max_cost,
    max_latency_ms,
    regex,
    starts_with,
    tool_called,
)

# ---- LLM-as-judge: verdicts that are runs of their own (an experiment batches them) -------------------
from nbplayground.core.judge import Judge, judge

__all__ = [
    "Case", "Evaluator", "Judge", "Score", "contains", "equals", "evaluate", "function", "icontains", "json_path",
    "json_schema", "json_valid", "judge", "levenshtein", "max_cost", "max_latency_ms", "regex", "starts_with",
    "tool_called",
]  # fmt: skip
