"""The evaluator model: a :class:`Case` (one answer), a :class:`Score`, the :class:`Evaluator` base class,
:func:`evaluate` (never raises) and :func:`function` (any Python callable as an evaluator). Pure: no engine,
no storage. The deterministic evaluators are in :mod:`nbplayground.core.evals`, which re-exports all of this.

- ``name`` is the results column: an experiment refuses two evaluators with the same name (pass ``name=``
  to tell two of the same kind apart). ``fingerprint`` hashes the kind, the operation and the normalized
  arguments (:meth:`Evaluator.arguments`), never the name: the same evaluator in another process has the
  same one, so finished scores are reused; a subclass may assign its own.
- Every reason and error is made safe to store: lone surrogates and NUL escaped, at most 2,000 characters.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Final

from nbplayground.core.errors import BadParameterError
from nbplayground.core.types import ToolCall

if TYPE_CHECKING:
    from nbplayground.core.types import RunResult

__all__ = ["Case", "Evaluator", "FunctionEvaluator", "Score", "as_evaluator", "as_evaluators", "evaluate", "function"]

_MAX_TEXT: Final = 2000


def _clean(text: str | None) -> str | None:
    """Text safe to store and show: lone surrogates and NUL escaped, at most 2,000 characters."""
    if text is None:
        return None
    text = str(text)[: _MAX_TEXT * 2]
    text = text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def _show(text: str, limit: int = 60) -> str:
    """A short quoted excerpt of ``text`` for a reason (``'abc…'``)."""
    return repr(text[:limit]) + ("…" if len(text) > limit else "")


@dataclass(frozen=True)
class Case:
    """One answer to score: the output, the data row it answered, and how the run went."""

    output: str
    #: the parsed structured output (``RunResult.data``), or None
    data: Any = None
    #: the data row's values by column name (templates resolve dot paths inside)
    row: Mapping[str, Any] = field(default_factory=dict)
    status: str = "ok"
    latency_ms: float | None = None
    cost_usd: float | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    variant: str = ""
    run_id: str | None = None

    @classmethod
    def from_result(cls, result: RunResult, row: Mapping[str, Any] | None = None, variant: str = "") -> Case:
        """The case of one run's result (its text, data, status, latency, cost and tool calls)."""
        return cls(
            output=result.text or "", data=result.data, row=row or {}, status=result.status,
            latency_ms=result.latency_ms, cost_usd=result.cost_usd, tool_calls=list(result.tool_calls),
            variant=variant, run_id=result.id,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Score:
    """What an evaluator said: ``value`` (finite, or None when it errored), ``passed``, ``reason``, ``error``.

    With ``error`` set, ``value`` and ``passed`` are None. A NaN or infinite value raises ``ValueError``.
    """

    value: float | None
    passed: bool | None = None
    reason: str | None = None
    error: str | None = None

    def __post_init__(self) -> None:
        value = self.value
        if self.error is not None:
            value, passed = None, None
        else:
            passed = None if self.passed is None else bool(self.passed)
            if value is not None:
                value = float(value)
                if not math.isfinite(value):
                    raise ValueError(f"a score must be a finite number, not {value}")
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "passed", passed)
        object.__setattr__(self, "reason", _clean(self.reason))
        object.__setattr__(self, "error", _clean(self.error))

    @classmethod
    def check(cls, passed: bool, reason: str | None = None) -> Score:
        """A pass/fail score: value 1.0 or 0.0."""
        return cls(1.0 if passed else 0.0, bool(passed), reason)

    @classmethod
    def failed(cls, error: str) -> Score:
        """A score that could not be computed (shown as NaN, with ``error`` kept)."""
        return cls(None, None, None, error)

    def to_dict(self) -> dict[str, Any]:
        """``{"value", "passed", "reason", "error"}``."""
        return {"value": self.value, "passed": self.passed, "reason": self.reason, "error": self.error}


class Evaluator(ABC):
    """Scores cases. Subclasses set ``op`` and implement :meth:`score` (and :meth:`arguments` if they take any).

    ``kind`` is ``"code"`` (deterministic, local) or ``"judge"`` (a model call through the engine).
    """

    kind: ClassVar[str] = "code"
    #: what it does (``"contains"``): the default name, and part of the fingerprint
    op: ClassVar[str] = "evaluator"
    #: whether :meth:`score` reads ``case.tool_calls`` (the experiment then loads each whole run)
    needs_run: ClassVar[bool] = False

    def __init__(self, name: str | None = None) -> None:
        name = self.op if name is None else name
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            raise BadParameterError(
                f"An evaluator name must be a non-empty string without surrounding spaces, not {name!r}.",
                field="name",
            )
        #: the results column (unique in an experiment)
        self.name: str = name

    def arguments(self) -> dict[str, Any]:
        """The normalized arguments (JSON values) that make this evaluator what it is."""
        return {}

    @cached_property
    def fingerprint(self) -> str:
        """A stable identity (sha256[:16] of kind, op and arguments, not the name): the same in every process."""
        blob = json.dumps(
            {"kind": self.kind, "op": self.op, "arguments": self.arguments()},
            sort_keys=True, ensure_ascii=True, separators=(",", ":"), default=repr,
        )  # fmt: skip
        return hashlib.sha256(blob.encode("ascii")).hexdigest()[:16]

    def spec(self) -> dict[str, Any]:
        """What to store about it: name, kind, op, arguments and fingerprint."""
        return {"name": self.name, "kind": self.kind, "op": self.op, "arguments": self.arguments(),
                "fingerprint": self.fingerprint}  # fmt: skip

    @abstractmethod
    def score(self, case: Case) -> Score:
        """Score one case; may raise (:func:`evaluate` turns that into an error score)."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.arguments().items())
        return f"<{self.op}({args}) name={self.name!r}>"


def evaluate(evaluator: Evaluator, case: Case) -> Score:
    """``evaluator.score(case)``, with any exception (or a result that is not a Score) as an error score."""
    try:
        score = evaluator.score(case)
    except Exception as exc:  # an evaluator's failure is that cell's error, never the experiment's
        return Score.failed(f"{type(exc).__name__}: {exc}")
    if not isinstance(score, Score):
        return Score.failed(f"TypeError: {evaluator.name} returned {type(score).__name__}, not a Score")
    return score


def as_evaluator(item: Evaluator | Callable[..., Any]) -> Evaluator:
    """An evaluator as is; a plain function through :func:`function`; anything else raises BadParameterError."""
    return item if isinstance(item, Evaluator) else function(item)


def as_evaluators(items: Iterable[Evaluator | Callable[..., Any]]) -> list[Evaluator]:
    """Evaluators from a list of evaluators and plain functions; refuses two with the same name."""
    out = [as_evaluator(item) for item in items]
    seen: set[str] = set()
    for ev in out:
        if ev.name in seen:
            raise BadParameterError(
                f"Two evaluators are named {ev.name!r}: pass name='...' to one of them.", field="evaluators"
            )
        seen.add(ev.name)
    return out


def _plain(value: Any) -> Any:
    """numpy scalars (from a pandas row) as Python values, without importing numpy."""
    if not isinstance(value, str | bytes | dict | list) and hasattr(value, "item") and hasattr(value, "dtype"):
        try:
            return value.item()
        except Exception:
            return value
    return value


# ---- any Python function ---------------------------------------------------------------------------


class FunctionEvaluator(Evaluator):
    """A Python callable as an evaluator (see :func:`function`)."""

    op = "function"

    def __init__(self, fn: Callable[..., Any], name: str | None = None) -> None:
        if not callable(fn):
            raise BadParameterError(f"An evaluator must be callable, not {type(fn).__name__}.", field="evaluators")
        if inspect.iscoroutinefunction(fn):
            raise BadParameterError("Async evaluator functions are not supported: use a plain def.",
                                    field="evaluators")  # fmt: skip
        self.fn = fn
        self.qualname = _qualname(fn)
        self._call = _calling(fn)
        self.needs_run = self._call == "case"  # type: ignore[misc]  # fn(case) may read case.tool_calls
        default = getattr(fn, "__name__", None)
        if not isinstance(default, str) or not default.isidentifier():
            default = "function"  # a lambda or a callable object
        super().__init__(name if name is not None else default)

    def arguments(self) -> dict[str, Any]:
        return {"qualname": self.qualname, "source": hashlib.sha256(_source(self.fn).encode("utf-8", "replace")).hexdigest()}

    def score(self, case: Case) -> Score:
        if self._call == "case":
            result = self.fn(case)
        elif self._call == "output":
            result = self.fn(case.output)
        else:
            result = self.fn(case.output, case.row)
        return _to_score(result, self.name)


def function(fn: Callable[..., Any], name: str | None = None) -> Evaluator:
    """Any Python callable as an evaluator: ``fn(output, row)``, ``fn(output)``, or ``fn(case)`` (one parameter
    named ``case`` gets the whole :class:`Case`). It returns a bool (value 1.0/0.0 and passed), a number
    (the value; NaN is an error), a dict (``score`` or ``value``, ``passed``, ``reason``) or a :class:`Score`.
    The default name is the function's; the fingerprint is its qualified name and source."""
    return FunctionEvaluator(fn, name)


def _source(fn: Any) -> str:
    """What identifies a callable's behaviour: its source, plus its defaults and closure values (two lambdas
    from one factory differ by what they captured), or for another callable its class's source and repr."""
    if inspect.isfunction(fn) or inspect.ismethod(fn):
        func: Any = getattr(fn, "__func__", fn)
        try:
            text = inspect.getsource(func)
        except (OSError, TypeError):
            text = ""
        extra = [repr(func.__defaults__), repr(func.__kwdefaults__)]
        for cell in func.__closure__ or ():
            try:
                extra.append(repr(cell.cell_contents))
            except ValueError:  # an empty cell
                extra.append("<empty>")
        return "\n".join([text, *extra])
    try:
        text = inspect.getsource(type(fn))
    except (OSError, TypeError):
        text = ""
    return f"{text}\n{fn!r}"


def _qualname(fn: Any) -> str:
    target = fn if hasattr(fn, "__qualname__") else type(fn)
    return f"{getattr(target, '__module__', '')}.{getattr(target, '__qualname__', type(fn).__name__)}"


def _calling(fn: Callable[..., Any]) -> str:
    """How to call ``fn``: ``"output_row"``, ``"output"`` or ``"case"``."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return "output_row"
    positional = [p for p in sig.parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]  # fmt: skip
    required = [p for p in positional if p.default is p.empty]
    if any(p.kind == p.VAR_POSITIONAL for p in sig.parameters.values()) or len(positional) >= 2:
        if len(required) > 2:
            raise BadParameterError(f"{_qualname(fn)} needs {len(required)} arguments: an evaluator function "
                                    "takes (output, row).", field="evaluators")  # fmt: skip
        return "output_row"
    if len(positional) == 1:
        return "case" if positional[0].name == "case" else "output"
    raise BadParameterError(f"{_qualname(fn)} takes no arguments: an evaluator function takes (output, row).",
                            field="evaluators")  # fmt: skip


_DICT_KEYS: Final = frozenset({"score", "value", "passed", "reason"})


def _number(value: Any, where: str) -> float:
    value = _plain(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where} returned a score of type {type(value).__name__}; return a number")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{where} returned {number}; return a finite number (or raise to mark an error)")
    return number


def _to_score(result: Any, where: str) -> Score:
    result = _plain(result)
    if isinstance(result, Score):
        return result
    if isinstance(result, bool):
        return Score.check(result)
    if isinstance(result, numbers.Real):
        return Score(_number(result, where))
    if isinstance(result, Mapping):
        unknown = set(result) - _DICT_KEYS
        if unknown:
            raise ValueError(f"{where} returned unknown keys {sorted(map(str, unknown))}; use score, passed, reason")
        raw = result.get("score", result.get("value"))
        passed = _plain(result.get("passed"))
        if passed is not None and not isinstance(passed, bool):
            raise TypeError(f"{where} returned passed={passed!r}; use True or False")
        reason = result.get("reason")
        if raw is None and passed is None:
            raise ValueError(f"{where} returned neither a score nor passed")
        value = (1.0 if passed else 0.0) if raw is None else _number(raw, where)
        return Score(value, passed, None if reason is None else str(reason))
    raise TypeError(f"{where} returned {type(result).__name__}; return a bool, a number or a dict")

