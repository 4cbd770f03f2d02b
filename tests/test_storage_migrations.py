"""Schema migrations: blank -> current, old -> current, idempotent, atomic, append-only."""

from __future__ import annotations

import hashlib
import re

import duckdb
import pytest

from nbplayground.storage import db, history, migrations

NAMES = [name for name, _ in migrations.MIGRATIONS]
RUNS_COLUMNS = [
    "id", "created_at", "surface", "provider", "model", "kind", "status", "error", "error_type", "text", "data",
    "tool_calls", "media", "messages", "params", "variables", "template", "prompt_ref", "tokens_in",
    "tokens_out", "cost_usd", "latency_ms", "ttft_ms", "finish_reason", "thread_id", "parent_id", "group_id",
    "target_index", "attempts",
]  # fmt: skip
#: Fingerprints of shipped steps. A shipped migration is never edited: add a new step instead.
SHIPPED = {
    "0001_runs": "487cbccc77",
    "0002_prompts": "d2e472f10f",
    "0003_threads": "89478e7b16",
    "0004_runs_row_key": "6d17a0db61",
    "0005_runs_error_status": "62286d45ca",
    "0006_runs_bigint_counts": "4a53d304f2",
}


def fingerprint(sql: str) -> str:
    return hashlib.sha256(" ".join(sql.split()).encode()).hexdigest()[:10]


def tables(con) -> set[str]:
    return {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def test_blank_to_current(tmp_path):
    con = duckdb.connect(str(tmp_path / "blank.duckdb"))
    assert migrations.migrate(con) == NAMES
    recorded = con.execute("SELECT name, applied_at FROM _migrations ORDER BY name").fetchall()
    assert [r[0] for r in recorded] == NAMES and all(r[1] is not None for r in recorded)
    assert {"runs", "prompts", "prompt_labels", "_migrations"} <= tables(con)
    columns = [r[0] for r in con.execute("DESCRIBE runs").fetchall()]
    assert columns[: len(RUNS_COLUMNS)] == RUNS_COLUMNS
    types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                             "WHERE table_name = 'runs'").fetchall())  # fmt: skip
    assert types["created_at"] == "TIMESTAMP WITH TIME ZONE" and types["messages"] == "JSON"
    assert types["cost_usd"] == "DOUBLE" and types["tokens_in"] == "BIGINT"  # 0006: 3e9 tokens fit
    assert {types[c] for c in ("tokens_out", "target_index", "attempts", "error_status")} == {"BIGINT"}
    keys = con.execute(
        "SELECT table_name, constraint_column_names FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY'"
    ).fetchall()
    assert ("runs", ["id"]) in keys and ("prompts", ["name", "version"]) in keys
    assert ("prompt_labels", ["name", "label"]) in keys
    con.close()


def test_migrating_twice_is_a_no_op(tmp_path):
    con = duckdb.connect(str(tmp_path / "twice.duckdb"))
    migrations.migrate(con)
    before = con.execute("SELECT * FROM _migrations ORDER BY name").fetchall()
    assert migrations.migrate(con) == []
    assert con.execute("SELECT * FROM _migrations ORDER BY name").fetchall() == before
    assert migrations.applied(con) == NAMES
    con.close()


def test_old_to_current_keeps_rows(nbp_home):
    path = nbp_home / db.DB_FILE
    con = duckdb.connect(str(path))
    assert migrations.migrate(con, upto=1) == ["0001_runs"]
    con.execute(
        "INSERT INTO runs (id, created_at, model, status, text, messages) VALUES (?, now(), ?, ?, ?, ?)",
        ["old-run-0001", "mock/echo", "ok", "from an old store", '[{"role": "user", "content": "hi"}]'],
    )
    assert "prompts" not in tables(con)
    con.close()

    # The store applies the missing steps when it first opens the file; the old row survives.
    assert [r.text for r in history.history()] == ["from an old store"]
    old = history.get_run("old-run-0001")
    assert old.messages == [{"role": "user", "content": "hi"}] and old.row_key is None
    assert history.sql("SELECT name FROM _migrations ORDER BY name")["name"].tolist() == NAMES
    assert {"runs", "prompts", "prompt_labels"} <= set(history.sql("SHOW TABLES")["name"])
    from nbplayground.storage import registry

    assert registry.save("a/b", content="x").version == 1  # later tables work


def test_old_to_current_directly(tmp_path):
    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    migrations.migrate(con, upto=2)
    con.execute("INSERT INTO runs (id, created_at) VALUES ('r1', now())")
    assert migrations.migrate(con) == NAMES[2:]
    assert con.execute("SELECT id FROM runs").fetchall() == [("r1",)]
    assert migrations.applied(con) == NAMES
    con.close()


def test_a_failing_step_rolls_back_every_step_of_the_run(tmp_path, monkeypatch):
    con = duckdb.connect(str(tmp_path / "fail.duckdb"))
    migrations.migrate(con)
    steps = [
        *migrations.MIGRATIONS,
        ("9998_good", "CREATE TABLE good (a INT)"),
        ("9999_bad", "CREATE TABL oops"),
    ]
    monkeypatch.setattr(migrations, "MIGRATIONS", steps)
    with pytest.raises(duckdb.Error):
        migrations.migrate(con)
    assert "good" not in tables(con) and migrations.applied(con) == NAMES
    con.close()


def test_migrations_are_append_only():
    assert len(set(NAMES)) == len(NAMES)
    numbers = [int(re.match(r"^(\d{4})_[a-z0-9_]+$", n).group(1)) for n in NAMES]
    assert numbers == sorted(numbers) and numbers == list(range(1, len(NAMES) + 1))
    shipped = {name: fingerprint(sql) for name, sql in migrations.MIGRATIONS if name in SHIPPED}
    assert shipped == SHIPPED, "a shipped migration was edited: add a new step instead"


def test_the_store_migrates_once_per_process(nbp_home, monkeypatch):
    calls = []
    real = migrations.migrate
    monkeypatch.setattr(migrations, "migrate", lambda con, upto=None: calls.append(1) or real(con, upto))
    for _ in range(3):
        history.history()
    assert len(calls) == 1


def test_experiment_tables_have_their_keys(tmp_path):
    con = duckdb.connect(str(tmp_path / "exp.duckdb"))
    migrations.migrate(con)
    assert {"experiments", "experiment_variants", "scores"} <= tables(con)
    keys = con.execute(
        "SELECT table_name, constraint_column_names FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY'"
    ).fetchall()
    assert ("scores", ["run_id", "evaluator_fingerprint"]) in keys and ("experiments", ["id"]) in keys
    assert ("experiment_variants", ["id"]) in keys
    con.execute("INSERT INTO experiments (id, name, created_at, updated_at, status) VALUES ('e1', 'x', now(), now(), 'done')")
    with pytest.raises(duckdb.ConstraintException):  # one experiment per name
        con.execute("INSERT INTO experiments (id, name, created_at, updated_at, status) "
                    "VALUES ('e2', 'x', now(), now(), 'done')")  # fmt: skip
    row = "(?, 'e1', 'v', 1, 'fp', now())"
    con.execute(f"INSERT INTO experiment_variants (id, experiment_id, name, version, fingerprint, created_at) VALUES {row}",
                ["a" * 16])  # fmt: skip
    with pytest.raises(duckdb.ConstraintException):  # one row per (experiment, name, version)
        con.execute(f"INSERT INTO experiment_variants (id, experiment_id, name, version, fingerprint, created_at) "
                    f"VALUES {row}", ["b" * 16])  # fmt: skip
    con.close()
