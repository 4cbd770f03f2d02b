"""nbp.evals: every deterministic evaluator, templates from the row, hostile outputs, function(), evaluate(),
fingerprints and construction errors."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pydantic
import pytest

import nbplayground as nbp
from nbplayground.core import evals as ev
from nbplayground.core.errors import BadParameterError
from nbplayground.core.types import RunResult, ToolCall

ROOT = Path(__file__).resolve().parents[1]


def case(output: str = "", **kw) -> ev.Case:
    return ev.Case(output=output, **kw)


def run(evaluator: ev.Evaluator, output: str = "", **kw) -> ev.Score:
    return ev.evaluate(evaluator, case(output, **kw))


def passes(evaluator: ev.Evaluator, output: str = "", **kw) -> None:
    s = run(evaluator, output, **kw)
    assert (s.value, s.passed, s.error) == (1.0, True, None), s


def fails(evaluator: ev.Evaluator, output: str = "", **kw) -> ev.Score:
    s = run(evaluator, output, **kw)
    assert (s.value, s.passed, s.error) == (0.0, False, None), s
    assert s.reason
    return s


def errors(evaluator: ev.Evaluator, output: str = "", **kw) -> str:
    s = run(evaluator, output, **kw)
    assert s.value is None and s.passed is None and s.error, s
    return s.error


# ---- each evaluator, passing and failing -------------------------------------------------------------


def test_equals_strips_and_optionally_ignores_case():
    passes(ev.equals("Paris"), "  Paris\n")
    s = fails(ev.equals("Paris"), "paris")
    assert "'Paris'" in s.reason and "'paris'" in s.reason
    passes(ev.equals("Paris", case=False), "PARIS")
    fails(ev.equals("Paris", strip=False), "Paris ")
    passes(ev.equals(""), "   ")


def test_contains_icontains_and_starts_with():
    passes(ev.contains("42"), "the answer is 42.")
    fails(ev.contains("42"), "forty-two")
    fails(ev.contains("Paris"), "paris")
    passes(ev.icontains("STRASSE"), "Hauptstraße 1")  # Unicode case folding, not lower()
    fails(ev.icontains("berlin"), "Paris")
    passes(ev.starts_with("Yes"), "\n  Yes, indeed")
    fails(ev.starts_with("Yes", strip=False), " Yes")
    fails(ev.starts_with("Yes"), "No. Yes.")


def test_regex_searches_with_flags():
    passes(ev.regex(r"^\d+ days$"), "14 days")
    fails(ev.regex(r"^\d+ days$"), "about 14 days")
    passes(ev.regex(r"^answer: \w+$", re.IGNORECASE | re.MULTILINE), "intro\nANSWER: yes\n")
    passes(ev.regex(r"^\w+$", re.ASCII), "abc")
    fails(ev.regex(r"^\w+$", re.ASCII), "abç")  # re.ASCII has another value in the regex package
    passes(ev.regex(r"^\w+$"), "abç")
    assert run(ev.regex(r"\d+"), "x 123 y").reason == "matched '123'"


def test_json_valid_is_strict():
    passes(ev.json_valid(), ' {"a": [1, 2.5, null, true]} ')
    passes(ev.json_valid(), '"just a string"')
    fails(ev.json_valid(), "{'a': 1}")
    fails(ev.json_valid(), '{"a": NaN}')  # not JSON, though Python's json accepts it
    fails(ev.json_valid(), '```json\n{"a": 1}\n```')
    fails(ev.json_valid(), "")


class Answer(pydantic.BaseModel):
    city: str
    days: int
    tags: list[str] = []


def test_json_schema_from_a_pydantic_model_or_a_dict():
    passes(ev.json_schema(Answer), '{"city": "Oslo", "days": 3}')
    s = fails(ev.json_schema(Answer), '{"city": "Oslo", "days": "three"}')
    assert "days" in s.reason and "integer" in s.reason
    fails(ev.json_schema(Answer), '{"city": "Oslo"}')
    fails(ev.json_schema(Answer), "not json at all")
    schema = {"type": "object", "properties": {"n": {"type": "number", "maximum": 10}}, "required": ["n"]}
    passes(ev.json_schema(schema), '{"n": 3}')
    assert "at n" in fails(ev.json_schema(schema), '{"n": 11}').reason
    # the run's parsed structured output wins over the text
    passes(ev.json_schema(schema), "", data={"n": 1})
    passes(ev.json_schema(Answer), "", data=Answer(city="x", days=1))


def test_json_path_presence_and_values():
    doc = '{"a": {"b": [{"c": 1}, {"c": "two", "d": true}]}, "n": 3}'
    passes(ev.json_path("a.b.1.c"), doc)
    passes(ev.json_path("$.a.b[1].c", expected="two"), doc)
    passes(ev.json_path("a.b.0", expected={"c": 1}), doc)
    assert fails(ev.json_path("a.b.2.c"), doc).reason == "a.b.2 is missing"
    fails(ev.json_path("a.b.1.c", expected="2"), doc)
    fails(ev.json_path("a.b.1.d", expected=1), doc)  # true is not 1
    fails(ev.json_path("n", expected="3"), doc)  # a literal string is not the number 3 (a row's value may be)
    passes(ev.json_path("n", expected=3.0), doc)
    fails(ev.json_path("a"), "not json")
    passes(ev.json_path("0.x", expected=None), '[{"x": null}]')
    passes(ev.json_path("k", expected="v"), "ignored", data={"k": "v"})


def test_levenshtein_similarity_and_threshold():
    s = run(ev.levenshtein("kitten"), "sitting")
    assert s.value == pytest.approx(1 - 3 / 7) and s.passed is None and s.error is None
    assert run(ev.levenshtein("same"), " same ").value == 1.0
    assert run(ev.levenshtein(""), "").value == 1.0
    assert run(ev.levenshtein("abc"), "").value == 0.0
    ok = run(ev.levenshtein("colour", threshold=0.8), "color")
    assert ok.passed is True and ok.value == pytest.approx(5 / 6)
    assert run(ev.levenshtein("colour", threshold=0.9), "color").passed is False


def test_max_latency_and_max_cost():
    passes(ev.max_latency_ms(1000), latency_ms=999.5)
    passes(ev.max_latency_ms(1000), latency_ms=1000)
    assert fails(ev.max_latency_ms(1000), latency_ms=1500).reason == "1,500 ms > 1,000 ms"
    assert errors(ev.max_latency_ms(1000)) == "latency unknown"
    passes(ev.max_cost(0.01), cost_usd=0.002)
    fails(ev.max_cost(0.01), cost_usd=0.02)
    assert errors(ev.max_cost(0.01)) == "cost unknown"
    assert errors(ev.max_cost(0.01), cost_usd=math.nan) == "cost unknown"


def test_tool_called_with_and_without_arguments():
    calls = [ToolCall("1", "search", '{"q": "x"}'), ToolCall("2", "get_weather", '{"city": "Oslo", "unit": {"t": "C", "x": 1}}')]
    passes(ev.tool_called("get_weather"), tool_calls=calls)
    passes(ev.tool_called("get_weather", args={"city": "Oslo"}), tool_calls=calls)
    passes(ev.tool_called("get_weather", args={"unit": {"t": "C"}}), tool_calls=calls)  # nested subset
    fails(ev.tool_called("get_weather", args={"city": "Bergen"}), tool_calls=calls)
    fails(ev.tool_called("get_weather", args={"country": "NO"}), tool_calls=calls)
    s = fails(ev.tool_called("book"), tool_calls=calls)
    assert "get_weather, search" in s.reason
    fails(ev.tool_called("book"))
    broken = [ToolCall("1", "f", "{not json"), ToolCall("2", "f", '{"a": 1}')]
    passes(ev.tool_called("f", args={"a": 1}), tool_calls=broken)  # the broken call is skipped, not a crash
    fails(ev.tool_called("f", args={"a": 1}), tool_calls=broken[:1])
    assert ev.tool_called("f").needs_run and not ev.contains("x").needs_run


# ---- templates from the row --------------------------------------------------------------------------


def test_text_templates_render_from_the_row_with_dot_paths():
    row = {"expected": "Paris", "a": {"b": "Oslo"}, "cfg": '{"city": "Rome"}', "items": ["x", "y"]}
    passes(ev.contains("{{expected}}"), "It is Paris.", row=row)
    fails(ev.contains("{{expected}}"), "It is Lyon.", row=row)
    passes(ev.equals("{{a.b}}"), "Oslo", row=row)
    passes(ev.icontains("{{cfg.city}}"), "rome!", row=row)  # a JSON string column is walked into
    passes(ev.starts_with("{{items[1]}}:"), "y: ok", row=row)
    passes(ev.levenshtein("{{expected}}", threshold=1), "Paris", row=row)
    passes(ev.equals(r"\{{expected}}"), "{{expected}}", row=row)  # an escaped placeholder is literal
    # numpy values from a pandas row
    passes(ev.contains("{{n}} days"), "3 days", row={"n": np.int64(3)})


def test_a_missing_or_empty_column_is_an_error_for_that_row_only():
    contains = ev.contains("{{expected}}")
    err = errors(contains, "Paris", row={"question": "?"})
    assert err.startswith("MissingVariablesError") and "expected" in err and "question" in err
    assert "a.b" in errors(ev.equals("{{a.b}}"), "x", row={"a": {"c": 1}})
    assert "empty" in errors(contains, "Paris", row={"expected": None})
    assert "empty" in errors(contains, "Paris", row={"expected": float("nan")})
    assert "expected" in errors(ev.json_path("a", expected="{{expected}}"), '{"a": 1}', row={})
    passes(contains, "Paris", row={"expected": "Paris"})  # the same evaluator, the next row


def test_json_values_from_the_row_keep_their_type_and_match_text_forms():
    doc = '{"n": 3, "ok": true, "name": "Ada", "xs": [1, 2]}'
    passes(ev.json_path("n", expected="{{n}}"), doc, row={"n": 3})
    passes(ev.json_path("n", expected="{{n}}"), doc, row={"n": "3"})  # a CSV column
    passes(ev.json_path("n", expected="{{n}}"), doc, row={"n": np.int64(3)})
    fails(ev.json_path("n", expected="{{n}}"), doc, row={"n": "4"})
    passes(ev.json_path("ok", expected="{{ok}}"), doc, row={"ok": True})
    passes(ev.json_path("ok", expected="{{ok}}"), doc, row={"ok": "true"})
    fails(ev.json_path("ok", expected="{{ok}}"), doc, row={"ok": 1})
    passes(ev.json_path("name", expected="{{first}}{{last}}"), doc, row={"first": "A", "last": "da"})
    fails(ev.json_path("name", expected="Dr {{name}}"), doc, row={"name": "Ada"})
    passes(ev.json_path("xs", expected="{{xs}}"), doc, row={"xs": [1, 2]})
    calls = [ToolCall("1", "get_weather", '{"city": "Oslo", "days": 3}')]
    passes(ev.tool_called("get_weather", args={"city": "{{city}}", "days": "{{d}}"}), tool_calls=calls,
           row={"city": "Oslo", "d": "3"})  # fmt: skip
    fails(ev.tool_called("get_weather", args={"city": "{{city}}"}), tool_calls=calls, row={"city": "Rome"})


# ---- hostile outputs ---------------------------------------------------------------------------------

DEEP = "[" * 10_000 + "]" * 10_000
HOSTILE = {
    "5 MB": "x" * 5_000_000 + " needle",
    "NUL": 'a\x00b {"k": "\x00"}',
    "lone surrogates": "\ud800 caf\udce9 \udfff",
    "deep JSON": DEEP,
    "deep object": '{"a":' * 10_000 + "1" + "}" * 10_000,
    "backtracking": "a" * 50_000 + "!",
}


def _deep_list(n: int) -> list:
    root: list = []
    node = root
    for _ in range(n):
        node.append([])
        node = node[0]
    return root


EVERY = [
    ev.equals("{{expected}}"), ev.contains("needle"), ev.icontains("NEEDLE"), ev.regex(r"(a+)+$"),
    ev.regex(r"(x+x+)+y"), ev.starts_with("x"), ev.json_valid(), ev.json_schema(Answer), ev.json_path("a.b"),
    ev.json_path("0.0", expected=[]), ev.levenshtein("{{expected}}", threshold=0.5), ev.max_latency_ms(10),
    ev.max_cost(1), ev.tool_called("f", args={"a": "{{expected}}"}),
    ev.function(lambda out, row: len(out) > 3), ev.function(lambda out: {"score": out.count("a") / 10}),
]  # fmt: skip


@pytest.mark.parametrize("label", list(HOSTILE))
def test_hostile_outputs_never_crash_or_hang(label):
    output = HOSTILE[label]
    calls = [ToolCall("1", "f", output[:100_000]), ToolCall("2", "f", DEEP)]
    row = {"expected": output[:1000]}
    for evaluator in EVERY:
        start = time.monotonic()
        score = ev.evaluate(evaluator, ev.Case(output, row=row, tool_calls=calls, latency_ms=5, cost_usd=0.1))
        took = time.monotonic() - start
        assert took < 2.0, f"{evaluator!r} took {took:.2f} s on {label}"
        assert isinstance(score, ev.Score)
        assert (score.value is None) == (score.error is not None), (evaluator, score)
        for text in (score.reason, score.error):  # safe to store: valid UTF-8, no NUL, bounded
            if text is not None:
                text.encode("utf-8")
                assert "\x00" not in text and len(text) <= 2000


def test_hostile_behaviour_is_what_the_docs_say():
    start = time.monotonic()
    err = errors(ev.regex(r"(a+)+$"), HOSTILE["backtracking"])
    assert err.startswith("TimeoutError") and "timeout=" in err
    assert time.monotonic() - start < 2.0
    assert errors(ev.regex(r"(a+)+$", timeout=0.05), "a" * 5_000 + "!").startswith("TimeoutError")
    passes(ev.regex(r"(a+)+$"), "a" * 50_000)  # the same pattern on a matching input is fine
    passes(ev.regex("needle$"), HOSTILE["5 MB"])
    # too deep to parse: an error (cannot tell), not a fail
    assert "nested too deeply" in errors(ev.json_valid(), DEEP)
    assert "nested too deeply" in errors(ev.json_schema(Answer), DEEP)
    nested = {"$defs": {"n": {"type": "array", "items": {"$ref": "#/$defs/n"}}}, "$ref": "#/$defs/n"}
    passes(ev.json_schema(nested), data=_deep_list(50))
    assert errors(ev.json_schema(nested), data=_deep_list(10_000)).startswith("RecursionError")
    fails(ev.json_valid(), HOSTILE["NUL"])  # a raw NUL inside a JSON string is invalid JSON
    passes(ev.contains("\x00b"), HOSTILE["NUL"])
    s = fails(ev.equals("x"), HOSTILE["lone surrogates"])
    assert "\\ud800" in s.reason
    passes(ev.json_valid(), json.dumps({"k": "\ud800"}))
    # levenshtein: a long output against a short text is quick; two long texts are refused, not slow
    assert run(ev.levenshtein("needle"), HOSTILE["5 MB"]).value == pytest.approx(6 / 5_000_007)
    start = time.monotonic()
    assert "too long" in errors(ev.levenshtein("{{e}}"), "b" * 3_000_000, row={"e": "a" * 3_000_000})
    assert time.monotonic() - start < 2.0


# ---- the model: Score, evaluate(), function() --------------------------------------------------------


def test_score_is_nan_free_and_safe_to_store():
    with pytest.raises(ValueError, match="finite"):
        ev.Score(math.nan)
    with pytest.raises(ValueError, match="finite"):
        ev.Score(math.inf, True)
    s = ev.Score(1, True, error="boom")
    assert (s.value, s.passed, s.error) == (None, None, "boom")
    s = ev.Score(0.5, None, "r\x00\ud800" + "z" * 5000)
    assert s.value == 0.5 and isinstance(s.value, float)
    assert s.reason.startswith("r\\x00\\ud800") and len(s.reason) <= 2000
    assert ev.Score.check(False, "no").to_dict() == {"value": 0.0, "passed": False, "reason": "no", "error": None}


def test_evaluate_turns_exceptions_and_wrong_results_into_error_scores():
    class Boom(ev.Evaluator):
        op = "boom"

        def score(self, case):
            raise KeyError("missing")

    class Wrong(ev.Evaluator):
        op = "wrong"

        def score(self, case):
            return 1.0

    assert run(Boom()).error == "KeyError: 'missing'"
    assert run(Wrong()).error == "TypeError: wrong returned float, not a Score"


def test_function_accepts_bools_numbers_dicts_and_scores():
    assert run(ev.function(lambda out, row: out == row["x"]), "a", row={"x": "a"}).to_dict() == {
        "value": 1.0, "passed": True, "reason": None, "error": None}  # fmt: skip
    assert run(ev.function(lambda out: False), "a").passed is False
    assert run(ev.function(lambda out: 0.25)).value == 0.25
    assert run(ev.function(lambda out: 3)).value == 3.0
    assert run(ev.function(lambda out: np.float64(0.5))).value == 0.5
    assert run(ev.function(lambda out: np.bool_(True))).passed is True
    d = run(ev.function(lambda out: {"score": 0.7, "passed": True, "reason": "close"}))
    assert (d.value, d.passed, d.reason) == (0.7, True, "close")
    assert run(ev.function(lambda out: {"value": 0.1})).value == 0.1
    assert run(ev.function(lambda out: {"passed": False, "reason": "no"})).value == 0.0
    assert run(ev.function(lambda out: ev.Score(0.3, None, "own"))).reason == "own"

    def uses_case(case):
        return case.latency_ms < 100

    assert run(ev.function(uses_case), latency_ms=50).passed is True
    assert ev.function(uses_case).needs_run


@pytest.mark.parametrize(
    ("fn", "error"),
    [
        (lambda out: math.nan, "ValueError: function returned nan"),
        (lambda out: {"score": float("nan")}, "ValueError: function returned nan"),
        (lambda out: None, "TypeError: function returned NoneType"),
        (lambda out: "yes", "TypeError: function returned str"),
        (lambda out: {"scroe": 1}, "ValueError: function returned unknown keys ['scroe']"),
        (lambda out: {"reason": "?"}, "ValueError: function returned neither a score nor passed"),
        (lambda out: {"passed": "yes"}, "TypeError: function returned passed='yes'"),
        (lambda out: 1 / 0, "ZeroDivisionError: division by zero"),
    ],
)
def test_function_bad_results_and_exceptions_are_error_scores(fn, error):
    s = run(ev.function(fn), "x")
    assert s.value is None and s.passed is None and s.error.startswith(error), s.error


def test_function_names_and_how_it_is_called():
    def exact_match(output, row):
        return output == row.get("answer")

    assert ev.function(exact_match).name == "exact_match"
    assert ev.function(lambda o: True).name == "function"
    assert ev.function(exact_match, name="em").name == "em"
    assert ev.function(len).name == "len" and run(ev.function(len), "abc").value == 3.0
    assert run(ev.function(lambda *args: len(args)), "x").value == 2.0  # (output, row)
    assert ev.as_evaluator(exact_match).name == "exact_match"
    assert [e.name for e in ev.as_evaluators([ev.contains("a"), exact_match])] == ["contains", "exact_match"]
    with pytest.raises(BadParameterError, match=r"name='\.\.\.'") as exc:
        ev.as_evaluators([ev.contains("a"), ev.contains("b")])
    assert exc.value.field == "evaluators"
    assert len(ev.as_evaluators([ev.contains("a"), ev.contains("b", name="contains_b")])) == 2


def test_case_from_a_run_result():
    r = RunResult(id="r1", model="mock/echo", text="hi", data={"a": 1}, latency_ms=12.0, cost_usd=0.5,
                  tool_calls=[ToolCall("c", "f", "{}")])  # fmt: skip
    c = ev.Case.from_result(r, {"q": "x"}, variant="v1")
    assert (c.output, c.data, c.row, c.latency_ms, c.cost_usd, c.variant, c.run_id) == (
        "hi", {"a": 1}, {"q": "x"}, 12.0, 0.5, "v1", "r1")  # fmt: skip
    assert c.tool_calls[0].name == "f"


# ---- identity ----------------------------------------------------------------------------------------

_MODULE = '''
def check(output, row):
    return "x" in output


def make(n):
    return lambda output: len(output) > n
'''

_BUILD = """
import re, sys
sys.path.insert(0, {where!r})
import nbplayground as nbp
import evaluator_module as m
e = nbp.evals
built = [e.equals("a"), e.equals("a", strip=False), e.contains("a"), e.icontains("a"), e.regex("a+", re.I),
         e.regex("a+"), e.starts_with("a"), e.json_valid(), e.json_schema({{"type": "object"}}),
         e.json_path("a.b", expected=[1, "x"]), e.json_path("a.b"), e.levenshtein("a", threshold=0.5),
         e.max_latency_ms(100), e.max_cost(0.5), e.tool_called("f", args={{"a": 1}}), e.tool_called("f"),
         e.function(m.check), e.function(m.make(1)), e.function(m.make(2))]
"""
_PRINT = """
import json
print(json.dumps([b.fingerprint for b in built]))
print(json.dumps(sorted(k for k in ("pandas", "litellm", "duckdb") if k in sys.modules)))
"""


def test_fingerprints_are_stable_across_processes_and_differ_by_arguments(tmp_path):
    (tmp_path / "evaluator_module.py").write_text(_MODULE)
    code = _BUILD.format(where=str(tmp_path))
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    proc = subprocess.run([sys.executable, "-c", code + _PRINT], capture_output=True, text=True, timeout=120,
                          env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    theirs, loaded = (json.loads(line) for line in proc.stdout.strip().splitlines())
    assert loaded == []  # nbp.evals stays light: no pandas, litellm or duckdb
    namespace: dict = {}
    try:
        exec(compile(code, "<build>", "exec"), namespace)
    finally:
        sys.modules.pop("evaluator_module", None)
        sys.path.remove(str(tmp_path))
    mine = [b.fingerprint for b in namespace["built"]]
    assert mine == theirs
    assert len(set(mine)) == len(mine), "different arguments must give different fingerprints"
    assert all(re.fullmatch(r"[0-9a-f]{16}", f) for f in mine)


def test_the_name_is_not_part_of_the_fingerprint_and_a_subclass_may_set_its_own():
    assert ev.contains("a", name="c1").fingerprint == ev.contains("a", name="c2").fingerprint
    assert ev.contains("a").spec() == {"name": "contains", "kind": "code", "op": "contains",
                                       "arguments": {"text": "a"}, "fingerprint": ev.contains("a").fingerprint}  # fmt: skip

    class Own(ev.Evaluator):
        op = "own"

        def __init__(self) -> None:
            super().__init__()
            self.fingerprint = "0123456789abcdef"

        def score(self, case):
            return ev.Score.check(True)

    assert Own().fingerprint == "0123456789abcdef"


# ---- construction errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: ev.regex("(unclosed"), "pattern"),
        (lambda: ev.regex(""), "pattern"),
        (lambda: ev.regex("a", flags=1 << 20), "flags"),
        (lambda: ev.regex("a", timeout=0), "timeout"),
        (lambda: ev.json_schema({"type": 12}), "schema"),
        (lambda: ev.json_schema({"properties": {"a": {"minimum": "x"}}}), "schema"),
        (lambda: ev.json_schema([{"type": "object"}]), "schema"),
        (lambda: ev.json_schema(int), "schema"),
        (lambda: ev.json_schema({"type": "object", "x": {1, 2}}), "schema"),
        (lambda: ev.contains(""), "text"),
        (lambda: ev.contains(3), "text"),
        (lambda: ev.equals(None), "expected"),
        (lambda: ev.starts_with(""), "text"),
        (lambda: ev.json_path(""), "path"),
        (lambda: ev.json_path("a", expected=object()), "expected"),
        (lambda: ev.json_path("a", expected=math.nan), "expected"),
        (lambda: ev.levenshtein("a", threshold=2), "threshold"),
        (lambda: ev.levenshtein("a", threshold="high"), "threshold"),
        (lambda: ev.max_latency_ms(-1), "ms"),
        (lambda: ev.max_latency_ms(math.nan), "ms"),
        (lambda: ev.max_cost(True), "usd"),
        (lambda: ev.tool_called(""), "tool"),
        (lambda: ev.tool_called("f", args=["a"]), "args"),
        (lambda: ev.contains("a", name=""), "name"),
        (lambda: ev.contains("a", name=" x"), "name"),
        (lambda: ev.function(3), "evaluators"),
        (lambda: ev.function(lambda: True), "evaluators"),
        (lambda: ev.function(lambda a, b, c: True), "evaluators"),
    ],
)
def test_bad_arguments_raise_bad_parameter_error_with_the_field(build, field):
    with pytest.raises(BadParameterError) as exc:
        build()
    assert exc.value.field == field
    assert "\n" not in str(exc.value)


def test_async_functions_are_refused():
    async def check(output, row):
        return True

    with pytest.raises(BadParameterError, match="Async"):
        ev.function(check)


def test_the_public_namespace():
    assert nbp.evals is sys.modules["nbplayground.evals"]
    from nbplayground.core import judge

    for name in nbp.evals.__all__:
        assert getattr(nbp.evals, name) is getattr(judge if name in ("Judge", "judge") else ev, name)
    expected = {"equals", "contains", "icontains", "regex", "starts_with", "json_valid", "json_schema", "json_path",
                "levenshtein", "max_latency_ms", "max_cost", "tool_called", "function", "evaluate"}  # fmt: skip
    assert expected <= set(nbp.evals.__all__)
    defaults = [ev.equals("a"), ev.contains("a"), ev.icontains("a"), ev.regex("a"), ev.starts_with("a"),
                ev.json_valid(), ev.json_schema({}), ev.json_path("a"), ev.levenshtein("a"), ev.max_latency_ms(1),
                ev.max_cost(1), ev.tool_called("f")]  # fmt: skip
    assert [d.name for d in defaults] == [d.op for d in defaults] == [
        "equals", "contains", "icontains", "regex", "starts_with", "json_valid", "json_schema", "json_path",
        "levenshtein", "max_latency_ms", "max_cost", "tool_called"]  # fmt: skip
    assert all(d.kind == "code" for d in defaults)
