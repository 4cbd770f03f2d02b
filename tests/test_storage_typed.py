"""The store's typed read API on a real DuckDB file: dataclass rows with None (never NaN) for a missing
value, whole runs as RunResult, and notebook frames typed exactly as DuckDB types the same query."""

from __future__ import annotations

import ast
import dataclasses
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

import nbplayground as nbp
from nbplayground.core import catalog
from nbplayground.core.types import RunResult
from nbplayground.storage import db, history, queries, registry

STORAGE = Path(__file__).resolve().parents[1] / "src" / "nbplayground" / "storage"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def make(i: int, **kw) -> RunResult:
    base = dict(id=f"typed{i:03d}" + "0" * 24, model="mock/echo", text=f"answer {i}", tokens_in=2, tokens_out=5,
                cost_usd=2.5e-6, latency_ms=10.0, ttft_ms=4.0, messages=[{"role": "user", "content": f"q {i}"}],
                created_at=T0 + timedelta(seconds=i))  # fmt: skip
    base.update(kw)
    return RunResult(**base)


def record(*runs: RunResult) -> None:
    for r in runs:
        history.record(r)
    assert history.flush()


def test_history_rows_are_dataclasses_with_none_for_what_is_missing(nbp_home):
    record(make(1), make(2, cost_usd=None, tokens_in=None, latency_ms=None, status="error", error="boom"))
    newest, older = history.history()
    assert isinstance(newest, queries.RunSummary) and dataclasses.is_dataclass(newest)
    assert [f.name for f in dataclasses.fields(newest)] == list(history.HISTORY_COLUMNS)
    assert newest.id == make(2).id and newest.cost_usd is None and newest.tokens_in is None
    assert newest.latency_ms is None and newest.tokens_out == 5 and type(newest.tokens_out) is int
    assert (newest.status, newest.error) == ("error", "boom")
    assert older.cost_usd == pytest.approx(2.5e-6) and type(older.cost_usd) is float and older.error is None
    assert newest.created_at == T0 + timedelta(seconds=2) and newest.created_at.tzinfo is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        newest.text = "changed"  # type: ignore[misc]


def test_a_page_has_typed_rows_with_the_prompt_and_the_total(nbp_home):
    multimodal = [{"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url"}]}]
    record(
        make(1),
        make(2, messages=multimodal, status="error", error="refused", error_type="AuthError", error_status=401),
        make(3, cost_usd=None),
    )  # fmt: skip
    page = history.page(limit=2)
    assert page.total == 3 and [r.id for r in page.rows] == [make(3).id, make(2).id]
    rows, total = history.page(limit=2, offset=2)  # still unpacks like the pair it was
    assert total == 3 and [r.id for r in rows] == [make(1).id]
    top, failed = page.rows
    assert isinstance(top, queries.PageRow) and isinstance(top, queries.RunSummary)
    assert top.cost_usd is None and not (isinstance(top.cost_usd, float) and math.isnan(top.cost_usd))
    assert top.prompt == "q 3" and failed.prompt == "look "
    assert (failed.error_type, failed.error_status) == ("AuthError", 401) and type(failed.error_status) is int
    assert top.error_type is None and top.error_status is None
    only = history.page(model="mock/echo", status="error")
    assert only.total == 1 and [r.id for r in only.rows] == [make(2).id]


def test_count_takes_the_same_filters_as_history(nbp_home):
    record(make(1, thread_id="t"), make(2, thread_id="t", status="error"), make(3, surface="widget"))
    assert history.count() == 3
    assert history.count(thread_id="t") == 2 == len(history.history(thread_id="t"))
    assert history.count(thread_id="t", status="error") == 1
    assert history.count(surface="widget") == 1 and history.count(group_id="nothing") == 0


def test_a_nan_written_into_the_store_by_hand_reads_back_as_none(nbp_home):
    record(make(1))
    with db.connect(write=True) as con:
        con.execute("UPDATE runs SET cost_usd = 'NaN'::DOUBLE, latency_ms = 'NaN'::DOUBLE")
    [row] = history.history()
    assert row.cost_usd is None and row.latency_ms is None and row.ttft_ms == 4.0
    run = history.get_run(make(1).id)
    assert run is not None and run.cost_usd is None and run.latency_ms is None
    assert history.page().rows[0].cost_usd is None


def test_finished_by_row_key_gives_the_latest_run_per_row(nbp_home):
    record(
        make(1, group_id="batch", row_key="a", status="error", error="first try"),
        make(2, group_id="batch", row_key="a", text="second try"),
        make(3, group_id="batch", row_key="b", status="error", error="failed"),
        make(4, group_id="batch", row_key=None),  # a run of the batch with no row: never resumed from
        make(5, group_id="batch", row_key="c", status="stopped"),
        make(6, group_id="other", row_key="a"),
    )  # fmt: skip
    done = history.finished_by_row_key("batch")
    assert sorted(done) == ["a", "b"]
    assert isinstance(done["a"], RunResult) and done["a"].text == "second try" and done["a"].id == make(2).id
    assert done["b"].status == "error" and done["b"].cost_usd == pytest.approx(2.5e-6)
    assert sorted(history.finished_by_row_key("batch", ("ok",))) == ["a"]
    assert history.finished_by_row_key("batch", ()) == {} and history.finished_by_row_key("none") == {}


def test_notebook_history_frame_is_typed_as_duckdb_types_the_same_query(nbp_home):
    query = (
        f"SELECT {', '.join(history.HISTORY_COLUMNS)} FROM runs ORDER BY created_at DESC, id DESC LIMIT 50"
    )
    assert_frame_equal(nbp.history(), nbp.sql(query))  # empty: typed columns all the same
    record(make(1))
    assert_frame_equal(nbp.history(), nbp.sql(query))  # nothing missing
    record(make(2, cost_usd=None, tokens_in=None, error="x", status="error", thread_id="t"))
    frame = nbp.history()
    assert_frame_equal(frame, nbp.sql(query))  # some values missing: nullable ints, NaN floats
    assert list(frame.columns) == list(history.HISTORY_COLUMNS)
    assert frame["tokens_in"].isna().tolist() == [True, False] and math.isnan(frame["cost_usd"][0])
    assert_frame_equal(
        nbp.history(thread_id="t"), nbp.sql(query.replace("ORDER", "WHERE thread_id = 't' ORDER"))
    )


def test_registry_rows_are_typed_and_the_notebook_frames_unchanged(nbp_home):
    listing_sql = """
        SELECT p.name, p.version AS latest_version,
               coalesce((SELECT string_agg(l.label || '=' || l.version, ', ' ORDER BY l.label)
                         FROM prompt_labels l WHERE l.name = p.name), '') AS labels,
               p.model, p.created_at AS updated_at
        FROM prompts p WHERE p.version = (SELECT max(version) FROM prompts q WHERE q.name = p.name)
        ORDER BY p.name"""
    assert_frame_equal(nbp.prompts.list(), nbp.sql(listing_sql))
    registry.save("team/greet", content="hi", labels=["prod"], model="mock/echo", params={"temperature": 0.5})
    registry.save("team/greet", content="hello", labels=["staging", "beta"])
    registry.save("solo/one", content="x")
    [solo, greet] = registry.list()
    assert isinstance(greet, registry.PromptSummary) and greet.latest_version == 2 and greet.model is None
    assert (
        greet.labels == {"beta": 2, "prod": 1, "staging": 2}
        and greet.labels_text == "beta=2, prod=1, staging=2"
    )
    assert solo.labels == {} and isinstance(greet.updated_at, datetime)
    assert_frame_equal(nbp.prompts.list(), nbp.sql(listing_sql))
    newest, first = registry.versions("team/greet")
    assert (newest.version, newest.labels, first.labels) == (2, ("beta", "staging"), ("prod",))
    assert json.loads(first.params or "{}") == {"temperature": 0.5} and first.model == "mock/echo"
    assert json.loads(newest.messages) == [{"role": "user", "content": "hello"}]
    versions_sql = """
        SELECT p.version,
               coalesce((SELECT string_agg(l.label, ', ' ORDER BY l.label) FROM prompt_labels l
                         WHERE l.name = p.name AND l.version = p.version), '') AS labels,
               p.model, p.params, p.messages, p.description, p.content_hash, p.created_at
        FROM prompts p WHERE p.name = 'team/greet' ORDER BY p.version DESC"""
    assert_frame_equal(nbp.prompts.versions("team/greet"), nbp.sql(versions_sql))


def test_provider_rows_are_typed_and_the_frame_keeps_its_columns(nbp_home, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-shown")
    found = catalog.providers()
    assert isinstance(found[0], catalog.ProviderInfo) and found[0].provider == "mock"
    assert found[0].key_env is None and found[0].key_status == "not needed" and found[0].models
    openai = next(p for p in found if p.provider == "openai")
    assert (
        openai.key_status == "set" and openai.key_env == "OPENAI_API_KEY" and isinstance(openai.models, tuple)
    )
    frame = nbp.providers()
    assert list(frame.columns) == ["provider", "key_status", "key_env", "transport", "n_models", "models"]
    assert frame["provider"].tolist() == [p.provider for p in found]
    assert frame["key_env"][0] == "none" and frame["n_models"].dtype == "int64"
    assert frame["n_models"].tolist() == [len(p.models) for p in found]
    assert frame["models"][0] == list(found[0].models)
    assert "sk-test-not-shown" not in frame.to_string()


def test_storage_reads_return_no_frames_but_sql(nbp_home):
    record(make(1))
    registry.save("a/b", content="x")
    for value in (history.history(), history.page().rows, registry.list(), registry.versions("a/b")):
        assert isinstance(value, list) and not isinstance(value, pd.DataFrame)
    assert isinstance(history.sql("SELECT 1 AS one"), pd.DataFrame)


def _storage_imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
            out |= {n.split(".")[2] for n in names if n.startswith("nbplayground.storage.")}
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[2] for a in node.names if a.name.startswith("nbplayground.storage.")}
    return out


def test_storage_modules_import_no_circle_and_stay_small():
    graph = {p.stem: _storage_imports(p) - {p.stem} for p in STORAGE.glob("*.py")}

    def reaches(start: str, goal: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(
            n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph.get(start, ())
        )

    circles = sorted(m for m in graph if reaches(m, m))
    assert not circles, f"storage modules in an import circle: {circles}"
    assert "history" not in graph["queries"] | graph["writer"]  # history only gathers the others
    long = {
        p.name: n
        for p in STORAGE.glob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600
    }
    assert not long, long
