"""The experiments store: experiments, variant versions, scores and cells, on a real DuckDB file.

Runs are made through nbplayground's own path (``api.build_spec`` -> ``plan`` -> ``api.start``, as
``nbp.run`` does) with the experiment's ``group_id`` and a row key; nothing writes ``runs`` by hand.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys

import pytest

from nbplayground import api
from nbplayground.core import errors as E
from nbplayground.core.plan import plan
from nbplayground.storage import experiment_summary, history
from nbplayground.storage import experiments as ex

CONFIG = {"evaluators": [{"name": "exact", "fingerprint": "fp-exact", "kind": "code", "description": "equals"}],
          "data_columns": ["q"], "concurrency": 4, "max_cost": None}  # fmt: skip


def run(text: str, group: str, row_key: str, **kw):
    """One real run (mock/echo unless ``model`` is given), stored in the history with its group and row key."""
    spec = api.build_spec(text, model=kw.pop("model", "mock/echo"), group_id=group, **kw)
    spec = dataclasses.replace(spec, origin=dataclasses.replace(spec.origin, row_key=row_key))
    return api.start(plan(spec)).result()


def score(e, v, r, row_key, repeat, value, passed=None, **kw) -> ex.ScoreRow:
    fingerprint = kw.pop("fingerprint", "fp-exact")
    return ex.ScoreRow(e.id, r.id, kw.pop("evaluator", "exact"), fingerprint, v.id, row_key, repeat, value, passed,
                       **kw)  # fmt: skip


def test_an_experiment_is_created_once_per_name_and_updated_after():
    first = ex.upsert_experiment("faq", rows=3, repeats=1, config=CONFIG, status="running")
    assert len(first.id) == 32 and first.status == "running" and first.config == CONFIG
    again = ex.upsert_experiment("faq", rows=5, repeats=2, config={"evaluators": []}, status="partial")
    assert (
        again.id == first.id and again.created_at == first.created_at and again.updated_at > first.updated_at
    )
    assert (again.rows, again.repeats, again.status, again.config) == (5, 2, "partial", {"evaluators": []})
    assert ex.get_experiment("faq") == again == ex.get_experiment(first.id)
    assert ex.get_experiment("nope") is None and ex.get_experiment(first.id[:8]) is None
    ex.set_status(first.id, "done")
    assert ex.get_experiment("faq").status == "done"

    other = ex.upsert_experiment("other", rows=1, repeats=1, config={}, status="running")
    ex.variant(other.id, "b", "f1", {})
    ex.variant(other.id, "a", "f1", {})
    ex.variant(other.id, "b", "f2", {})  # a second version of b: listed once
    listed = ex.list_experiments()
    assert [e.name for e in listed] == ["other", "faq"]  # most recently updated first
    assert listed[0].variants == ("b", "a") and listed[1].variants == ()
    assert (listed[1].rows, listed[1].repeats, listed[1].status) == (5, 2, "done")


@pytest.mark.parametrize("name", ["", "   ", "a\nb", "x" * 201, None])
def test_a_bad_experiment_name_names_the_field(name):
    with pytest.raises(E.BadParameterError) as info:
        ex.upsert_experiment(name, rows=1, repeats=1, config={})
    assert info.value.field == "name"
    with pytest.raises(E.BadParameterError) as bad:
        ex.upsert_experiment("ok", rows=1, repeats=1, config={}, status="finished")
    assert bad.value.field == "status" and "running, done, partial, error" in str(bad.value)


def test_a_changed_variant_is_a_new_version_and_the_old_one_stays():
    e = ex.upsert_experiment("versions", rows=1, repeats=1, config={})
    v1 = ex.variant(e.id, "v", "fp-1", {"prompt": "A {{q}}", "model": "mock/echo"})
    assert v1.version == 1 and len(v1.id) == 16 and int(v1.id, 16) >= 0
    assert ex.variant(e.id, "v", "fp-1", {"prompt": "ignored: same fingerprint"}) == v1
    v2 = ex.variant(e.id, "v", "fp-2", {"prompt": "B {{q}}", "model": "mock/echo"})
    assert v2.version == 2 and v2.id != v1.id
    assert ex.variant(e.id, "v", "fp-1", {}) == v1  # back to the first prompt: its version again
    w = ex.variant(e.id, "w", "fp-1", {})
    assert w.version == 1 and w.id not in (v1.id, v2.id)
    found = ex.variants(e.id)
    assert [(v.name, v.version) for v in found] == [("v", 1), ("v", 2), ("w", 1)]
    assert found[0].spec == {"prompt": "A {{q}}", "model": "mock/echo"}  # the old version is kept as it was
    assert ex.latest(found) == [v2, w]
    assert v2.group_id(3) == f"exp-{v2.id}-r3" == ex.group_id(v2.id, 3)
    other = ex.upsert_experiment("versions-2", rows=1, repeats=1, config={})
    assert ex.variant(other.id, "v", "fp-1", {}).id != v1.id  # ids differ across experiments


def test_a_stored_spec_has_no_credentials(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-KNOWNVALUE-0123456789abcdef")
    e = ex.upsert_experiment("spec", rows=1, repeats=1, config={})
    v = ex.variant(e.id, "v", "fp", {
        "prompt": "Use key sk-live-KNOWNVALUE-0123456789abcdef please", "model": "openai/gpt-4o-mini",
        "params": {"temperature": 0, "api_key": "sk-other-0123456789abcdefgh", "api_base": "http://x",
                   "extra_headers": {"Authorization": "Bearer abc"}},
    })  # fmt: skip
    text = json.dumps(ex.variants(e.id)[0].spec)
    assert v.spec["params"] == {"temperature": 0}
    assert (
        "KNOWNVALUE" not in text
        and "sk-other" not in text
        and "Bearer" not in text
        and "http://x" not in text
    )
    assert "Use key" in v.spec["prompt"]


def test_scores_upsert_on_run_and_fingerprint_in_one_transaction_per_call():
    e = ex.upsert_experiment("scores", rows=250, repeats=1, config=CONFIG)
    v = ex.variant(e.id, "v", "fp", {})
    many = [ex.ScoreRow(e.id, f"run-{i:04d}", "exact", "fp-exact", v.id, str(i), 0, i % 2, bool(i % 2))
            for i in range(250)]  # fmt: skip
    ex.record_scores(many)  # several statements, one transaction
    stored = ex.scores(e.id)
    assert len(stored) == 250 and {s.run_id for s in stored} == {f"run-{i:04d}" for i in range(250)}
    assert all(s.created_at is not None and s.value == float(int(s.row_key) % 2) for s in stored)

    # the same (run, fingerprint) again replaces; a new fingerprint of the same name is a new score
    ex.record_scores([dataclasses.replace(many[0], value=0.5, passed=None, reason="again"),
                      dataclasses.replace(many[1], evaluator_fingerprint="fp-exact-2", value=math.nan)])  # fmt: skip
    stored = {(s.run_id, s.evaluator_fingerprint): s for s in ex.scores(e.id)}
    assert len(stored) == 251
    assert (stored["run-0000", "fp-exact"].value, stored["run-0000", "fp-exact"].reason) == (0.5, "again")
    assert stored["run-0000", "fp-exact"].passed is None
    assert stored["run-0001", "fp-exact-2"].value is None  # NaN is stored as NULL, never as NaN
    # within one call the last score for a key wins
    ex.record_scores([dataclasses.replace(many[2], value=v_) for v_ in (0.1, 0.2, 0.3)])
    assert {
        s.value for s in ex.scores(e.id) if s.run_id == "run-0002" and s.evaluator_fingerprint == "fp-exact"
    } == {0.3}

    keys = ex.score_keys(e.id)
    assert len(keys) == 251 and ("run-0001", "fp-exact-2") in keys
    ex.record_scores([dataclasses.replace(many[3], value=None, error="ValueError: boom")])
    assert ("run-0003", "fp-exact") in ex.score_keys(e.id)
    assert ("run-0003", "fp-exact") not in ex.score_keys(e.id, include_errors=False)
    assert ex.scores(e.id, variant_ids=[]) == [] and len(ex.scores(e.id, variant_ids=[v.id])) == 251
    assert ex.score_keys("another-experiment") == set()


@pytest.mark.parametrize("n", [3, 150])  # a few rows (VALUES) and a batch (one Arrow scan)
def test_a_batch_with_a_bad_score_stores_none_of_its_scores(n):
    e = ex.upsert_experiment("atomic", rows=1, repeats=1, config=CONFIG)
    good = [ex.ScoreRow(e.id, f"r{i}", "exact", "fp", None, str(i), 0, 1.0) for i in range(n)]
    for bad in (dataclasses.replace(good[-1], run_id=""), dataclasses.replace(good[-1], repeat=2**40)):
        with pytest.raises(E.BadParameterError) as info:
            ex.record_scores([*good[:-1], bad])
        assert info.value.field == "scores"
        assert ex.scores(e.id) == []
    ex.record_scores(good)
    assert len(ex.scores(e.id)) == n


def test_a_secret_in_a_reason_or_error_is_scrubbed_and_long_text_bounded(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-KNOWNVALUE-0123456789abcdef")
    e = ex.upsert_experiment(
        "secret", rows=1, repeats=1, config={"note": "sk-live-KNOWNVALUE-0123456789abcdef"}
    )
    ex.record_scores([
        ex.ScoreRow(e.id, "r1", "judge", "fp", reason="The key sk-live-KNOWNVALUE-0123456789abcdef leaked",
                    error="AuthError: bad key sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123"),
        ex.ScoreRow(e.id, "r2", "judge", "fp", reason="x" * 50_000, value=1.0),
    ])  # fmt: skip
    (one, two) = ex.scores(e.id)
    assert (
        "KNOWNVALUE" not in one.reason
        and one.reason.startswith("The key ")
        and one.reason.endswith(" leaked")
    )
    assert "abcdefghijklmnopqrstuvwxyz" not in one.error and one.error.startswith("AuthError: bad key")
    assert len(two.reason) == ex.MAX_TEXT and two.reason.endswith("…")
    assert "KNOWNVALUE" not in json.dumps(ex.get_experiment("secret").config)
    raw = history.sql("SELECT reason, error FROM scores").to_string()
    assert "KNOWNVALUE" not in raw and "abcdefghijklmnopqrstuvwxyz" not in raw


@pytest.fixture
def stored():
    """Two variants (one with two versions) x 3 rows x 2 repeats, scored; plus runs that are not cells."""
    e = ex.upsert_experiment("cells", rows=3, repeats=2, config=CONFIG, status="done")
    old = ex.variant(e.id, "a", "fp-a1", {"prompt": "old"})
    a = ex.variant(e.id, "a", "fp-a2", {"prompt": "{{q}}"})
    b = ex.variant(e.id, "b", "fp-b1", {"prompt": "B {{q}}"})
    runs = {}
    for v, prefix in ((a, "A"), (b, "B")):
        for rep in (0, 1):
            for key in ("2", "10", "1"):
                runs[v.name, key, rep] = run(f"{prefix} row {key} rep {rep}", v.group_id(rep), key)
    runs["old", "1", 0] = run("old row 1", old.group_id(0), "1")
    superseded = run("first try", a.group_id(0), "2")  # stored before the one below: not a cell any more
    runs["a", "2", 0] = run("A row 2 rep 0 again", a.group_id(0), "2")
    run("judge of row 1", ex.judge_group_id(e.id, "fp-judge"), runs["a", "1", 0].id)  # a judge run: no cell
    run("unrelated", "batch-123", "1")
    scores = [score(e, a if n == "a" else b, r, key, rep, 1.0 if key != "10" else 0.0, key != "10")
              for (n, key, rep), r in runs.items() if n in ("a", "b")]  # fmt: skip
    scores.append(score(e, a, superseded, "2", 0, 0.0, False))
    scores.append(
        score(e, a, runs["a", "1", 0], "1", 0, 0.25, fingerprint="fp-old-exact")
    )  # an old evaluator
    ex.record_scores(scores)
    return e, old, a, b, runs


def test_cells_are_the_latest_run_of_each_row_variant_and_repeat_with_their_scores(stored):
    e, old, a, b, runs = stored
    cells, total = ex.cells(e.id, limit=100)
    assert total == 12 == len(cells)
    # numeric row keys in number order, then variant, version and repeat
    assert [(c.row_key, c.variant, c.repeat) for c in cells][:5] == [
        ("1", "a", 0), ("1", "a", 1), ("1", "b", 0), ("1", "b", 1), ("2", "a", 0)]  # fmt: skip
    assert [c.row_key for c in cells] == ["1"] * 4 + ["2"] * 4 + ["10"] * 4
    by = {(c.variant, c.row_key, c.repeat): c for c in cells}
    assert by["a", "2", 0].run_id == runs["a", "2", 0].id and by["a", "2", 0].text == "A row 2 rep 0 again"
    assert all(c.version == 2 for c in cells if c.variant == "a") and {c.variant_id for c in cells} == {
        a.id,
        b.id,
    }
    cell = by["b", "10", 1]
    source = runs["b", "10", 1]  # "B row 10 rep 1": mock/echo counts 5 words each way
    assert (cell.status, cell.error, cell.tokens_in, cell.tokens_out) == ("ok", None, 5, 5)
    assert (cell.cost_usd, cell.latency_ms, cell.text) == (source.cost_usd, source.latency_ms, source.text)
    assert cell.scores == {"exact": {"value": 0.0, "passed": False, "reason": None, "error": None}}
    # a score of an evaluator no longer in the config is kept in the store but not shown
    assert by["a", "1", 0].scores["exact"]["value"] == 1.0

    # pages: the windows of the one ordering, and the same total
    pages = [ex.cells(e.id, limit=5, offset=o) for o in (0, 5, 10, 15)]
    assert [len(p) for p, _ in pages] == [5, 5, 2, 0] and {t for _, t in pages} == {12}
    assert [c.run_id for p, _ in pages for c in p] == [c.run_id for c in cells]

    older, n_old = ex.cells(e.id, [old.id])
    assert n_old == 1 and older[0].version == 1 and older[0].text == "old row 1" and older[0].scores == {}
    assert ex.cells(e.id, [b.id])[1] == 6 and ex.cells(e.id, ["not-a-variant"]) == ([], 0)
    assert ex.cells("no-such-experiment") == ([], 0)


def test_a_cell_carries_its_run_error_and_at_most_2000_characters():
    e = ex.upsert_experiment("errors", rows=2, repeats=1, config=CONFIG)
    v = ex.variant(e.id, "v", "fp", {})
    run("y" * 2500, v.group_id(0), "long")
    failed = run("Hi", v.group_id(0), "down", model="openai/gpt-4o-mini", max_attempts=1,
                 params={"api_base": "http://127.0.0.1:9/v1", "api_key": "sk-test-00000000000000000000"})  # fmt: skip
    assert failed.status == "error"
    cells = {c.row_key: c for c in ex.cells(e.id)[0]}
    assert cells["long"].text == "y" * ex.CELL_TEXT
    down = cells["down"]
    assert (down.status, down.error_type, down.text) == (
        "error",
        "UnreachableError",
        "",
    ) and "connect" in down.error
    (summary,) = experiment_summary.summary(e.id)
    assert (summary.cells, summary.errors, summary.rows) == (2, 1, 2)


def test_the_summary_matches_hand_computed_values(stored):
    e, old, a, _, runs = stored
    by = {s.variant: s for s in experiment_summary.summary(e.id)}
    assert list(by) == ["a", "b"]
    sa = by["a"]
    assert (sa.variant_id, sa.version, sa.rows, sa.cells, sa.errors) == (a.id, 2, 3, 6, 0)
    assert sa.tokens_in == sum(runs["a", k, r].tokens_in for k in ("1", "2", "10") for r in (0, 1))
    assert sa.cost_usd == pytest.approx(
        sum(runs["a", k, r].cost_usd for k in ("1", "2", "10") for r in (0, 1))
    )
    latencies = sorted(runs["a", k, r].latency_ms for k in ("1", "2", "10") for r in (0, 1))
    assert sa.p50_latency_ms == pytest.approx((latencies[2] + latencies[3]) / 2)
    (ev,) = sa.evaluators
    # rows 1 and 2 score 1.0 in both repeats, row 10 scores 0.0: per-row means [1, 1, 0]
    assert (ev.evaluator, ev.n, ev.rows, ev.errors, ev.passed, ev.pass_rate.n) == ("exact", 6, 3, 0, 4, 6)
    mean, sd, t_975_2 = 2 / 3, math.sqrt(1 / 3), 4.302652729911275  # t quantile for 2 degrees of freedom
    half = t_975_2 * sd / math.sqrt(3)
    assert ev.mean.mean == pytest.approx(mean)
    assert (ev.mean.low, ev.mean.high) == (pytest.approx(mean - half), pytest.approx(mean + half))
    # Wilson score interval of 4/6 at z = 1.959964
    z, p, n = 1.959963984540054, 4 / 6, 6
    centre, spread = (
        (p + z * z / (2 * n)) / (1 + z * z / n),
        z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n),
    )
    assert ev.pass_rate.mean == pytest.approx(p)
    assert (ev.pass_rate.low, ev.pass_rate.high) == (
        pytest.approx(centre - spread),
        pytest.approx(centre + spread),
    )
    as_dict = sa.to_dict()
    assert as_dict["evaluators"][0]["mean"] == pytest.approx(mean) and as_dict["evaluators"][0]["pass_n"] == 6
    json.dumps(as_dict)  # JSON-ready
    older = experiment_summary.summary(e.id, [old.id])
    assert [(s.variant, s.version, s.cells, s.evaluators[0].n) for s in older] == [("a", 1, 1, 0)]
    assert older[0].evaluators[0].mean.mean is None and older[0].evaluators[0].pass_rate.mean is None


def test_a_new_process_reads_the_same_experiment(stored):
    e = stored[0]
    cells, total = ex.cells(e.id, limit=100)
    here = {
        "experiment": dataclasses.asdict(ex.get_experiment("cells")),
        "variants": [dataclasses.asdict(v) for v in ex.variants(e.id)],
        "scores": [dataclasses.asdict(s) for s in ex.scores(e.id)],
        "cells": [dataclasses.asdict(c) for c in cells], "total": total,
        "summary": [s.to_dict() for s in experiment_summary.summary(e.id)],
    }  # fmt: skip
    code = """
import dataclasses, json, sys
from nbplayground.storage import experiments as ex, experiment_summary
e = ex.get_experiment(sys.argv[1])
cells, total = ex.cells(e.id, limit=100)
print(json.dumps({
    "experiment": dataclasses.asdict(ex.get_experiment("cells")),
    "variants": [dataclasses.asdict(v) for v in ex.variants(e.id)],
    "scores": [dataclasses.asdict(s) for s in ex.scores(e.id)],
    "cells": [dataclasses.asdict(c) for c in cells], "total": total,
    "summary": [s.to_dict() for s in experiment_summary.summary(e.id)],
}, default=str))
"""
    out = subprocess.run([sys.executable, "-c", code, e.id], env=dict(os.environ), capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == json.loads(json.dumps(here, default=str))
    assert len(here["cells"]) == 12 and here["summary"][0]["evaluators"][0]["n"] == 6
