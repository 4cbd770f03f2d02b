"""GET experiments and experiments/{experiment} through a real Jupyter server and a real HTTP client.

The experiment is written by another process (as a notebook kernel would), through nbplayground's own
run path and experiments store; the server only reads it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from jsonschema import Draft202012Validator

from nbplayground.core import errors as E
from nbplayground.server.validation import document
from support.servers import start_jupyter

API = "/nbplayground/api/v1"
NAME = "support faq/2026"  # a space and a slash: the URL carries it percent-encoded

#: Stores one experiment: variant a (2 versions) and b, rows 1, 2, 10, one repeat; an "exact" code evaluator
#: and a "judge" whose score on one cell failed; b's row 10 is a run that failed (an unreachable endpoint).
WRITER = r"""
import dataclasses, json, sys
from nbplayground import api
from nbplayground.core.plan import plan
from nbplayground.storage import experiments as ex, history

def run(text, group, key, **kw):
    spec = api.build_spec(text, model=kw.pop("model", "mock/echo"), group_id=group, **kw)
    spec = dataclasses.replace(spec, origin=dataclasses.replace(spec.origin, row_key=key))
    return api.start(plan(spec)).result()

config = {"evaluators": [{"name": "exact", "fingerprint": "fp-x", "kind": "code"},
                         {"name": "judge", "fingerprint": "fp-j", "kind": "judge"}]}
e = ex.upsert_experiment(sys.argv[1], rows=3, repeats=1, config=config, status="done")
old = ex.variant(e.id, "a", "a1", {"prompt": "old {{q}}", "model": "mock/echo"})
a = ex.variant(e.id, "a", "a2", {"prompt": "{{q}}", "model": "mock/echo"})
b = ex.variant(e.id, "b", "b1", {"prompt": "B {{q}}", "model": "mock/echo"})
run("old 1", old.group_id(0), "1")
scores = []
for v in (a, b):
    for key in ("1", "2", "10"):
        if v is b and key == "10":
            r = run("x", v.group_id(0), key, model="openai/gpt-4o-mini", max_attempts=1,
                    params={"api_base": "http://127.0.0.1:9/v1", "api_key": "sk-test-000000000000000000"})
            continue
        r = run(f"{v.name} {key}", v.group_id(0), key)
        scores.append(ex.ScoreRow(e.id, r.id, "exact", "fp-x", v.id, key, 0, float(key != "10"), key != "10"))
        failed = v is a and key == "2"
        scores.append(ex.ScoreRow(e.id, r.id, "judge", "fp-j", v.id, key, 0, None if failed else 1.0,
                                  None if failed else True, reason=None if failed else "fine",
                                  error="AuthError: upstream said: invalid key for org-SECRETORG" if failed else None))
ex.record_scores(scores)
history.flush()
print(json.dumps({"id": e.id, "a": a.id, "b": b.id, "old": old.id}))
"""


@pytest.fixture(scope="module")
def jp(tmp_path_factory):
    base = tmp_path_factory.mktemp("jp-exp")
    server = start_jupyter(base)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stored(jp):
    out = subprocess.run([sys.executable, "-c", WRITER, NAME], env={**os.environ, "NBPLAYGROUND_HOME": str(jp.home)},
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


@pytest.fixture
def client(jp):
    with httpx.Client(base_url=jp.url, headers=jp.headers, timeout=60) as c:
        yield c


def valid(name: str, body: object) -> None:
    doc = document()
    errors = list(Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": doc["components"]})
                  .iter_errors(body))  # fmt: skip
    assert not errors, errors[0].message


def detail(client: httpx.Client, query: str = "", name: str = NAME) -> httpx.Response:
    return client.get(f"{API}/experiments/{quote(name, safe='')}{query}")


def test_the_list_shows_each_experiment(client, stored):
    r = client.get(f"{API}/experiments")
    assert r.status_code == 200
    body = r.json()
    valid("ExperimentList", body)
    (item,) = [i for i in body["items"] if i["id"] == stored["id"]]
    assert (item["name"], item["variants"], item["rows"], item["repeats"], item["status"]) == (
        NAME, ["a", "b"], 3, 1, "done")  # fmt: skip


def test_the_detail_has_variants_summary_and_cells(client, stored):
    r = detail(client)
    assert r.status_code == 200, r.text
    body = r.json()
    valid("Experiment", body)
    assert detail(client, name=stored["id"]).json() == body  # by id too
    assert (body["id"], body["name"], body["status"]) == (stored["id"], NAME, "done")
    assert [(v["name"], v["version"], v["latest"]) for v in body["variants"]] == [
        ("a", 1, False), ("a", 2, True), ("b", 1, True)]  # fmt: skip
    assert body["variants"][1]["spec"] == {"prompt": "{{q}}", "model": "mock/echo"}

    summary = {s["variant"]: s for s in body["summary"]}
    assert list(summary) == ["a", "b"]
    a, b = summary["a"], summary["b"]
    assert (a["version"], a["rows"], a["cells"], a["errors"]) == (2, 3, 3, 0)
    assert (b["cells"], b["errors"]) == (3, 1)
    exact, judge = a["evaluators"]
    assert (exact["evaluator"], exact["n"], exact["passed"], exact["pass_n"]) == ("exact", 3, 2, 3)
    assert exact["mean"] == pytest.approx(2 / 3) and exact["low"] < exact["mean"] < exact["high"]
    assert (judge["evaluator"], judge["n"], judge["errors"], judge["mean"]) == ("judge", 2, 1, 1.0)
    assert a["tokens_in"] > 0 and a["p50_latency_ms"] is not None and a["cost_usd"] is not None
    assert b["cost_usd"] is None  # the failed run's cost is unknown

    cells = body["cells"]
    assert (cells["total"], cells["limit"], cells["offset"]) == (6, 100, 0)
    assert [(c["row_key"], c["variant"]) for c in cells["items"]] == [
        ("1", "a"), ("1", "b"), ("2", "a"), ("2", "b"), ("10", "a"), ("10", "b")]  # fmt: skip
    by = {(c["variant"], c["row_key"]): c for c in cells["items"]}
    assert by["a", "1"]["text"] == "a 1" and by["a", "1"]["scores"]["exact"] == {
        "value": 1.0, "passed": True, "reason": None, "error": None}  # fmt: skip
    assert by["a", "1"]["scores"]["judge"]["reason"] == "fine"
    # errors a caller sees are fixed sentences: no provider text, no upstream detail
    failed = by["b", "10"]
    assert (failed["status"], failed["error_type"], failed["scores"]) == ("error", "UnreachableError", {})
    assert failed["error"] == E.public_message("UnreachableError", None) and "127.0.0.1:9" not in r.text
    judged = by["a", "2"]["scores"]["judge"]
    assert judged["value"] is None and judged["error"].startswith("AuthError: the judge failed")
    assert "SECRETORG" not in r.text and "invalid key" not in r.text


def test_cells_are_paginated_and_filtered_by_variant(client, stored):
    everything = [c["run_id"] for c in detail(client).json()["cells"]["items"]]
    pages = [detail(client, f"?limit=4&offset={o}").json()["cells"] for o in (0, 4, 8)]
    assert [len(p["items"]) for p in pages] == [4, 2, 0] and {p["total"] for p in pages} == {6}
    assert [c["run_id"] for p in pages for c in p["items"]] == everything
    assert [p["limit"] for p in pages] == [4, 4, 4] and [p["offset"] for p in pages] == [0, 4, 8]

    only_b = detail(client, "?variant=b").json()
    assert only_b["cells"]["total"] == 3 and {c["variant"] for c in only_b["cells"]["items"]} == {"b"}
    assert [s["variant"] for s in only_b["summary"]] == ["a", "b"]  # the summary covers every variant
    old = detail(client, "?variant=a@1").json()["cells"]
    assert old["total"] == 1 and old["items"][0]["version"] == 1 and old["items"][0]["text"] == "old 1"
    both = detail(client, "?variant=a&variant=b&limit=1").json()["cells"]
    assert both["total"] == 6 and len(both["items"]) == 1


@pytest.mark.parametrize(
    ("query", "field"),
    [("?limit=0", "limit"), ("?limit=501", "limit"), ("?limit=ten", "limit"), ("?offset=-1", "offset"),
     ("?variant=c", "variant"), ("?variant=a@9", "variant")],
)  # fmt: skip
def test_a_bad_query_is_a_400_naming_its_field(client, stored, query, field):
    r = detail(client, query)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (error["field"], error["type"]) == (field, "RequestError")
    if field == "variant":
        assert "a, b" in error["message"]


def test_an_unknown_experiment_is_a_404_naming_the_field(client, stored):
    r = detail(client, name="no such experiment")
    assert r.status_code == 404
    valid("Error", r.json())
    error = r.json()["error"]
    assert (error["field"], error["type"]) == ("experiment", "ExperimentNotFoundError")
    assert "no such experiment" in error["message"] and "GET experiments" in error["message"]


def test_experiments_need_authentication_and_read_on_the_nbplayground_resource(jp, stored, tmp_path):
    with httpx.Client(base_url=jp.url, timeout=30) as anon:
        for path in ("/experiments", f"/experiments/{stored['id']}"):
            assert anon.get(API + path).status_code in (401, 403)
            assert anon.get(API + path, headers={"Authorization": "token wrong"}).status_code in (401, 403)
    log = tmp_path / "authz.jsonl"
    tests = str(Path(__file__).resolve().parent)
    server = start_jupyter(tmp_path, args=["--ServerApp.authorizer_class=support.authz.ReadOnlyPlayground"],
                           env={"PYTHONPATH": tests, "NBP_AUTHZ_LOG": str(log)})  # fmt: skip
    try:
        with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as c:
            assert c.get(f"{API}/experiments").json() == {"items": []}
            assert c.get(f"{API}/experiments/x").status_code == 404
    finally:
        server.stop()
    decisions = {(d["path"].removeprefix(API), d["action"], d["allowed"])
                 for d in map(json.loads, log.read_text().splitlines())}  # fmt: skip
    assert {("/experiments", "read", True), ("/experiments/x", "read", True)} <= decisions
