"""LLM-as-judge: an evaluator whose verdicts are runs of their own.

A :class:`Judge` holds a prompt template (``{{output}}`` is the answer judged; other placeholders are the
data row's columns), a model and the allowed verdicts with their values (``{"yes": 1, "no": 0}``). The
experiment runs it like any batch (``surface="eval"``, one run per judged answer, keyed by that answer's
run id), asking for structured output: a ``reason`` first, then a ``choice`` among the verdicts. A verdict
outside the choices, or an answer that is not that JSON, is an error for that cell, never a 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from nbplayground.core import errors as E
from nbplayground.core.evals import Case, Evaluator, Score


class Judge(Evaluator):
    """An LLM judge: ``template`` reads ``{{output}}`` (the answer) and the row's columns; the model picks one
    of ``choices`` (default ``{"yes": 1, "no": 0}``) and gives its reason, through the same engine.
    ``passed`` is True for the best-valued choice."""

    kind: ClassVar[str] = "judge"
    op: ClassVar[str] = "judge"

    def __init__(
        self,
        template: str,
        *,
        model: str | None = None,
        choices: Mapping[str, float] | None = None,
        name: str | None = None,
        params: Mapping[str, Any] | None = None,
        system: str | None = None,
    ) -> None:
        if not isinstance(template, str) or not template.strip():
            raise E.BadParameterError("A judge needs a prompt template, e.g. 'Is {{output}} correct?'.",
                                      field="template")  # fmt: skip
        choices = dict(choices if choices is not None else {"yes": 1.0, "no": 0.0})
        if not choices or not all(isinstance(k, str) and k for k in choices):
            raise E.BadParameterError("choices maps each verdict (text) to its value, e.g. {'yes': 1, 'no': 0}.",
                                      field="choices")  # fmt: skip
        for k, v in choices.items():
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise E.BadParameterError(f"The value of choice {k!r} must be a finite number, got {v!r}.",
                                          field=f"choices.{k}")  # fmt: skip
        super().__init__(name)
        self.template = template
        self.model = model
        self.choices = {k: float(v) for k, v in choices.items()}
        self.model_params = dict(params or {})
        self.system = system

    def arguments(self) -> dict[str, Any]:
        """What makes this judge what it is (its fingerprint): prompt, model, choices, parameters."""
        return {"template": self.template, "model": self.model, "choices": self.choices,
                "params": self.model_params, "system": self.system}  # fmt: skip

    @property
    def schema(self) -> dict[str, Any]:
        """The structured output asked of the judge: its reason, then its choice."""
        return {
            "type": "object",
            "properties": {"reason": {"type": "string"}, "choice": {"type": "string", "enum": list(self.choices)}},
            "required": ["reason", "choice"],
            "additionalProperties": False,
        }

    def score(self, case: Case) -> Score:
        """A judge is run by the experiment as a batch of runs, not called per case."""
        raise E.BadParameterError("A judge scores through an experiment (nbp.experiment), not one case at a time.",
                                  field="evaluators")  # fmt: skip

    def read(self, status: str, data: Any, error: str | None) -> Score:
        """The score of one judge run: the chosen verdict's value, or an error when there is none. The run's
        structured output (``data``) was already checked against :attr:`schema`: a reply that is not that
        JSON is a failed run."""
        if status != "ok":
            return Score(None, None, None, f"the judge's run {status}" + (f": {error}" if error else ""))
        verdict = data if isinstance(data, Mapping) else {}
        choice = verdict.get("choice")
        if choice not in self.choices:
            return Score(None, None, None,
                         f"the judge chose {choice!r}, not one of {', '.join(map(repr, self.choices))}")  # fmt: skip
        value = self.choices[choice]
        reason = verdict.get("reason")
        return Score(value, value == max(self.choices.values()), str(reason) if reason is not None else None, None)


#: ``nbp.evals.judge(template, model=..., choices=...)``: named like the other evaluators (``contains``, ...).
judge = Judge
