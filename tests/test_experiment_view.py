"""``exp.show()``: the kernel side of the experiment view (paging, filters, opening a run, the static copy).

The matrix tests build :class:`~nbplayground.experimenting.Experiment` objects from cells directly (no model
calls); opening a run uses a real experiment on the offline ``mock/`` models and the test's own store.
"""

from __future__ import annotations

import html
import json
import math
import time
from html.parser import HTMLParser

import pandas as pd
import pytest

import nbplayground as nbp
from nbplayground import evals
from nbplayground.core import errors as E
from nbplayground.core.evals import Score
from nbplayground.experimenting import Cell, Experiment
from nbplayground.widgets import experiment_view as xv
from nbplayground.widgets.experiment_view import ExperimentView

PASS, FAIL = Score(1.0, True, "ok", None), Score(0.0, False, "nope", None)
BROKEN = Score(None, None, None, "ZeroDivisionError: division by zero")


def cell(row: str, variant: str, output: str = "", status: str = "ok", repeat: int = 0, **scores: Score) -> Cell:
    return Cell(row=row, variant=variant, variant_id=f"id-{variant}", version=1, repeat=repeat,
                run_id=f"run-{variant}-{row}-{repeat}", status=status, output=output, scores=dict(scores))  # fmt: skip


def small() -> Experiment:
    """Rows r0..r119; variant a passes 'has' on even rows, b on every row; b errors on row r7."""
    cells = []
    for i in range(120):
        row = f"r{i}"
        cells.append(cell(row, "a", f"answer {i} from a", has=PASS if i % 2 == 0 else FAIL, num=Score(0.25, None,
                                                                                                      None, None)))  # fmt: skip
        if i == 7:
            cells.append(cell(row, "b", "", status="error", has=BROKEN, num=BROKEN))
            cells[-1].error = "RateLimitError: slow down"
        else:
            cells.append(cell(row, "b", f"answer {i} from b", has=PASS, num=Score(0.25, None, None, None)))
    return Experiment("exp-id", "small", ["a", "b"], ["has", "num"], cells, 1)


def keys(view: ExperimentView) -> list[str]:
    return [r["key"] for r in view.page["rows"]]


def test_first_page_holds_limit_rows_with_every_variant_and_pages_move_and_clamp():
    view = small().show(limit=50)
    page = view.page
    assert (page["offset"], page["limit"], page["total"], page["all"]) == (0, 50, 120, 120)
    assert keys(view) == [f"r{i}" for i in range(50)]
    first = page["rows"][0]["cells"]
    assert set(first) == {"a", "b"} and first["a"][0]["output"] == "answer 0 from a"
    assert first["a"][0]["scores"]["has"] == {"value": 1.0, "passed": True, "reason": "ok", "error": None}
    view.query = {"offset": 100, "limit": 50}
    assert keys(view) == [f"r{i}" for i in range(100, 120)]
    view.query = {"offset": 10_000, "limit": 50}  # past the end: the last page
    assert view.page["offset"] == 100
    view.query = {"limit": 10_000}  # bounded
    assert view.page["limit"] == xv.MAX_LIMIT and len(view.page["rows"]) == 120
    json.dumps(view.page, allow_nan=False)  # what crosses the wire is plain JSON


def test_filters_by_outcome_variant_status_and_text():
    view = small().show()
    view.query = {"evaluator": "has", "outcome": "fail"}
    assert view.page["total"] == 60 and keys(view)[:3] == ["r1", "r3", "r5"]
    view.query = {"evaluator": "has", "outcome": "fail", "variant": "b"}  # b never fails: nothing
    assert view.page["total"] == 0 and view.page["all"] == 120
    view.query = {"evaluator": "has", "outcome": "error"}
    assert keys(view) == ["r7"]
    view.query = {"outcome": "error"}  # any evaluator
    assert keys(view) == ["r7"]
    view.query = {"status": "error"}
    assert keys(view) == ["r7"]
    view.query = {"evaluator": "has", "outcome": "disagree"}  # a fails where b passes (r7: b has no value)
    assert view.page["total"] == 59 and "r7" not in keys(view)
    view.query = {"evaluator": "num", "outcome": "pass"}  # a plain number is neither pass nor fail
    assert view.page["total"] == 0
    view.query = {"text": "RATELIMIT"}  # errors are searched, case-insensitively
    assert keys(view) == ["r7"]
    view.query = {"text": "answer 11 from"}
    assert keys(view) == ["r11"]
    view.query = {"text": "R11"}  # the row's key (a substring: r11, r110..r119)
    assert keys(view) == ["r11", *(f"r{i}" for i in range(110, 120))]
    view.query = {"text": "from b", "variant": "a"}  # both must hold on one answer
    assert view.page["total"] == 0
    assert view.error == ""


def test_sorting_by_a_score_puts_the_lowest_or_highest_rows_first_and_unscored_rows_last():
    cells = [cell("r0", "a", has=Score(0.5, None, None, None)), cell("r0", "b", has=Score(0.5, None, None, None)),
             cell("r1", "a", has=Score(0.0, None, None, None)), cell("r1", "b", has=Score(1.0, None, None, None)),
             cell("r2", "a", has=Score(0.2, None, None, None)), cell("r2", "b", has=BROKEN),
             cell("r3", "a", has=BROKEN), cell("r3", "b", has=BROKEN)]  # fmt: skip
    view = Experiment("e", "e", ["a", "b"], ["has"], cells, 1).show()
    view.query = {"sort": "has:asc"}  # means over the variants: r0 0.5, r1 0.5, r2 0.2; r3 unscored
    assert keys(view) == ["r2", "r0", "r1", "r3"]  # ties keep the experiment's order
    view.query = {"sort": "has:desc"}
    assert keys(view) == ["r0", "r1", "r2", "r3"]
    view.query = {"sort": "has:asc", "variant": "a"}  # one variant's scores
    assert keys(view) == ["r1", "r2", "r0", "r3"]
    view.query = {"sort": "has:asc", "variant": "b"}
    assert keys(view) == ["r0", "r1", "r2", "r3"]  # (r2, r3: b has no score, after the scored rows)
    view.query = {"sort": "has:desc", "text": "nothing matches"}
    assert keys(view) == []


def test_a_bad_filter_says_what_to_do_and_keeps_the_page():
    view = small().show()
    before = keys(view)
    for bad, words in [({"evaluator": "nope"}, "No evaluator 'nope'"), ({"variant": "zz"}, "No variant 'zz'"),
                       ({"outcome": "maybe"}, "outcome is one of"), ({"offset": -1}, "whole number"),
                       ({"colour": "red"}, "Unknown filter 'colour'"), ({"sort": "has"}, "sort is '<evaluator>:asc'"),
                       ({"sort": "nope:asc"}, "sort is")]:  # fmt: skip
        view.query = bad
        assert words in view.error and "\n" not in view.error
        assert keys(view) == before
    view.query = {}
    assert view.error == ""


def test_answers_are_previews_and_values_are_json_safe():
    long = "x" * (xv.PREVIEW_CHARS * 3)
    c = cell("r0", "a", long, s=Score(0.5, None, "r" * 5_000, None))
    c.latency_ms, c.cost_usd = math.nan, math.inf
    state = Experiment("e", "e", ["a"], ["s"], [c], 1).show().page["rows"][0]["cells"]["a"][0]
    assert len(state["output"]) == xv.PREVIEW_CHARS and state["truncated"] is True
    assert len(state["scores"]["s"]["reason"]) == xv.NOTE_CHARS
    assert state["latency_ms"] is None and state["cost_usd"] is None
    json.dumps(state, allow_nan=False)


def test_repeats_are_listed_in_order_and_a_variant_without_an_answer_is_empty():
    cells = [cell("r0", "a", "second", repeat=1), cell("r0", "a", "first", repeat=0), cell("r1", "a", "only")]
    exp = Experiment("e", "e", ["a", "b"], [], cells, 2)
    rows = exp.show().page["rows"]
    assert [c["output"] for c in rows[0]["cells"]["a"]] == ["first", "second"]
    assert rows[1]["cells"]["b"] == []


HOSTILE = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(2)">',
    "</td></tr></table><iframe src=javascript:alert(3)>",
    "&lt;already escaped&gt; & ampersand",
]


def test_the_static_copy_escapes_every_text():
    cells = [cell(f'"><svg onload=alert({i})>', "v<b>", text, has=Score(None, None, None, "<b>bad</b>"))
             for i, text in enumerate(HOSTILE)]  # fmt: skip
    exp = Experiment("e", "<i>name</i>", ["v<b>"], ["<u>has</u>"], cells, 1)
    out = exp.show().fallback_html()
    tags: set[str] = set()
    attrs: list[tuple[str, str | None]] = []
    texts: list[str] = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag: str, attributes: list[tuple[str, str | None]]) -> None:
            tags.add(tag)
            attrs.extend(attributes)

        def handle_data(self, data: str) -> None:
            texts.append(data)

    Parser(convert_charrefs=True).feed(out)
    # only the table's own markup: every text of the experiment is data, none became a tag or attribute
    assert tags <= {"div", "b", "table", "thead", "tbody", "tr", "th", "td", "br", "small"}, tags
    assert attrs == [("class", "nbp-fallback")]  # hidden wherever the live widget's CSS is loaded
    shown = "".join(texts)
    for text in [*HOSTILE, '"><svg onload=alert(0)>', "<i>name</i>", "v<b>"]:
        assert text in shown, text
    assert html.escape(HOSTILE[0]) in out


def test_ten_variants_by_ten_thousand_rows_builds_pages_without_the_whole_matrix(monkeypatch):
    variants = [f"v{j}" for j in range(10)]
    cells = [cell(f"row{i}", v, f"answer {i} {v}", has=PASS if (i + j) % 3 else FAIL)
             for i in range(10_000) for j, v in enumerate(variants)]  # fmt: skip
    exp = Experiment("big", "big", variants, ["has"], cells, 1)
    calls = [0]
    real = xv.cell_state

    def counting(c: Cell) -> dict:
        calls[0] += 1
        return real(c)

    monkeypatch.setattr(xv, "cell_state", counting)
    started = time.perf_counter()
    view = exp.show(limit=50)
    opened = time.perf_counter() - started
    assert calls[0] == 50 * 10  # the first page's answers, not 100,000
    assert view.page["total"] == 10_000

    calls[0] = 0
    timings = []
    for offset in (5_000, 9_950, 100):
        t0 = time.perf_counter()
        view.query = {"offset": offset, "limit": 50}
        timings.append(time.perf_counter() - t0)
        assert keys(view)[0] == f"row{offset}"
    assert calls[0] == 3 * 50 * 10
    t0 = time.perf_counter()
    for c in cells:
        real(c)
    whole = time.perf_counter() - t0
    # a page is ~1/200 of the matrix: far below serializing it all, even on a loaded machine
    assert min(timings) < whole / 10, (timings, whole)
    assert opened < 10, opened
    assert len(json.dumps(view.page)) < 1_000_000

    t0 = time.perf_counter()
    view.query = {"evaluator": "has", "outcome": "fail", "variant": "v0"}  # one pass over the index
    filtered = time.perf_counter() - t0
    assert view.page["total"] == len([i for i in range(10_000) if i % 3 == 0])
    assert filtered < 10, filtered


# -- opening a run: a real experiment on the offline mock models ------------------------------------------
@pytest.fixture
def run_experiment() -> Experiment:
    df = pd.DataFrame({"q": ["hello there", "what <b>now</b>"], "expected": ["hello", "zzz"]}, index=["a", "b"])
    return nbp.experiment(df, {"echo": {"prompt": "Q: {{q}}", "model": "mock/echo"},
                               "lorem": {"prompt": "Say {{q}}", "model": "mock/lorem", "params": {"max_tokens": 5}}},
                          [evals.icontains("{{expected}}")], name="view-open", progress=False)  # fmt: skip


def test_a_click_opens_that_run_in_a_playground_below_the_matrix(run_experiment):
    view = run_experiment.show()
    target = next(c for c in run_experiment.cells if c.variant == "lorem" and c.row == "b")
    view._on_front_msg(view, {"type": "open", "run_id": target.run_id}, [])  # what the front end sends
    assert view.error == "" and view.opened == target.run_id
    pg = view.playground
    assert pg is not None
    assert next(m["content"] for m in pg.messages if m["role"] == "user") == "Say {{q}}"
    assert pg.variables["q"] == "what <b>now</b>"
    assert [tg["model"] for tg in pg.targets] == ["mock/lorem"]  # that run alone, not the other rows' runs
    assert [o["id"] for o in pg.outputs] == [target.run_id]
    (out,) = view.slot.outputs
    assert out["data"]["application/vnd.jupyter.widget-view+json"]["model_id"] == pg.model_id


def test_only_this_experiments_runs_open_and_unknown_commands_are_reported(run_experiment):
    view = run_experiment.show()
    with pytest.raises(E.RunNotFoundError, match="not an answer of this experiment"):
        view.open_run("0" * 32)
    view._on_front_msg(view, {"type": "open", "run_id": "nope"}, [])
    assert "not an answer of this experiment" in view.error and view.slot.outputs == ()
    view._on_front_msg(view, {"type": "explode"}, [])
    assert "Unknown experiment view command 'explode'" in view.error


def test_reloaded_experiment_shows_the_same_matrix(run_experiment):
    again = nbp.get_experiment("view-open").show()
    first = run_experiment.show()
    assert again.page["total"] == first.page["total"] == 2
    ids = lambda v: sorted(c["run_id"] for r in v.page["rows"] for cs in r["cells"].values() for c in cs)  # noqa: E731
    assert ids(again) == ids(first)
