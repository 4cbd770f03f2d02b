"""``nbp.experiment``: variants over a frame, scored, resumable, statistically compared.

Model calls go to real local HTTP servers (counted at the server) or to the offline ``mock/`` models; the
store is a real DuckDB file (the isolated home of tests/conftest.py).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pandas as pd
import pytest

import nbplayground as nbp
from nbplayground import evals
from nbplayground.core import errors as E
from nbplayground.storage import experiments as store
from support.oai_server import Behaviour, OpenAIServer


@pytest.fixture
def local():
    """An OpenAI-compatible server that answers with the prompt (so answers are predictable)."""
    with OpenAIServer(echo=True) as srv:
        nbp.configure(models={"local": {"model": "openai/m", "api_base": srv.url, "input_cost_per_token": 1e-6,
                                        "output_cost_per_token": 2e-6}})  # fmt: skip
        yield srv


def frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"q": [f"question {i}" for i in range(n)], "expected": [str(i) for i in range(n)]},
                        index=[f"r{i}" for i in range(n)])  # fmt: skip


VARIANTS = {"plain": {"prompt": "{{q}}", "model": "local"}, "polite": {"prompt": "Please: {{q}}", "model": "local"}}


def test_runs_every_variant_scores_every_answer_and_resumes_with_zero_calls(local):
    df = frame(6)
    exp = nbp.experiment(df, VARIANTS, [evals.contains("{{expected}}"), evals.starts_with("Please")],
                         name="resume", progress=False)  # fmt: skip
    assert len(local.bodies) == 12  # 2 variants x 6 rows
    res = exp.results
    assert len(res) == 12 and set(res["variant"]) == {"plain", "polite"} and set(res["row"]) == set(df.index)
    assert res["status"].eq("ok").all() and res["contains"].eq(1.0).all()
    polite = res[res["variant"] == "polite"]
    assert polite["starts_with"].eq(1.0).all() and res[res["variant"] == "plain"]["starts_with"].eq(0.0).all()
    # the same call again: every cell is reused, no model call
    again = nbp.experiment(df, VARIANTS, [evals.contains("{{expected}}"), evals.starts_with("Please")],
                           name="resume", progress=False)  # fmt: skip
    assert len(local.bodies) == 12
    assert sorted(again.results["run_id"]) == sorted(res["run_id"])
    # a new row runs once per variant; a new evaluator scores stored answers without calling the model
    bigger = pd.concat([df, pd.DataFrame({"q": ["question 6"], "expected": ["6"]}, index=["r6"])])
    third = nbp.experiment(bigger, VARIANTS, [evals.contains("{{expected}}"), evals.starts_with("Please"),
                                              evals.regex(r"question \d+$", name="ends")],
                           name="resume", progress=False)  # fmt: skip
    assert len(local.bodies) == 14
    assert len(third.results) == 14 and third.results["ends"].eq(1.0).all()
    # a changed row value is a new row (its answer would be stale)
    changed = bigger.copy()
    changed.loc["r0", "q"] = "question zero"
    nbp.experiment(changed, VARIANTS, [evals.contains("{{expected}}")], name="resume", progress=False)
    assert len(local.bodies) == 16


def test_a_changed_variant_is_a_new_version_and_the_old_one_stays(local):
    df = frame(3)
    nbp.experiment(df, {"v": {"prompt": "{{q}}", "model": "local"}}, name="versions", progress=False)
    exp = nbp.experiment(df, {"v": {"prompt": "Now: {{q}}", "model": "local"}}, name="versions", progress=False)
    assert len(local.bodies) == 6
    versions = sorted((v.name, v.version) for v in store.variants(exp.id))
    assert versions == [("v", 1), ("v", 2)]
    assert set(exp.results["version"]) == {2} and exp.results["output"].str.startswith("Now:").all()
    # back to the first prompt: version 1 again, all reused
    nbp.experiment(df, {"v": {"prompt": "{{q}}", "model": "local"}}, name="versions", progress=False)
    assert len(local.bodies) == 6


def test_an_evaluator_that_raises_is_nan_with_its_error_never_a_crash():
    def fragile(output: str, row: dict) -> bool:
        if row["q"].endswith("1"):
            raise RuntimeError("cannot judge this one")
        return True

    exp = nbp.experiment(frame(3), {"echo": {"prompt": "{{q}}", "model": "mock/echo"}}, [fragile],
                         name="fragile", progress=False)  # fmt: skip
    res = exp.results.set_index("row")
    assert math.isnan(res.loc["r1", "fragile"]) and "cannot judge this one" in res.loc["r1", "fragile__error"]
    assert res.loc["r0", "fragile"] == 1.0 and pd.isna(res.loc["r0", "fragile__error"])
    summary = exp.summary().set_index("variant")
    assert summary.loc["echo", "fragile"] == 1.0  # the mean is over what could be scored


def test_a_judge_runs_through_the_engine_is_linked_and_resumes(local):
    judge_srv = OpenAIServer()
    judge_srv.start()
    try:
        nbp.configure(models={"judge": {"model": "openai/j", "api_base": judge_srv.url}})
        verdicts = ['{"reason": "fine", "choice": "yes"}', '{"reason": "meh", "choice": "no"}',
                    "I think yes", '{"reason": "odd", "choice": "maybe"}']  # fmt: skip
        judge_srv.script = [Behaviour(text=v) for v in verdicts]
        j = evals.judge("Does {{output}} answer {{q}}?", model="judge", choices={"yes": 1, "no": 0})
        exp = nbp.experiment(frame(4), {"v": {"prompt": "{{q}}", "model": "local"}}, [j], name="judged",
                             progress=False)  # fmt: skip
        assert len(judge_srv.bodies) == 4
        sent = json.dumps(judge_srv.bodies[0])
        assert "question 0" in sent and '"enum": ["yes", "no"]' in sent  # the row, the answer, the choices
        res = exp.results.set_index("row")
        assert res.loc["r0", "judge"] == 1.0 and res.loc["r0", "judge__reason"] == "fine"
        assert res.loc["r1", "judge"] == 0.0
        # an answer that is not the JSON asked for, or a verdict outside the choices: an error, never a 0
        assert math.isnan(res.loc["r2", "judge"]) and res.loc["r2", "judge__error"]
        assert math.isnan(res.loc["r3", "judge"]) and "maybe" in res.loc["r3", "judge__error"]
        judged = nbp.sql("select row_key, parent_id, surface from runs where surface = 'eval'")
        assert set(judged["row_key"]) == set(res["run_id"])  # each judge run is keyed by the run it judged
        assert (judged["parent_id"] == judged["row_key"]).all()  # and linked to it
        # again: the judge is not called again
        nbp.experiment(frame(4), {"v": {"prompt": "{{q}}", "model": "local"}}, [j], name="judged", progress=False)
        assert len(judge_srv.bodies) == 4
    finally:
        judge_srv.stop()


def test_a_judge_on_the_offline_json_model():
    j = evals.judge("Is {{output}} polite?", model="mock/json", choices={"yes": 1, "no": 0})
    exp = nbp.experiment(frame(3), {"echo": {"prompt": "{{q}}", "model": "mock/echo"}}, [j], name="mockjudge",
                         progress=False)  # fmt: skip
    assert exp.results["judge"].notna().all() and exp.results["judge__error"].isna().all()


def test_compare_is_paired_over_rows_with_the_exact_sign_test():
    df = frame(10)
    variants = {"a": {"prompt": "{{q}}", "model": "mock/echo"}, "b": {"prompt": "{{expected}}", "model": "mock/echo"}}
    exp = nbp.experiment(df, variants, [evals.regex(r"^\d+$", name="digits")], name="paired", progress=False)
    cmp = exp.compare("a", "b")
    row = cmp.table.set_index("evaluator").loc["digits"]
    assert row["n"] == 10 and row["mean_diff"] == 1.0 and row["low"] == 1.0 and row["high"] == 1.0
    assert row["p_value"] == pytest.approx(2 * 0.5**10)
    assert "sign" in row["test"]
    assert len(cmp.disagreements) == 10 and "digits" in str(cmp)
    same = exp.compare("a", "a").table.set_index("evaluator").loc["digits"]
    assert same["mean_diff"] == 0 and same["p_value"] == 1.0
    with pytest.raises(E.BadParameterError, match="No variant 'c'"):
        exp.compare("a", "c")


def test_repeats_are_averaged_per_row_before_the_statistics():
    exp = nbp.experiment(frame(4), {"lorem": {"prompt": "{{q}}", "model": "mock/lorem", "params": {"max_tokens": 3}}},
                         [evals.contains("lorem")], repeats=3, name="repeats", progress=False)  # fmt: skip
    assert len(exp.results) == 12 and sorted(set(exp.results["repeat"])) == [0, 1, 2]
    summary = exp.summary().set_index("variant").loc["lorem"]
    assert summary["rows"] == 4 and summary["cells"] == 12


def test_bad_input_is_one_clear_error_before_any_call(local):
    df = frame(2)
    cases = [
        (lambda: nbp.experiment([1, 2], VARIANTS), "data"),
        (lambda: nbp.experiment(df, {}), "variants"),
        (lambda: nbp.experiment(df, {"v": {"prompt": "{{q}}", "modle": "local"}}), "variants.v.modle"),
        (lambda: nbp.experiment(df, VARIANTS, repeats=0), "repeats"),
        (lambda: nbp.experiment(df, VARIANTS, [evals.contains("x"), evals.contains("y")]), "evaluators"),
        (lambda: nbp.experiment(df, {"v": {"prompt": "{{nope}}", "model": "local"}}), "columns.nope"),
    ]
    for call, field in cases:
        with pytest.raises(E.NBPlaygroundError) as info:
            call()
        assert info.value.field == field, (field, info.value)
        assert "\n" not in str(info.value)
    assert local.bodies == []


def test_reloads_in_a_new_process(local, tmp_path):
    exp = nbp.experiment(frame(3), VARIANTS, [evals.contains("{{expected}}")], name="reload", progress=False)
    from nbplayground.storage import history

    history.flush()
    code = ("import nbplayground as nbp, json\n"
            "e = nbp.get_experiment('reload')\n"
            "r = e.results.sort_values(['variant', 'row'])\n"
            "print(json.dumps({'ids': r['run_id'].tolist(), 'scores': r['contains'].tolist(), "
            "'names': nbp.experiments()['name'].tolist()}))\n")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    mine = exp.results.sort_values(["variant", "row"])
    assert got["ids"] == mine["run_id"].tolist() and got["scores"] == mine["contains"].tolist()
    assert "reload" in got["names"]
    with pytest.raises(E.ExperimentNotFoundError, match=r"nbp\.experiments\(\)"):
        nbp.get_experiment("no such experiment")
