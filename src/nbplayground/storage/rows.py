"""Rows of the ``runs`` table: what a finished run becomes, made storable before anything is written.

A run becomes a row once (:func:`to_row`): media bytes go to files, secrets go nowhere, and every value
is made something DuckDB accepts, whatever a provider or a caller put in the result:

- text: lone surrogates (an emoji split across stream chunks, ``"bad \\ud800"``) become U+FFFD and a
  split pair is joined again; NUL is kept (DuckDB's VARCHAR holds it, JSON escapes it);
- integers outside BIGINT, NaN and infinite floats, and "numbers" that are not numbers become NULL;
- anything else is stringified (JSON columns: converted as far as possible, else described).

Rows read back from journal and pending files go through the same repair (:func:`from_json`).
:func:`insert` writes rows in one statement (an Arrow scan for batches, plain parameterized VALUES for a
few rows and at interpreter exit, when DuckDB refuses to scan Python objects); :func:`insert_robust`
retries a failing batch in halves down to the single row, so a row DuckDB still refuses comes back to
be quarantined and never blocks the others.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from nbplayground.core import secrets
from nbplayground.core.types import jsonable, new_id

Row = tuple[Any, ...]

COLUMNS = (
    "id", "created_at", "surface", "provider", "model", "kind", "status", "error", "error_type", "text",
    "data", "tool_calls", "media", "messages", "params", "variables", "template", "prompt_ref", "tokens_in",
    "tokens_out", "cost_usd", "latency_ms", "ttft_ms", "finish_reason", "thread_id", "parent_id", "group_id",
    "target_index", "attempts", "row_key", "error_status", "reasoning", "error_detail", "tokens_estimated",
)  # fmt: skip
JSON_COLUMNS = frozenset({"data", "tool_calls", "media", "messages", "params", "variables", "template"})
INT_COLUMNS = frozenset({"tokens_in", "tokens_out", "target_index", "attempts", "error_status"})
FLOAT_COLUMNS = frozenset({"cost_usd", "latency_ms", "ttft_ms"})
BOOL_COLUMNS = frozenset({"tokens_estimated"})
_INSERT = f"INSERT OR IGNORE INTO runs ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} FROM _nbp_batch"
#: Batches up to this size are inserted with plain VALUES: building Arrow arrays costs more for a few rows.
PLAIN_MAX = 16
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1  # BIGINT (migration 0006 widened the counts)


# ---------------------------------------------------------------------------------------------------
# Values DuckDB accepts
# ---------------------------------------------------------------------------------------------------
def describe(value: Any) -> str:
    """A short text for a value that cannot be stored as itself (its repr, or its type if even that fails)."""
    try:
        return repr(value)[:2000]
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def text(value: Any) -> str | None:
    """A string DuckDB (and UTF-8) can hold: surrogate halves repaired, other types stringified."""
    if value is None:
        return None
    s: str
    if type(value) is str:
        s = value
    else:
        try:
            s = str(value)
        except Exception:
            s = describe(value)
    if s.isascii():  # the common case: a C loop, no copy
        return s
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        # Through UTF-16, a split surrogate pair becomes its character again; a lone half becomes U+FFFD.
        return s.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def integer(value: Any) -> int | None:
    """An int that fits BIGINT, or None (too large, NaN, infinite, or not a number at all)."""
    if value is None:
        return None
    if type(value) is not int:
        try:
            value = int(value)  # bools, numpy ints, "12", 3.0; NaN, inf and "abc" raise
        except (TypeError, ValueError, OverflowError, ArithmeticError):
            return None
        except Exception:
            return None
    return value if _INT_MIN <= value <= _INT_MAX else None


def number(value: Any) -> float | None:
    """A finite float, or None."""
    if value is None:
        return None
    try:
        value = float(value)
    except Exception:  # a huge int (OverflowError), a word, an object
        return None
    return value if math.isfinite(value) else None


def timestamp(value: Any) -> datetime:
    """An aware UTC datetime (a naive one is taken as UTC); anything unusable becomes now."""
    try:
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if isinstance(value, datetime):
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except Exception:
        pass
    return datetime.now(UTC)


def _default(value: Any) -> Any:
    """What json.dumps cannot encode itself: pydantic models, bytes, sets, datetimes..."""
    converted = jsonable(value)
    if converted is value:
        return str(value)
    return converted


#: ``json.dumps(..., ensure_ascii=False, default=...)`` builds an encoder at every call; these are made once
#: (an encoder keeps no state between calls) for the few dumps every stored run makes.
_ENCODE = json.JSONEncoder(ensure_ascii=False, default=_default).encode
_ENCODE_LINE = json.JSONEncoder(ensure_ascii=False, default=str).encode


def dump(value: Any) -> str | None:
    """JSON text of a value, never raising: converted as far as possible, else described."""
    if value is None:
        return None
    try:  # plain data (the common case) serialises directly: no Python-level walk over it first
        return _ENCODE(value)
    except Exception:  # ValueError, TypeError (non-string keys), RecursionError, a failing model_dump...
        pass
    try:
        return json.dumps(jsonable(value), ensure_ascii=False, default=str)
    except Exception:  # a cycle, say: keep the run, describe the value
        return json.dumps({"unserializable": describe(value)}, ensure_ascii=False)


def json_text(value: Any) -> str | None:
    """A JSON column's value: JSON text with repaired strings (a value that is not text is dumped)."""
    if value is None:
        return None
    return text(value if isinstance(value, str) else dump(value))


def _flag(value: Any) -> bool | None:
    return None if value is None else value in (True, 1, "true", "True", "1")


def _converter(col: str) -> Callable[[Any], Any]:
    if col == "created_at":
        return timestamp
    if col in INT_COLUMNS:
        return integer
    if col in FLOAT_COLUMNS:
        return number
    if col in BOOL_COLUMNS:
        return _flag
    return json_text if col in JSON_COLUMNS else text


#: Each column with what makes its value storable (chosen once, not per column of every row).
_CONVERTERS = tuple((col, _converter(col)) for col in COLUMNS)


def storable(values: Mapping[str, Any]) -> Row:
    """The row of column values, each made storable (see the module docstring); ``id`` is required."""
    get = values.get
    out = [convert(get(col)) for col, convert in _CONVERTERS]
    if not out[0]:
        out[0] = new_id()  # a result without an id still gets stored, under a fresh one
    return tuple(out)


# ---------------------------------------------------------------------------------------------------
# Secrets: the engine strips per-call options already; this is the second line of defence.
# ---------------------------------------------------------------------------------------------------
#: Connection settings dropped from stored params at any depth (not secret by name, but never history).
DROP_KEYS = frozenset({"api_base", "base_url", "extra_headers", "headers", "timeout", "organization",
                       "api_version", "proxy", "proxies"})  # fmt: skip


def safe_params(params: dict[str, Any]) -> dict[str, Any]:
    """Params without per-call options or anything that could hold a secret, at any depth.

    Drops ``api_key``, ``api_base``, ``extra_headers``, ``timeout`` and any field whose name says it holds
    a key, token (but keeps ``max_tokens``-style counts), secret, password or authorization; values that
    look like an API key or bearer token are redacted (see :mod:`nbplayground.core.secrets`).
    """
    # scrub copies a dict into a dict (it is typed Any because it walks any nested data)
    return cast("dict[str, Any]", secrets.scrub(dict(params or {}), drop=DROP_KEYS))


def _clean(red: secrets.Redactor, value: Any, **kw: Any) -> Any:
    if value is None:
        return None
    try:
        return red.scrub(value, **kw)
    except RecursionError:  # nested deeper than Python recurses: keep the run, not the value
        return {"unserializable": "nested too deeply to store"}


#: The template stored last, the redactor that cleaned it, and its JSON: the runs of a batch share one
#: template object (see ``runner._template_info``), so its JSON is made once (~13 µs a run saved). Templates
#: are never changed in place.
_last_template: tuple[Any, secrets.Redactor, str | None] | None = None


def _template_json(red: secrets.Redactor, value: Any) -> str | None:
    global _last_template
    last = _last_template
    if last is not None and last[0] is value and last[1] is red:
        return last[2]
    out = _dump_clean(red, value)
    _last_template = (value, red, out)
    return out


def _dump_clean(red: secrets.Redactor, value: Any) -> str | None:
    """JSON of a value with its secrets redacted: one scan over the JSON text, the data walked only if needed."""
    out = dump(value)
    if out is None:
        return None
    clean = red.redact_json(out)
    return clean if clean is not None else dump(_clean(red, value, names=False))


# ---------------------------------------------------------------------------------------------------
# Media
# ---------------------------------------------------------------------------------------------------
_MEDIA_EXT = {
    "image/png": "png", "image/jpeg": "jpg", "image/jpg": "jpg", "image/webp": "webp", "image/gif": "gif",
    "image/svg+xml": "svg", "audio/wav": "wav", "audio/x-wav": "wav", "audio/wave": "wav",
    "audio/mpeg": "mp3", "audio/mp3": "mp3", "audio/ogg": "ogg", "audio/flac": "flac", "audio/aac": "aac",
    "audio/webm": "webm", "audio/mp4": "m4a", "audio/pcm": "pcm",
}  # fmt: skip


def media_extension(mime: str) -> str:
    """File extension for a media type (``bin`` when unknown)."""
    return _MEDIA_EXT.get(mime.split(";", 1)[0].strip().lower(), "bin")


def write_private(path: Path, data: bytes) -> None:
    """Write a new file only its owner may read: prompts, answers and media are private (see config.home)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    except BaseException:
        try:  # a disk that filled up mid-write: no half file stays behind
            path.unlink()
        except OSError:
            pass
        raise


def _write_file(folder: Path, name: str, data: bytes) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = folder / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
    write_private(tmp, data)
    tmp.replace(folder / name)  # never a half-written file under the final name


def _media_refs(
    result: Any, home: Path, files: bool, fallback: Callable[[], Path | None] | None, problems: list[str]
) -> list[dict[str, Any]]:
    """The media metadata stored with a run; bytes go to ``<home>/media`` first (``Media.path`` is set).

    When the media folder cannot be written, the file goes to the fallback home (its absolute path is
    stored) and ``problems`` says so; when neither can, the metadata is kept without a file.
    """
    refs = []
    for i, m in enumerate(result.media or ()):
        mime = text(getattr(m, "mime", None)) or "application/octet-stream"
        data = getattr(m, "data", b"") or b""
        if not isinstance(data, bytes | bytearray | memoryview):
            data = text(data).encode("utf-8")  # type: ignore[union-attr]
        if files and getattr(m, "path", None) is None and data:
            name = f"{text(result.id)}-{i}.{media_extension(mime)}"
            try:
                _write_file(home / "media", name, bytes(data))
                m.path = f"media/{name}"
            except OSError as exc:
                where = fallback() if fallback is not None else None
                if where is not None:
                    try:
                        _write_file(where / "media", name, bytes(data))
                        m.path = str(where / "media" / name)
                        problems.append(f"could not write the media of run {result.id} under {home / 'media'} "
                                        f"({exc}); it is in {where / 'media'} instead")  # fmt: skip
                    except OSError:
                        pass
                if getattr(m, "path", None) is None:
                    problems.append(f"could not write the media of run {result.id} under {home / 'media'} "
                                    f"({exc}); the run is stored without its media file")  # fmt: skip
        refs.append({"mime": mime, "path": getattr(m, "path", None), "size": len(data),
                     "params": jsonable(getattr(m, "params", None) or {}),
                     "revised_prompt": getattr(m, "revised_prompt", None)})  # fmt: skip
    return refs


# ---------------------------------------------------------------------------------------------------
# A run becomes a row
# ---------------------------------------------------------------------------------------------------
def to_row(
    result: Any,
    home: Path,
    media_files: bool = True,
    *,
    fallback: Callable[[], Path | None] | None = None,
    problems: list[str] | None = None,
) -> Row:
    """The ``runs`` row of a result, storable as it is: never raises, whatever the result holds.

    Media bytes go to files (``Media.path`` is set; see :func:`_media_refs`), secrets go nowhere: every
    stored text (answer, error, messages, variables, data, tool calls, template) is redacted with
    :mod:`nbplayground.core.secrets`; params and variables also lose fields whose name says they hold a
    key, and such values are redacted wherever else they appear in the run. A field that cannot be
    converted is stored as its description. ``media_files=False`` records media metadata without files.
    """
    sink = [] if problems is None else problems
    red = secrets.redactor()
    get = getattr

    def guard(col: str, make: Callable[[], Any]) -> Any:
        try:
            return make()
        except Exception:  # anything at all in a result field: store what can be said about it
            value = get(result, col, None)
            return dump({"unserializable": red.redact(describe(value))}) if col in JSON_COLUMNS else (
                red.redact(describe(value)))  # fmt: skip

    found: list[str] = []

    def params_of() -> Any:
        value = get(result, "params", None) or {}
        return _clean(red, dict(value) if isinstance(value, Mapping) else value, drop=DROP_KEYS, found=found)

    params = guard("params", params_of)
    variables = guard("variables", lambda: _clean(red, get(result, "variables", None), found=found))
    if found:  # a variable such as cfg.openai_key: its value is a secret in the prompt and answer too
        red = red.with_values(found)
        variables = guard("variables", lambda: _clean(red, get(result, "variables", None)))

    def redacted(col: str) -> Any:
        value = get(result, col, None)
        if not value:
            return value
        cleaned = value if type(value) is str else text(value)
        return red.redact(cleaned) if cleaned is not None else None

    def tool_calls() -> Any:
        calls = get(result, "tool_calls", None)
        if not calls:
            return None
        return _dump_clean(red, [t.to_dict() if hasattr(t, "to_dict") else t for t in calls])

    def media() -> Any:
        if not get(result, "media", None):
            return None
        return _dump_clean(red, _media_refs(result, home, media_files, fallback, sink))

    values = {
        "id": get(result, "id", None), "created_at": get(result, "created_at", None),
        "surface": get(result, "surface", None), "provider": get(result, "provider", None),
        "model": get(result, "model", None), "kind": get(result, "kind", None),
        "status": get(result, "status", None),
        "error": guard("error", lambda: redacted("error")), "error_type": get(result, "error_type", None),
        "text": guard("text", lambda: redacted("text")),
        "data": guard("data", lambda: _dump_clean(red, get(result, "data", None))),
        "tool_calls": guard("tool_calls", tool_calls), "media": guard("media", media),
        "messages": guard("messages", lambda: _dump_clean(red, get(result, "messages", None))),
        "params": dump(params), "variables": dump(variables),
        "template": guard("template", lambda: _template_json(red, get(result, "template", None))),
        "prompt_ref": get(result, "prompt_ref", None),
        "tokens_in": get(result, "tokens_in", None), "tokens_out": get(result, "tokens_out", None),
        "cost_usd": get(result, "cost_usd", None), "latency_ms": get(result, "latency_ms", None),
        "ttft_ms": get(result, "ttft_ms", None), "finish_reason": get(result, "finish_reason", None),
        "thread_id": get(result, "thread_id", None), "parent_id": get(result, "parent_id", None),
        "group_id": get(result, "group_id", None), "target_index": get(result, "target_index", None),
        "attempts": get(result, "attempts", None), "row_key": get(result, "row_key", None),
        "error_status": get(result, "error_status", None),
        "reasoning": guard("reasoning", lambda: redacted("reasoning")),
        "error_detail": guard("error_detail", lambda: redacted("error_detail")),
        "tokens_estimated": get(result, "tokens_estimated", None),
    }  # fmt: skip
    return storable(values)


# ---------------------------------------------------------------------------------------------------
# Rows as JSON lines (journal, pending and quarantine files)
# ---------------------------------------------------------------------------------------------------
def to_json(row: Row) -> str:
    """One JSON line (without the newline) for a storable row."""
    out = dict(zip(COLUMNS, row, strict=True))
    out["created_at"] = out["created_at"].isoformat()
    return _ENCODE_LINE(out)


def from_json(line: str) -> Row:
    """The storable row of a JSON line; ``ValueError`` when the line is not a run (not JSON, no id)."""
    data = json.loads(line)
    if not isinstance(data, dict):
        raise ValueError(f"a line holds a JSON {type(data).__name__}, not a run")
    if not data.get("id"):
        raise ValueError("a line has no run id")
    return storable(data)


# ---------------------------------------------------------------------------------------------------
# Inserting
# ---------------------------------------------------------------------------------------------------
def _arrow_schema() -> Any:
    import pyarrow as pa

    def kind(col: str) -> Any:
        if col == "created_at":
            return pa.timestamp("us", tz="UTC")
        if col in INT_COLUMNS:
            return pa.int64()
        if col in FLOAT_COLUMNS:
            return pa.float64()
        if col in BOOL_COLUMNS:
            return pa.bool_()
        return pa.string()

    return pa.schema([(c, kind(c)) for c in COLUMNS])


def _unique(rows: list[Row]) -> list[Row]:
    """The rows, each id once (the first): a run recorded twice is stored once."""
    if len({row[0] for row in rows}) == len(rows):
        return rows
    return list({row[0]: row for row in reversed(rows)}.values())[::-1]


def _values_sql(n: int) -> str:
    one = "(" + ", ".join("?" * len(COLUMNS)) + ")"
    return f"INSERT INTO runs ({', '.join(COLUMNS)}) VALUES {', '.join([one] * n)}"


def _insert_values(con: Any, rows: list[Row]) -> None:
    """Plain INSERT of the rows whose id is not stored yet (looked up through the primary key index).

    For a few rows this costs half of ``INSERT OR IGNORE``, whose conflict handling alone takes ~3 ms a
    statement (measured). Runs under the store's exclusive lock, so no one inserts in between.
    """
    unique = _unique(rows)
    for i in range(0, len(unique), 100):
        chunk = unique[i : i + 100]
        ids = [row[0] for row in chunk]
        have = {r[0] for r in con.execute(f"SELECT id FROM runs WHERE id IN ({', '.join('?' * len(ids))})",
                                          ids).fetchall()}  # fmt: skip
        chunk = [row for row in chunk if row[0] not in have]
        if chunk:
            con.execute(_values_sql(len(chunk)), [v for row in chunk for v in row])


def insert(con: Any, rows: list[Row], plain: bool = False) -> None:
    """INSERT OR IGNORE rows: one Arrow scan for a batch (executemany costs ~2 ms a row), VALUES for a few.

    ``plain``: VALUES only, as at interpreter exit, where DuckDB refuses to scan Python objects.
    """
    if not rows:
        return
    if plain or len(rows) <= PLAIN_MAX:
        _insert_values(con, rows)
        return
    try:
        import pyarrow as pa

        columns = list(zip(*rows, strict=True))
        schema = _arrow_schema()
        table = pa.Table.from_arrays(
            [pa.array(values, type=field.type) for values, field in zip(columns, schema, strict=True)],
            schema=schema,
        )
    except RuntimeError:  # pyarrow's lazy imports cannot register their atexit hook at exit
        _insert_values(con, rows)
        return
    con.register("_nbp_batch", table)
    try:
        con.execute(_INSERT)
    finally:
        try:  # after a failed INSERT the transaction is aborted: the INSERT's error is the one to report
            con.unregister("_nbp_batch")
        except Exception:
            pass


#: DuckDB errors that are about a row's values (a retry in halves finds the row), not about the store.
_ROW_ERRORS = ("ConversionException", "ConstraintException", "InvalidInputException", "OutOfRangeException",
               "TypeMismatchException", "NotImplementedException")  # fmt: skip


def row_error(exc: BaseException) -> bool:
    """Whether an insert failed because of what some row holds (rather than a locked, full or broken store)."""
    if "shutting down" in str(exc):
        return False
    if isinstance(exc, ValueError | TypeError | OverflowError | UnicodeError):
        return True  # pyarrow's conversions (ArrowInvalid is a ValueError), a value Python cannot encode
    return any(c.__name__ in _ROW_ERRORS for c in type(exc).__mro__)


def _rollback(con: Any) -> None:
    try:
        con.execute("ROLLBACK")
    except Exception:
        pass  # no transaction left to roll back: the original error is the one that matters


def insert_robust(con: Any, rows: list[Row], plain: bool = False) -> list[tuple[Row, str]]:
    """Insert rows in one transaction; if DuckDB refuses the batch for its values, retry it in halves.

    Returns the rows that fail alone, with their error (the caller quarantines them). Errors about the
    store itself (I/O, a full disk, a lock) are raised after the rollback: they are not any row's fault.
    """
    bad: list[tuple[Row, str]] = []

    def attempt(chunk: list[Row]) -> None:
        con.execute("BEGIN TRANSACTION")
        try:
            insert(con, chunk, plain)
            con.execute("COMMIT")
            return
        except Exception as exc:
            _rollback(con)  # first: cleaning up an aborted transaction would hide the real error
            if not row_error(exc):
                raise
            error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if len(chunk) == 1:  # a single row always goes through plain VALUES: it is the row itself
            bad.append((chunk[0], error))
            return
        mid = len(chunk) // 2
        attempt(chunk[:mid])
        attempt(chunk[mid:])

    if not rows:
        return bad
    unique = _unique(rows)
    if not plain and len(unique) <= PLAIN_MAX:
        # The common case, a few new runs: one plain INSERT, committed on its own (one statement is one
        # transaction). Only if DuckDB refuses it (a run stored already, a bad value) the full path runs.
        try:
            con.execute(_values_sql(len(unique)), [v for row in unique for v in row])
            return bad
        except Exception as exc:
            if not row_error(exc):
                raise
    attempt(unique)
    return bad
