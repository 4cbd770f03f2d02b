"""Experiments in the store: named experiments, their variant versions and the scores of their runs.

Tables (migration ``0008_experiments``): ``experiments`` (one per name), ``experiment_variants`` (a new
version whenever a variant's fingerprint changes under the same name: nothing is overwritten) and
``scores`` (one per run and evaluator fingerprint). The runs themselves are ordinary history runs: a
variant's runs have ``group_id = 'exp-<variant id>-r<repeat>'`` (:func:`group_id`) and ``row_key`` = the
data row's key; judge runs have ``group_id = 'eval-<experiment id>-<evaluator fingerprint>'``.

Writes go straight to the store under its exclusive lock (as the prompt registry does), one transaction
per call; free text (reasons, errors) and stored specs are scrubbed of secrets first. Reads return
frozen dataclasses, ``None`` for a missing value (never NaN). Statistics over the scores are in
:mod:`nbplayground.storage.experiment_summary`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict

from nbplayground.core import secrets
from nbplayground.core.errors import BadParameterError
from nbplayground.storage import db, queries
from nbplayground.storage import rows as _rows

#: What an experiment's ``status`` may be.
STATUSES = ("running", "done", "partial", "error")
#: Longest reason or error text stored with a score (a hostile output quoted in an error stays bounded).
MAX_TEXT = 20_000
#: Characters of a run's text a cell carries.
CELL_TEXT = 2_000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_VARIANT_ID = re.compile(r"^[0-9a-f]{16}$")


@dataclass(frozen=True, slots=True)
class ExperimentRow:
    """One experiment: its columns, ``config`` parsed (``{}`` when none)."""

    id: str
    name: str
    created_at: datetime
    updated_at: datetime
    status: str
    rows: int | None
    repeats: int | None
    config: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ExperimentSummaryRow:
    """An experiment as a listing shows it: ``variants`` are its variants' names (each at its latest version)."""

    name: str
    id: str
    created_at: datetime
    updated_at: datetime
    variants: tuple[str, ...]
    rows: int | None
    repeats: int | None
    status: str


@dataclass(frozen=True, slots=True)
class VariantRow:
    """One version of a variant: ``id`` is 16 hex characters, ``spec`` parsed (``{}`` when none)."""

    id: str
    experiment_id: str
    name: str
    version: int
    fingerprint: str
    spec: dict[str, Any]
    created_at: datetime

    def group_id(self, repeat: int) -> str:
        """The ``group_id`` of this variant's runs for one repeat (0-based)."""
        return group_id(self.id, repeat)


@dataclass(frozen=True, slots=True)
class ScoreRow:
    """One evaluator's score of one run. ``value`` is None when the evaluator errored (never NaN)."""

    experiment_id: str
    run_id: str
    evaluator: str
    evaluator_fingerprint: str
    variant_id: str | None = None
    row_key: str | None = None
    repeat: int | None = None
    value: float | None = None
    passed: bool | None = None
    reason: str | None = None
    error: str | None = None
    judge_run_id: str | None = None
    created_at: datetime | None = None  # set when stored


class CellScore(TypedDict):
    """One evaluator's score as a cell carries it."""

    value: float | None
    passed: bool | None
    reason: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class CellRow:
    """One (data row, variant version, repeat) of an experiment: its latest run and that run's scores.

    ``text`` is the run's first :data:`CELL_TEXT` characters; ``error`` is the run's stored error text
    (surfaces that face API callers show ``error_type``/``error_status`` instead). ``scores`` maps each
    evaluator's name to its score.
    """

    run_id: str
    variant: str
    variant_id: str
    version: int
    repeat: int | None
    row_key: str
    status: str | None
    text: str
    error: str | None
    error_type: str | None
    error_status: int | None
    cost_usd: float | None
    latency_ms: float | None
    tokens_in: int | None
    tokens_out: int | None
    scores: dict[str, CellScore]


def group_id(variant_id: str, repeat: int) -> str:
    """``exp-<variant id>-r<repeat>``: the ``group_id`` of a variant's runs for one repeat (0-based)."""
    return f"exp-{variant_id}-r{int(repeat)}"


def judge_group_id(experiment_id: str, evaluator_fingerprint: str) -> str:
    """``eval-<experiment id>-<evaluator fingerprint>``: the ``group_id`` of one judge's runs."""
    return f"eval-{experiment_id}-{evaluator_fingerprint}"


def latest(found: Iterable[VariantRow]) -> list[VariantRow]:
    """The latest version of each variant name, in the order the names first appear in ``found``."""
    out: dict[str, VariantRow] = {}
    for v in found:
        if v.name not in out or v.version > out[v.name].version:
            out[v.name] = v
    return list(out.values())


# ---------------------------------------------------------------------------------------------------
# Conversion
# ---------------------------------------------------------------------------------------------------
def _json(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    try:
        data = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _time(value: Any) -> datetime:
    return _rows.timestamp(value)


def _real(value: Any) -> float | None:
    """A finite float, or None (NULL, NaN and infinities are not scores or measures one can average)."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _whole(value: Any) -> int | None:
    return None if value is None else int(value)


def _text(value: str | None) -> str | None:
    """Free text as stored: secrets redacted, bounded to :data:`MAX_TEXT` characters."""
    if value is None:
        return None
    text = secrets.redact(str(value))
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _experiment(row: Sequence[Any]) -> ExperimentRow:
    id_, name, created, updated, status, n_rows, repeats, config = row
    return ExperimentRow(id=id_, name=name, created_at=_time(created), updated_at=_time(updated),
                         status=status, rows=_whole(n_rows), repeats=_whole(repeats), config=_json(config))  # fmt: skip


_EXPERIMENT_COLUMNS = "id, name, created_at, updated_at, status, rows, repeats, config"
_VARIANT_COLUMNS = "id, experiment_id, name, version, fingerprint, spec, created_at"
_SCORE_COLUMNS = ("experiment_id", "run_id", "evaluator", "evaluator_fingerprint", "variant_id", "row_key",
                  "repeat", "value", "passed", "reason", "error", "judge_run_id", "created_at")  # fmt: skip


def _variant(row: Sequence[Any]) -> VariantRow:
    id_, experiment_id, name, version, fingerprint, spec, created = row
    return VariantRow(id=id_, experiment_id=experiment_id, name=name, version=int(version),
                      fingerprint=fingerprint, spec=_json(spec), created_at=_time(created))  # fmt: skip


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 200 or _CONTROL.search(name):
        raise BadParameterError(
            f"An experiment name is 1 to 200 printable characters, got {name!r}; pass name='my-experiment'.",
            field="name",
        )
    return name


def _check_status(status: str) -> str:
    if status not in STATUSES:
        raise BadParameterError(
            f"status must be one of {', '.join(STATUSES)}; got {status!r}.", field="status"
        )
    return status


def _safe_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A variant's spec as stored: every string redacted, its params without per-call options or keys."""
    clean = secrets.scrub(dict(spec), names=False)
    if isinstance(spec.get("params"), dict):
        clean["params"] = _rows.safe_params(spec["params"])
    return clean if isinstance(clean, dict) else {}


# ---------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------
def upsert_experiment(
    name: str, rows: int | None, repeats: int | None, config: dict[str, Any], status: str = "running"
) -> ExperimentRow:
    """The experiment named ``name`` (created when new), with its rows, repeats, config and status set now."""
    _check_name(name)
    _check_status(status)
    stored_config = _dump(secrets.scrub(dict(config or {}), names=False))
    now = datetime.now(UTC)
    with db.connect(write=True) as con:
        con.execute("BEGIN TRANSACTION")
        found = con.execute("SELECT id FROM experiments WHERE name = ?", [name]).fetchone()
        if found is None:
            con.execute(f"INSERT INTO experiments ({_EXPERIMENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [uuid.uuid4().hex, name, now, now, status, rows, repeats, stored_config])  # fmt: skip
        else:
            con.execute(
                "UPDATE experiments SET rows = ?, repeats = ?, config = ?, status = ?, updated_at = ? "
                "WHERE id = ?",
                [rows, repeats, stored_config, status, now, found[0]],
            )
        row = con.execute(f"SELECT {_EXPERIMENT_COLUMNS} FROM experiments WHERE name = ?", [name]).fetchone()
        con.execute("COMMIT")
    return _experiment(row)


def set_status(experiment_id: str, status: str) -> None:
    """Set an experiment's status (and its ``updated_at``)."""
    _check_status(status)
    with db.connect(write=True) as con:
        con.execute("UPDATE experiments SET status = ?, updated_at = ? WHERE id = ?",
                    [status, datetime.now(UTC), experiment_id])  # fmt: skip


def variant(experiment_id: str, name: str, fingerprint: str, spec: dict[str, Any]) -> VariantRow:
    """The version of variant ``name`` with this ``fingerprint``, or a new one (the highest version + 1).

    Changing a variant under the same name is a new version: earlier versions and their runs stay. Going
    back to an earlier fingerprint finds that earlier version again.
    """
    if not isinstance(name, str) or not name or _CONTROL.search(name):
        raise BadParameterError(f"A variant name is printable text, got {name!r}.", field="variants")
    with db.connect(write=True) as con:
        con.execute("BEGIN TRANSACTION")
        found = con.execute(
            f"SELECT {_VARIANT_COLUMNS} FROM experiment_variants WHERE experiment_id = ? AND name = ? "
            "AND fingerprint = ? ORDER BY version DESC LIMIT 1",
            [experiment_id, name, fingerprint],
        ).fetchone()
        if found is None:
            top = con.execute(
                "SELECT max(version) FROM experiment_variants WHERE experiment_id = ? AND name = ?",
                [experiment_id, name],
            ).fetchone()[0]
            version = int(top or 0) + 1
            vid = hashlib.sha256(f"{experiment_id}\x00{name}\x00{version}".encode()).hexdigest()[:16]
            con.execute(f"INSERT INTO experiment_variants ({_VARIANT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [vid, experiment_id, name, version, fingerprint, _dump(_safe_spec(spec)),
                         datetime.now(UTC)])  # fmt: skip
            found = con.execute(f"SELECT {_VARIANT_COLUMNS} FROM experiment_variants WHERE id = ?",
                                [vid]).fetchone()  # fmt: skip
        con.execute("COMMIT")
    return _variant(found)


def _score_values(score: ScoreRow, now: datetime) -> list[Any]:
    return [score.experiment_id, score.run_id, score.evaluator, score.evaluator_fingerprint, score.variant_id,
            score.row_key, _whole(score.repeat), _real(score.value),
            None if score.passed is None else bool(score.passed), _text(score.reason), _text(score.error),
            score.judge_run_id, score.created_at or now]  # fmt: skip


def record_scores(scores: Sequence[ScoreRow]) -> None:
    """Store scores in one transaction; a score for a (run, evaluator fingerprint) already stored is replaced.

    Callers batch (a few hundred per call). Reasons and errors are scrubbed of secrets and bounded;
    a NaN or infinite value is stored as NULL. Within one call the last score for a key wins.
    """
    if not scores:
        return
    now = datetime.now(UTC)
    unique = {(s.run_id, s.evaluator_fingerprint): s for s in scores}
    values = [_score_values(s, now) for s in unique.values()]
    for s in unique.values():
        if not s.run_id or not s.evaluator or not s.evaluator_fingerprint or not s.experiment_id:
            raise BadParameterError(f"A score needs experiment_id, run_id, evaluator and evaluator_fingerprint; "
                                    f"got {s!r}.", field="scores")  # fmt: skip
        if s.repeat is not None and not 0 <= int(s.repeat) < 2**31:
            raise BadParameterError(f"A score's repeat is 0 to 2**31 - 1, got {s.repeat!r}.", field="scores")
    table = _arrow(values) if len(values) > 20 else None
    with db.connect(write=True) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            _insert_scores(con, values, table)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise


def _arrow(values: list[list[Any]]) -> Any:
    """The scores as one Arrow table (DuckDB scans it ~3x faster than VALUES), or None where pyarrow cannot
    load (at interpreter exit)."""
    try:
        import pyarrow as pa

        types = {"repeat": pa.int32(), "value": pa.float64(), "passed": pa.bool_(),
                 "created_at": pa.timestamp("us", tz="UTC")}  # fmt: skip
        schema = pa.schema([(c, types.get(c, pa.string())) for c in _SCORE_COLUMNS])
        columns = list(zip(*values, strict=True))
        return pa.Table.from_arrays([pa.array(col, type=f.type) for col, f in zip(columns, schema, strict=True)],
                                    schema=schema)  # fmt: skip
    except RuntimeError:
        return None


def _insert_scores(con: Any, values: list[list[Any]], table: Any) -> None:
    cols = ", ".join(_SCORE_COLUMNS)
    if table is not None:
        con.register("_nbp_scores", table)
        try:
            con.execute(f"INSERT OR REPLACE INTO scores ({cols}) SELECT {cols} FROM _nbp_scores")
        finally:
            con.unregister("_nbp_scores")
        return
    one = "(" + ", ".join("?" * len(_SCORE_COLUMNS)) + ")"
    for i in range(0, len(values), 100):  # 100 rows (1,300 parameters) a statement
        chunk = values[i : i + 100]
        con.execute(f"INSERT OR REPLACE INTO scores ({cols}) VALUES {', '.join([one] * len(chunk))}",
                    [v for row in chunk for v in row])  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------
def get_experiment(name_or_id: str) -> ExperimentRow | None:
    """The experiment with this name, or else this id; None when there is none."""
    with db.connect(write=False) as con:
        found = con.execute(
            f"SELECT {_EXPERIMENT_COLUMNS} FROM experiments WHERE name = ? OR id = ? "
            "ORDER BY (name = ?) DESC LIMIT 1",
            [name_or_id, name_or_id, name_or_id],
        ).fetchone()
    return None if found is None else _experiment(found)


def list_experiments() -> list[ExperimentSummaryRow]:
    """Every experiment, most recently updated first."""
    with db.connect(write=False) as con:
        found = con.execute(
            f"SELECT {_EXPERIMENT_COLUMNS} FROM experiments ORDER BY updated_at DESC, name"
        ).fetchall()
        names: dict[str, list[str]] = {}
        for experiment_id, name in con.execute(
            "SELECT experiment_id, name FROM experiment_variants GROUP BY experiment_id, name "
            "ORDER BY experiment_id, min(created_at), name"
        ).fetchall():
            names.setdefault(experiment_id, []).append(name)
    out = []
    for row in found:
        e = _experiment(row)
        out.append(ExperimentSummaryRow(name=e.name, id=e.id, created_at=e.created_at, updated_at=e.updated_at,
                                        variants=tuple(names.get(e.id, ())), rows=e.rows, repeats=e.repeats,
                                        status=e.status))  # fmt: skip
    return out


def variants(experiment_id: str) -> list[VariantRow]:
    """Every version of every variant of an experiment, by name (in the order they were first made), then version."""
    with db.connect(write=False) as con:
        found = con.execute(
            f"SELECT {_VARIANT_COLUMNS} FROM experiment_variants v WHERE experiment_id = ? ORDER BY "
            "(SELECT min(created_at) FROM experiment_variants w WHERE w.experiment_id = v.experiment_id "
            "AND w.name = v.name), name, version",
            [experiment_id],
        ).fetchall()
    return [_variant(r) for r in found]


def _score(row: Sequence[Any]) -> ScoreRow:
    d = dict(zip(_SCORE_COLUMNS, row, strict=True))
    return ScoreRow(**{**d, "repeat": _whole(d["repeat"]), "value": _real(d["value"]),
                       "created_at": _time(d["created_at"])})  # fmt: skip


def scores(experiment_id: str, variant_ids: Sequence[str] | None = None) -> list[ScoreRow]:
    """An experiment's scores (of the given variant versions, or all), by variant, row, repeat and evaluator."""
    where, args = "experiment_id = ?", [experiment_id]
    if variant_ids is not None:
        if not variant_ids:
            return []
        where += f" AND variant_id IN ({', '.join('?' * len(variant_ids))})"
        args += list(variant_ids)
    with db.connect(write=False) as con:
        found = con.execute(f"SELECT {', '.join(_SCORE_COLUMNS)} FROM scores WHERE {where} "
                            "ORDER BY variant_id, row_key, repeat, evaluator, run_id", args).fetchall()  # fmt: skip
    return [_score(r) for r in found]


def score_keys(experiment_id: str, include_errors: bool = True) -> set[tuple[str, str]]:
    """``(run_id, evaluator_fingerprint)`` of every score stored for an experiment: what resume skips.

    ``include_errors=False`` leaves out scores whose evaluator errored (to score those again).
    """
    clause = "" if include_errors else " AND error IS NULL"
    with db.connect(write=False) as con:
        found = con.execute(f"SELECT run_id, evaluator_fingerprint FROM scores WHERE experiment_id = ?{clause}",
                            [experiment_id]).fetchall()  # fmt: skip
    return {(r[0], r[1]) for r in found}


def _variant_ids(experiment_id: str, variant_ids: Sequence[str] | None) -> list[str]:
    if variant_ids is None:
        return [v.id for v in latest(variants(experiment_id))]
    return [v for v in variant_ids if _VARIANT_ID.match(v)]


def cells_query(variant_ids: Sequence[str]) -> tuple[str, list[Any]]:
    """SQL (a SELECT) of the cells of these variant versions, and its arguments.

    A cell is the latest run of each (variant version, repeat, row key). Columns: run_id, variant_id,
    variant, version, repeat, row_key, status, text (first :data:`CELL_TEXT` characters), error, error_type,
    error_status, cost_usd, latency_ms, tokens_in, tokens_out. Runs are matched by the variant id their
    ``group_id`` holds, filtered before the latest run is picked (so other experiments' runs are never
    ranked) and joined by hash (a LIKE join would test every run against every variant).
    """
    marks = ", ".join("?" * len(variant_ids))
    query = f"""
        SELECT c.id AS run_id, v.id AS variant_id, v.name AS variant, v.version,
               TRY_CAST(substr(c.group_id, 23) AS INTEGER) AS repeat, c.row_key, c.status,
               left(coalesce(c.text, ''), {CELL_TEXT}) AS text, c.error, c.error_type, c.error_status,
               c.cost_usd, c.latency_ms, c.tokens_in, c.tokens_out
        FROM (
            SELECT id, group_id, row_key, status, text, error, error_type, error_status, cost_usd, latency_ms,
                   tokens_in, tokens_out
            FROM runs
            WHERE starts_with(group_id, 'exp-') AND substr(group_id, 21, 2) = '-r' AND row_key IS NOT NULL
              AND substr(group_id, 5, 16) IN ({marks})
            QUALIFY row_number() OVER (PARTITION BY group_id, row_key ORDER BY created_at DESC, id DESC) = 1
        ) c
        JOIN experiment_variants v ON substr(c.group_id, 5, 16) = v.id
    """
    return query, list(variant_ids)


#: Cells in data-row order as far as the keys tell it: numeric keys by value, then the rest as text.
_CELL_ORDER = ("TRY_CAST(split_part(row_key, '~', 1) AS BIGINT) NULLS LAST, row_key, variant, version, "
               "repeat, run_id")  # fmt: skip


def current_fingerprints(experiment: ExperimentRow) -> set[str]:
    """The fingerprints of the evaluators an experiment's config lists (its current evaluators)."""
    evaluators = experiment.config.get("evaluators")
    if not isinstance(evaluators, list):
        return set()
    return {str(e["fingerprint"]) for e in evaluators if isinstance(e, dict) and e.get("fingerprint")}


def pick_scores(found: Iterable[Sequence[Any]], current: set[str]) -> dict[str, dict[str, CellScore]]:
    """Rows of (run_id, evaluator, fingerprint, value, passed, reason, error, created_at) as run -> name -> score.

    ``current`` (the config's evaluator fingerprints, see :func:`current_fingerprints`): only their scores
    count; when empty (no config), an evaluator name scored under several fingerprints shows the newest.
    """
    best: dict[tuple[str, str], tuple[datetime, CellScore]] = {}
    for run_id, name, fingerprint, value, passed, reason, error, created in found:
        if current and fingerprint not in current:
            continue  # an earlier version of an evaluator: kept in the store, not shown
        rank = _time(created)
        key = (run_id, name)
        if key not in best or rank > best[key][0]:
            score = CellScore(value=_real(value), passed=passed, reason=reason, error=error)
            best[key] = (rank, score)
    out: dict[str, dict[str, CellScore]] = {}
    for (run_id, name), (_, score) in best.items():
        out.setdefault(run_id, {})[name] = score
    return out


def cells(experiment_id: str, variant_ids: Sequence[str] | None = None, limit: int = 100,
          offset: int = 0) -> tuple[list[CellRow], int]:  # fmt: skip
    """One page of an experiment's cells (the latest variant versions unless ``variant_ids`` names others),
    ordered by row key, variant and repeat, with each run's scores; and how many cells there are in all."""
    experiment = _by_id(experiment_id)
    current = current_fingerprints(experiment) if experiment is not None else set()
    ids = _variant_ids(experiment_id, variant_ids)
    if not ids:
        return [], 0
    query, args = cells_query(ids)
    queries._before_read()  # this process's runs not stored yet are part of the experiment too
    with queries._reader() as con:
        total = int(con.execute(f"SELECT count(*) FROM ({query})", args).fetchone()[0])
        page = con.execute(f"SELECT * FROM ({query}) ORDER BY {_CELL_ORDER} LIMIT ? OFFSET ?",
                           [*args, max(0, int(limit)), max(0, int(offset))])  # fmt: skip
        names = [d[0] for d in page.description]
        found = [dict(zip(names, r, strict=True)) for r in page.fetchall()]
        run_ids = [r["run_id"] for r in found]
        by_run = pick_scores(con.execute(
            "SELECT run_id, evaluator, evaluator_fingerprint, value, passed, reason, error, created_at FROM scores "
            f"WHERE experiment_id = ? AND run_id IN ({', '.join('?' * len(run_ids))})", [experiment_id, *run_ids],
        ).fetchall() if run_ids else [], current)  # fmt: skip
    out = [
        CellRow(run_id=r["run_id"], variant=r["variant"], variant_id=r["variant_id"], version=int(r["version"]),
                repeat=_whole(r["repeat"]), row_key=r["row_key"], status=r["status"], text=r["text"] or "",
                error=r["error"], error_type=r["error_type"], error_status=_whole(r["error_status"]),
                cost_usd=_real(r["cost_usd"]), latency_ms=_real(r["latency_ms"]), tokens_in=_whole(r["tokens_in"]),
                tokens_out=_whole(r["tokens_out"]), scores=by_run.get(r["run_id"], {}))
        for r in found
    ]  # fmt: skip
    return out, total


def _by_id(experiment_id: str) -> ExperimentRow | None:
    with db.connect(write=False) as con:
        found = con.execute(
            f"SELECT {_EXPERIMENT_COLUMNS} FROM experiments WHERE id = ?", [experiment_id]
        ).fetchone()
    return None if found is None else _experiment(found)


__all__ = [
    "CELL_TEXT", "MAX_TEXT", "STATUSES", "CellRow", "CellScore", "ExperimentRow", "ExperimentSummaryRow",
    "ScoreRow", "VariantRow", "cells", "cells_query", "current_fingerprints", "get_experiment", "group_id",
    "judge_group_id", "latest", "list_experiments", "pick_scores", "record_scores", "score_keys",
    "scores", "set_status", "upsert_experiment", "variant", "variants",
]  # fmt: skip
