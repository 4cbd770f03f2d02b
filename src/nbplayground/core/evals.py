"""The deterministic evaluators (``nbp.evals``), and the evaluator model re-exported from
:mod:`nbplayground.core.scoring` (:class:`Case`, :class:`Score`, :class:`Evaluator`, :func:`evaluate`,
:func:`function`). Pure: no engine, no storage.

- Each check gives ``value`` 1.0 or 0.0 with ``passed`` (``levenshtein`` gives a similarity) and a short
  ``reason``; every factory takes ``name=`` (the results column; an experiment refuses two evaluators with
  the same name, so name the second ``contains`` yourself). The default name is the check's (``"contains"``).
- Text to compare may be a template, rendered from the data row (``"{{expected}}"``, ``"{{a.b}}"``) by
  :func:`nbplayground.core.templating.render`; a missing column is an error for that row only. Where a
  JSON value is compared (``json_path(expected=...)``, ``tool_called(args=...)``) a template that is just
  one placeholder gives the row's value itself, and then ``"3"`` from a CSV column matches the number 3.
- Hostile output is scored, never crashes or hangs: ``regex`` runs on the ``regex`` package (``re``'s
  syntax) with a time limit (``timeout``, 0.25 s of CPU time by default), so catastrophic backtracking is an
  error for that row (a cap on the searched length would not help: ``(a+)+$`` blows up on 30 characters); JSON
  nested deeper than Python can parse is an error (the check cannot tell), not a fail; ``levenshtein``
  refuses pairs too long to compare quickly. Reasons quote at most a few dozen characters, escaped.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from typing import Any, Final

from nbplayground.core.errors import BadParameterError, MissingVariablesError
from nbplayground.core.scoring import (
    Case,
    Evaluator,
    FunctionEvaluator,
    Score,
    _plain,
    _show,
    as_evaluator,
    as_evaluators,
    evaluate,
    function,
)
from nbplayground.core.templating import lookup, placeholders, render

__all__ = [
    "Case", "Evaluator", "FunctionEvaluator", "Score", "as_evaluator", "as_evaluators", "contains", "equals",
    "evaluate", "function", "icontains", "json_path", "json_schema", "json_valid", "levenshtein", "max_cost",
    "max_latency_ms", "regex", "starts_with", "tool_called",
]  # fmt: skip

#: rapidfuzz's Levenshtein costs about ceil(shorter / 64) * longer steps; this many take ~0.3 s
_MAX_LEVENSHTEIN_WORK: Final = 200_000_000
#: CPU seconds (the regex package's clock): on a loaded machine the wall time is a few times more
_REGEX_TIMEOUT: Final = 0.25


# ---- templates -------------------------------------------------------------------------------------

_MARK: Final = "\x00nbp-evals-whole\x00"


def _check_text(value: Any, field_name: str, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise BadParameterError(f"{field_name} must be a string, not {type(value).__name__}.", field=field_name)
    if not value and not empty:
        raise BadParameterError(f"{field_name} is empty: give the text to look for.", field=field_name)
    return value


def _value(row: Mapping[str, Any], path: str) -> Any:
    """The row's value at ``path``; a missing column raises MissingVariablesError, an empty one ValueError."""
    try:
        value = _plain(lookup(row, path))
    except KeyError:
        raise MissingVariablesError([path], row.keys(), field=f"variables.{path}") from None
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise ValueError(f"{path!r} is empty in this row: there is nothing to compare with")
    return value


def _text(template: str, row: Mapping[str, Any]) -> str:
    """The template rendered from the row (a missing or empty column raises: an error for this row only)."""
    if "{{" not in template:
        return template
    paths = placeholders(template)
    return render(template, {p: _value(row, p) for p in paths})


class _FromRow:
    """A value that came from the row through a one-placeholder template (compared leniently)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _resolve(value: Any, row: Mapping[str, Any]) -> Any:
    """Templates inside a JSON value resolved from the row; ``"{{x}}"`` alone gives the row's value."""
    if isinstance(value, str):
        if "{{" not in value:
            return value
        paths = placeholders(value)
        if len(paths) == 1 and render(value, {paths[0]: _MARK}) == _MARK:
            return _FromRow(_value(row, paths[0]))
        return _text(value, row)
    if isinstance(value, dict):
        return {k: _resolve(v, row) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, row) for v in value]
    return value


def _same(found: Any, expected: Any) -> bool:
    """JSON equality (booleans are not numbers); a value from the row may also match its text form."""
    lenient = isinstance(expected, _FromRow)
    if lenient:
        expected = _plain(expected.value)
    if isinstance(expected, dict):
        return isinstance(found, dict) and found.keys() == expected.keys() and all(
            _same(found[k], v) for k, v in expected.items()
        )
    if isinstance(expected, list):
        return isinstance(found, list) and len(found) == len(expected) and all(map(_same, found, expected))
    if isinstance(found, bool) or isinstance(expected, bool):
        if type(found) is type(expected):
            return bool(found == expected)
        return lenient and isinstance(expected, str) and expected.strip() == json.dumps(found)
    if isinstance(found, numbers.Real) and isinstance(expected, numbers.Real):
        return bool(found == expected)
    if lenient and isinstance(expected, str) and isinstance(found, numbers.Real):
        try:
            return float(expected.strip()) == float(found)
        except ValueError:
            return False
    if lenient and isinstance(found, str) and isinstance(expected, numbers.Real):
        return found.strip() == str(expected)
    return type(found) is type(expected) and bool(found == expected)


def _subset(found: Any, wanted: Any) -> bool:
    """Every key of ``wanted`` (recursively, for objects) is in ``found`` with the same value."""
    if isinstance(wanted, dict):
        return isinstance(found, dict) and all(k in found and _subset(found[k], v) for k, v in wanted.items())
    return _same(found, wanted)


def _jsonable(value: Any, field_name: str) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        raise BadParameterError(f"{field_name} must be a JSON value (str, number, bool, None, list, dict).",
                                field=field_name) from None  # fmt: skip
    return value


# ---- JSON ------------------------------------------------------------------------------------------


class _NotJSON(Exception):
    """The output is not JSON (a failed check, not an error)."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _loads(text: str) -> Any:
    """Strict JSON (no NaN/Infinity); too deep to parse raises ValueError (an error: the check cannot tell)."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("the output is JSON nested too deeply to parse") from None
    except ValueError as exc:
        raise _NotJSON(f"not JSON ({exc})") from None


def _document(case: Case) -> Any:
    """The structured output: ``case.data`` when the run parsed one, else the output parsed as JSON."""
    if case.data is not None:
        dump = getattr(case.data, "model_dump", None)
        return dump(mode="json") if callable(dump) else case.data
    return _loads(case.output)


# ---- text checks -----------------------------------------------------------------------------------


class _TextCheck(Evaluator):
    """Compare the output with one (templated) text."""

    def __init__(self, text: str, name: str | None, field_name: str = "text") -> None:
        super().__init__(name)
        self.text = _check_text(text, field_name)

    def arguments(self) -> dict[str, Any]:
        return {"text": self.text}


class equals(Evaluator):
    """The output equals ``expected`` (stripped of surrounding whitespace unless ``strip=False``;
    ignoring case when ``case=False``)."""

    op = "equals"

    def __init__(self, expected: str, *, strip: bool = True, case: bool = True, name: str | None = None) -> None:
        super().__init__(name)
        self.text = _check_text(expected, "expected", empty=True)
        self.strip, self.case = bool(strip), bool(case)

    def arguments(self) -> dict[str, Any]:
        return {"expected": self.text, "strip": self.strip, "case": self.case}

    def score(self, case: Case) -> Score:
        want, got = _text(self.text, case.row), case.output
        if self.strip:
            want, got = want.strip(), got.strip()
        if not self.case:
            want, got = want.casefold(), got.casefold()
        if want == got:
            return Score.check(True, "equal")
        return Score.check(False, f"expected {_show(want)}, got {_show(got)}")


class contains(_TextCheck):
    """The output contains ``text`` (case-sensitive)."""

    op = "contains"

    def __init__(self, text: str, *, name: str | None = None) -> None:
        super().__init__(text, name)

    def _fold(self, text: str) -> str:
        return text

    def score(self, case: Case) -> Score:
        want = _text(self.text, case.row)
        if self._fold(want) in self._fold(case.output):
            return Score.check(True, f"contains {_show(want)}")
        return Score.check(False, f"does not contain {_show(want)}")


class icontains(contains):
    """The output contains ``text``, ignoring case (Unicode case folding)."""

    op = "icontains"

    def _fold(self, text: str) -> str:
        return text.casefold()


class starts_with(_TextCheck):
    """The output starts with ``text`` (leading whitespace of the output ignored unless ``strip=False``)."""

    op = "starts_with"

    def __init__(self, text: str, *, strip: bool = True, name: str | None = None) -> None:
        super().__init__(text, name)
        self.strip = bool(strip)

    def arguments(self) -> dict[str, Any]:
        return {"text": self.text, "strip": self.strip}

    def score(self, case: Case) -> Score:
        want = _text(self.text, case.row)
        got = case.output.lstrip() if self.strip else case.output
        if got.startswith(want):
            return Score.check(True, f"starts with {_show(want)}")
        return Score.check(False, f"starts with {_show(got, 30)}, not {_show(want)}")


# re's flag values differ from the regex package's for ASCII only
_FLAGS: Final = {2: "IGNORECASE", 4: "LOCALE", 8: "MULTILINE", 16: "DOTALL", 32: "UNICODE", 64: "VERBOSE",
                 256: "ASCII"}  # fmt: skip


class regex(Evaluator):
    """``re.search(pattern, output, flags)`` finds a match. The pattern is not a template.

    Runs on the ``regex`` package (re's syntax and flags) with a time limit: a search that takes longer than
    ``timeout`` seconds of CPU time (0.25 by default, far more than any sane pattern needs on a model's
    answer; catastrophic backtracking, e.g. ``(a+)+$`` on a long run of ``a``) is an error for
    that row. A bad pattern raises :class:`BadParameterError` here, not per row.
    """

    op = "regex"

    def __init__(self, pattern: str, flags: int = 0, *, timeout: float = _REGEX_TIMEOUT,
                 name: str | None = None) -> None:  # fmt: skip
        import regex as _regex

        super().__init__(name)
        self.pattern = _check_text(pattern, "pattern")
        self.flags = int(flags)
        unknown = self.flags & ~sum(_FLAGS)
        if unknown:
            raise BadParameterError(f"Unknown regex flags {unknown}: use re.IGNORECASE, re.MULTILINE, ...",
                                    field="flags")  # fmt: skip
        if not (isinstance(timeout, int | float) and 0 < timeout <= 60):
            raise BadParameterError("timeout must be a number of seconds in (0, 60].", field="timeout")
        self.timeout = float(timeout)
        native = 0
        for bit, flag_name in _FLAGS.items():
            if self.flags & bit:
                native |= int(getattr(_regex, flag_name))
        try:
            self._compiled = _regex.compile(pattern, native)
        except (_regex.error, ValueError, TypeError, OverflowError, RecursionError) as exc:
            raise BadParameterError(f"Bad regular expression {_show(pattern)}: {exc}. Fix the pattern.",
                                    field="pattern") from None  # fmt: skip

    def arguments(self) -> dict[str, Any]:
        return {"pattern": self.pattern, "flags": self.flags}

    def score(self, case: Case) -> Score:
        try:
            match = self._compiled.search(case.output, timeout=self.timeout)
        except TimeoutError:
            return Score.failed(
                f"TimeoutError: the regex search took over {self.timeout:g} s (CPU) on {len(case.output):,} characters "
                "(catastrophic backtracking?); simplify the pattern or pass timeout="
            )
        if match is None:
            return Score.check(False, f"no match for {_show(self.pattern)}")
        return Score.check(True, f"matched {_show(match.group(0))}")


class json_valid(Evaluator):
    """The output is strict JSON (no NaN or Infinity; code fences are not stripped)."""

    op = "json_valid"

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name)

    def score(self, case: Case) -> Score:
        try:
            _loads(case.output)
        except _NotJSON as exc:
            return Score.check(False, str(exc))
        return Score.check(True, "valid JSON")


class json_schema(Evaluator):
    """The structured output (``case.data``, else the output parsed as JSON) matches a schema: a pydantic
    model class (its JSON schema) or a JSON schema dict, validated with ``jsonschema``."""

    op = "json_schema"

    def __init__(self, schema: Any, *, name: str | None = None) -> None:
        import jsonschema

        super().__init__(name)
        to_schema = getattr(schema, "model_json_schema", None) if isinstance(schema, type) else None
        if callable(to_schema):
            schema = to_schema()
        if not isinstance(schema, dict):
            raise BadParameterError(
                f"json_schema needs a pydantic model class or a JSON schema dict, not {type(schema).__name__}.",
                field="schema",
            )
        _jsonable(schema, "schema")
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        try:
            cls.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise BadParameterError(f"Not a valid JSON schema: {exc.message}. Fix the schema.",
                                    field="schema") from None  # fmt: skip
        self.schema: dict[str, Any] = schema
        self._validator = cls(schema)

    def arguments(self) -> dict[str, Any]:
        return {"schema": self.schema}

    def score(self, case: Case) -> Score:
        import jsonschema

        try:
            doc = _document(case)
        except _NotJSON as exc:
            return Score.check(False, str(exc))
        error = jsonschema.exceptions.best_match(self._validator.iter_errors(doc))
        if error is None:
            return Score.check(True, "matches the schema")
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return Score.check(False, f"at {where}: {error.message}")


def _path_parts(path: str) -> list[str]:
    path = path.strip()
    if path.startswith("$"):
        path = path[1:].lstrip(".")
    path = path.replace("[", ".").replace("]", "")
    return [p for p in path.split(".") if p != ""]


_ANY: Final = object()


class json_path(Evaluator):
    """A value inside the structured output, by dot path (``"a.b.0.c"``; ``"a[0]"`` and a leading ``$.``
    work too; keys containing dots cannot be named). With ``expected``: the value equals it (JSON equality;
    may be a template); without: the path exists."""

    op = "json_path"

    def __init__(self, path: str, expected: Any = _ANY, *, name: str | None = None) -> None:
        super().__init__(name)
        self.path = _check_text(path, "path")
        self.parts = _path_parts(path)
        self.expected = expected if expected is _ANY else _jsonable(expected, "expected")

    def arguments(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path}
        if self.expected is not _ANY:
            out["expected"] = self.expected
        return out

    def score(self, case: Case) -> Score:
        try:
            node = _document(case)
        except _NotJSON as exc:
            return Score.check(False, str(exc))
        for i, part in enumerate(self.parts):
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return Score.check(False, f"{'.'.join(self.parts[: i + 1])} is missing")
        if self.expected is _ANY:
            return Score.check(True, f"{self.path} is present")
        want = _resolve(self.expected, case.row)
        if _same(node, want):
            return Score.check(True, f"{self.path} equals the expected value")
        shown = json.dumps(node, ensure_ascii=False, default=str)
        return Score.check(False, f"{self.path} is {_show(shown)}")


class levenshtein(Evaluator):
    """Similarity to ``expected``: 1 - edit distance / length of the longer text, in [0, 1] (rapidfuzz).
    ``passed`` when ``threshold`` is given and the similarity reaches it. Both stripped unless ``strip=False``.
    Pairs too long to compare in well under a second (about 100,000 characters each) are an error."""

    op = "levenshtein"

    def __init__(self, expected: str, threshold: float | None = None, *, strip: bool = True,
                 name: str | None = None) -> None:  # fmt: skip
        super().__init__(name)
        self.expected = _check_text(expected, "expected", empty=True)
        if threshold is not None and not (isinstance(threshold, int | float) and 0 <= threshold <= 1):
            raise BadParameterError("threshold must be a number between 0 and 1.", field="threshold")
        self.threshold = None if threshold is None else float(threshold)
        self.strip = bool(strip)

    def arguments(self) -> dict[str, Any]:
        return {"expected": self.expected, "threshold": self.threshold, "strip": self.strip}

    def score(self, case: Case) -> Score:
        from rapidfuzz.distance import Levenshtein

        want, got = _text(self.expected, case.row), case.output
        if self.strip:
            want, got = want.strip(), got.strip()
        short, long = sorted((len(want), len(got)))
        if -(-short // 64) * long > _MAX_LEVENSHTEIN_WORK:
            return Score.failed(f"ValueError: texts of {len(got):,} and {len(want):,} characters are too long "
                                "to compare with levenshtein; compare shorter texts")  # fmt: skip
        value = float(Levenshtein.normalized_similarity(got, want))
        if self.threshold is None:
            return Score(value, None, f"similarity {value:.3f}")
        ok = value >= self.threshold
        return Score(value, ok, f"similarity {value:.3f} {'≥' if ok else '<'} {self.threshold:g}")


def _limit(value: Any, field_name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise BadParameterError(f"{field_name} must be a number ≥ 0, not {value!r}.", field=field_name)
    return float(value)


class max_latency_ms(Evaluator):
    """The run took at most ``ms`` milliseconds (an unknown latency is an error)."""

    op = "max_latency_ms"

    def __init__(self, ms: float, *, name: str | None = None) -> None:
        super().__init__(name)
        self.ms = _limit(ms, "ms")

    def arguments(self) -> dict[str, Any]:
        return {"ms": self.ms}

    def score(self, case: Case) -> Score:
        if case.latency_ms is None or not math.isfinite(case.latency_ms):
            return Score.failed("latency unknown")
        ok = case.latency_ms <= self.ms
        return Score.check(ok, f"{case.latency_ms:,.0f} ms {'≤' if ok else '>'} {self.ms:,.0f} ms")


class max_cost(Evaluator):
    """The run cost at most ``usd`` dollars (an unknown cost is an error, "cost unknown")."""

    op = "max_cost"

    def __init__(self, usd: float, *, name: str | None = None) -> None:
        super().__init__(name)
        self.usd = _limit(usd, "usd")

    def arguments(self) -> dict[str, Any]:
        return {"usd": self.usd}

    def score(self, case: Case) -> Score:
        if case.cost_usd is None or not math.isfinite(case.cost_usd):
            return Score.failed("cost unknown")
        ok = case.cost_usd <= self.usd
        return Score.check(ok, f"${case.cost_usd:.6g} {'≤' if ok else '>'} ${self.usd:.6g}")


class tool_called(Evaluator):
    """The model called the tool named ``tool``; with ``args``, one such call's arguments include them (a subset:
    nested objects are subsets too; values may be templates). Calls with invalid JSON arguments never match."""

    op = "tool_called"
    needs_run = True

    def __init__(self, tool: str, args: Mapping[str, Any] | None = None, *, name: str | None = None) -> None:
        super().__init__(name)
        self.tool = _check_text(tool, "tool")
        if args is not None and not isinstance(args, Mapping):
            raise BadParameterError("args must be a dict of the arguments to expect.", field="args")
        self.args = None if args is None else _jsonable(dict(args), "args")

    def arguments(self) -> dict[str, Any]:
        return {"tool": self.tool, "args": self.args}

    def score(self, case: Case) -> Score:
        calls = [c for c in case.tool_calls if c.name == self.tool]
        if not calls:
            names = ", ".join(sorted({c.name for c in case.tool_calls})) or "none"
            return Score.check(False, f"{self.tool} was not called (called: {_show(names)})")
        if self.args is None:
            return Score.check(True, f"{self.tool} was called")
        want = _resolve(self.args, case.row)
        for call in calls:
            try:
                got = call.parsed_arguments()
            except (ValueError, RecursionError):
                continue
            if _subset(got, want):
                return Score.check(True, f"{self.tool} was called with the expected arguments")
        return Score.check(False, f"{self.tool} was called, never with the expected arguments "
                                  f"(first: {_show(calls[0].arguments)})")  # fmt: skip


