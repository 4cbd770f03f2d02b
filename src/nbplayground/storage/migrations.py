"""Schema migrations: an append-only list of named steps, recorded in ``_migrations``.

Never edit or reorder a step that has shipped: add a new one at the end (a test fingerprints the
shipped steps). Steps run in one transaction, under the store's exclusive lock (see ``db``).

No secondary indexes: measured on 1,000,000 runs, an ART index on ``runs(created_at)`` does not speed up
``history()`` (DuckDB already plans a Top-N with a dynamic zone-map filter; ~24 ms either way, most of
it the ~15 ms DuckDB needs to open any database), and one on ``thread_id`` made thread lookups slower
while growing the file by 10%. The primary key on ``runs.id`` serves ``get_run()``.
"""

from __future__ import annotations

from typing import Any

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_runs",
        """
        CREATE TABLE runs (
            id VARCHAR PRIMARY KEY,
            created_at TIMESTAMPTZ NOT NULL,
            surface VARCHAR,
            provider VARCHAR,
            model VARCHAR,
            kind VARCHAR,
            status VARCHAR,
            error VARCHAR,
            error_type VARCHAR,
            text VARCHAR,
            data JSON,
            tool_calls JSON,
            media JSON,
            messages JSON,
            params JSON,
            variables JSON,
            template JSON,
            prompt_ref VARCHAR,
            tokens_in INTEGER,
            tokens_out INTEGER,
            cost_usd DOUBLE,
            latency_ms DOUBLE,
            ttft_ms DOUBLE,
            finish_reason VARCHAR,
            thread_id VARCHAR,
            parent_id VARCHAR,
            group_id VARCHAR,
            target_index INTEGER,
            attempts INTEGER
        );
        """,
    ),
    (
        "0002_prompts",
        """
        CREATE TABLE prompts (
            name VARCHAR NOT NULL,
            version INTEGER NOT NULL,
            messages JSON NOT NULL,
            model VARCHAR,
            params JSON,
            description VARCHAR,
            content_hash VARCHAR NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (name, version)
        );
        CREATE TABLE prompt_labels (
            name VARCHAR NOT NULL,
            label VARCHAR NOT NULL,
            version INTEGER NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (name, label)
        );
        """,
    ),
    (
        "0003_threads",
        """
        CREATE TABLE threads (
            name VARCHAR PRIMARY KEY,
            cleared_at TIMESTAMPTZ
        );
        """,
    ),
    ("0004_runs_row_key", "ALTER TABLE runs ADD COLUMN row_key VARCHAR;"),
    ("0005_runs_error_status", "ALTER TABLE runs ADD COLUMN error_status INTEGER;"),
    (
        # A provider reporting 3,000,000,000 prompt tokens is a run to keep, not a batch to fail.
        "0006_runs_bigint_counts",
        """
        ALTER TABLE runs ALTER tokens_in SET DATA TYPE BIGINT;
        ALTER TABLE runs ALTER tokens_out SET DATA TYPE BIGINT;
        ALTER TABLE runs ALTER target_index SET DATA TYPE BIGINT;
        ALTER TABLE runs ALTER attempts SET DATA TYPE BIGINT;
        ALTER TABLE runs ALTER error_status SET DATA TYPE BIGINT;
        """,
    ),
    (
        "0007_runs_reasoning_detail_estimated",
        """
        ALTER TABLE runs ADD COLUMN reasoning VARCHAR;
        ALTER TABLE runs ADD COLUMN error_detail VARCHAR;
        ALTER TABLE runs ADD COLUMN tokens_estimated BOOLEAN;
        """,
    ),
    (
        # A variant's runs are found by group_id ('exp-<variant id>-r<repeat>'), not by a foreign key:
        # runs stay the one record of every call, written by the history writer alone.
        "0008_experiments",
        """
        CREATE TABLE experiments (
            id VARCHAR PRIMARY KEY,
            name VARCHAR NOT NULL UNIQUE,
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL,
            status VARCHAR NOT NULL,
            rows INTEGER,
            repeats INTEGER,
            config JSON
        );
        CREATE TABLE experiment_variants (
            id VARCHAR PRIMARY KEY,
            experiment_id VARCHAR NOT NULL,
            name VARCHAR NOT NULL,
            version INTEGER NOT NULL,
            fingerprint VARCHAR NOT NULL,
            spec JSON,
            created_at TIMESTAMPTZ NOT NULL,
            UNIQUE (experiment_id, name, version)
        );
        CREATE TABLE scores (
            experiment_id VARCHAR NOT NULL,
            run_id VARCHAR NOT NULL,
            evaluator VARCHAR NOT NULL,
            evaluator_fingerprint VARCHAR NOT NULL,
            variant_id VARCHAR,
            row_key VARCHAR,
            repeat INTEGER,
            value DOUBLE,
            passed BOOLEAN,
            reason VARCHAR,
            error VARCHAR,
            judge_run_id VARCHAR,
            created_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (run_id, evaluator_fingerprint)
        );
        """,
    ),
]


def applied(con: Any) -> list[str]:
    """Names of the migrations already applied to this database."""
    con.execute("CREATE TABLE IF NOT EXISTS _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ)")
    return [row[0] for row in con.execute("SELECT name FROM _migrations ORDER BY name").fetchall()]


def migrate(con: Any, upto: int | None = None) -> list[str]:
    """Apply the missing migrations (all, or the first ``upto``) in one transaction; return their names."""
    done = set(applied(con))
    todo = [(n, sql) for n, sql in MIGRATIONS[:upto] if n not in done]
    if not todo:
        return []
    con.execute("BEGIN TRANSACTION")
    try:
        for name, sql in todo:
            con.execute(sql)
            con.execute("INSERT INTO _migrations VALUES (?, now())", [name])
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return [n for n, _ in todo]
