"""Run a prompt over a pandas DataFrame: a new column filled by a model, one run per row.

Rows are rendered from ``{{column}}`` placeholders (dot paths reach into dict and JSON-string columns),
scheduled by the engine's AIMD limiter (concurrency is an upper bound that halves on 429s and grows back),
checkpointed to the history as they finish, and written back by position, so rows never shift. Running
the same call again resumes: rows already done come from the store with zero model calls.

A row whose prompt would be made of a missing value (NaN, None, ``pd.NA``, NaT, or a JSON ``null`` reached
by a dot path) is not sent: it gets the status ``skipped`` and its reason, unless ``on_missing`` says
otherwise; so is a row whose rendered prompt is empty. Skipped rows are never stored as done, so the
next run looks at them again.

This module reads the frame and writes the answers back; the arguments become one
:class:`~nbplayground.core.plan.RunSpec`, planned once (:class:`~nbplayground.core.plan.Planner`), and a
:class:`~nbplayground.batchrun.BatchRun` runs its rows.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, cast

import pandas as pd

from nbplayground import frames
from nbplayground.batchrun import BatchRun, Estimate, RowOutcome
from nbplayground.core import errors as E
from nbplayground.core import templating
from nbplayground.core.plan import Origin, Planner, Policy, Rendered, RunSpec, TargetSpec, compose, schema_of
from nbplayground.core.types import KINDS, Media

__all__ = ["Estimate", "PromptAccessor", "run_prompt"]

NOT_RUN = "not run"
ON_MISSING = ("skip", "empty", "error")
DETAIL_FIELDS = ("status", "error", "tokens_in", "tokens_out", "cost_usd", "latency_ms", "run_id")


def run_prompt(
    df: pd.DataFrame,
    column: str,
    *,
    prompt: str | None = None,
    messages: list[dict[str, Any]] | None = None,
    system: str | None = None,
    input: str | None = None,
    model: str | None = None,
    params: dict[str, Any] | None = None,
    kind: str = "chat",
    response_format: Any = None,
    expand: bool = False,
    tools: Iterable[Any] | None = None,
    tool_mode: str = "auto",
    concurrency: int = 8,
    max_attempts: int = 6,
    details: bool = False,
    inplace: bool = False,
    resume: bool = True,
    retry_failed: bool = False,
    estimate: bool = False,
    max_cost: float | None = None,
    progress: bool = True,
    on_missing: Literal["skip", "empty", "error"] = "skip",
) -> Any:
    """Fill ``column`` with a model's answer for every row; see the module docstring.

    ``prompt`` is the user message template, ``messages`` a full template thread, ``input`` the text (or
    audio column, for transcription) of media kinds. Returns a new frame (``inplace=True`` fills ``df``),
    with the batch id in ``out.attrs["nbplayground"]``. ``estimate=True`` returns an :class:`Estimate`.

    Missing values (NaN, None, ``pd.NA``, NaT, a JSON ``null`` under a dot path) in what a row's prompt
    uses are never sent as the text ``nan``/``None``. ``on_missing="skip"`` (the default): the row gets
    ``<column>__status`` ``skipped`` and ``<column>__error`` naming the column and the row, no call is made
    and nothing is charged. ``"empty"``: missing values are rendered as ``""`` and the row is sent.
    ``"error"``: raise :class:`BadParameterError` naming the first missing cells before any call. A row
    whose rendered prompt is empty or whitespace is ``skipped`` too ("the prompt is empty"). Skipped rows
    are counted in ``out.attrs["nbplayground"]["skipped"]`` and are not stored as done: running the call
    again looks at them again.

    Rows are keyed by their index value (``row_key`` in the history); where two rows would share a key
    (duplicate labels, ``1`` and ``"1"``, several NaN) each gets ``#<position>`` after it.
    """
    if not isinstance(column, str) or not column:
        raise E.BadParameterError("Name the new column: run_prompt(df, 'answer', prompt=...).", field="column")
    batch = prepare_batch(
        df, prompt=prompt, messages=messages, system=system, input=input, model=model, params=params, kind=kind,
        response_format=response_format, tools=tools, tool_mode=tool_mode, concurrency=concurrency,
        max_attempts=max_attempts, max_cost=max_cost, progress=progress, on_missing=on_missing,
        signature={"column": column},
    )  # fmt: skip
    results = batch.results
    if resume:
        batch.resume(retry_failed)
    if estimate:
        return batch.estimate()
    info = batch.run()
    out = df if inplace else df.copy()
    _fill(out, column, results, batch.target.kind, response_format, expand, details)
    out.attrs["nbplayground"] = info
    out.attrs["batch_id"] = info["group_id"]
    frames.shown(out)
    if batch.budget is not None and batch.budget.halted is not None:
        warnings.warn(f"{batch.budget.halted} {info['not_run']} rows not run; run the same call again to resume.",
                      stacklevel=2)  # fmt: skip
    return None if inplace else out


def prepare_batch(
    df: pd.DataFrame,
    *,
    prompt: str | None = None,
    messages: list[dict[str, Any]] | None = None,
    system: str | None = None,
    input: str | None = None,
    model: str | None = None,
    params: dict[str, Any] | None = None,
    kind: str = "chat",
    response_format: Any = None,
    tools: Iterable[Any] | None = None,
    tool_mode: str = "auto",
    concurrency: int = 8,
    max_attempts: int = 6,
    max_cost: float | None = None,
    progress: bool | str = True,
    on_missing: Literal["skip", "empty", "error"] = "skip",
    signature: Mapping[str, Any] | None = None,
    group_id: str | None = None,
    surface: str = "dataframe",
    content_keys: bool = False,
    prompt_ref: str | None = None,
    keys_are_parents: bool = False,
) -> BatchRun:
    """A frame's rows as one planned :class:`BatchRun` (not started): what ``run_prompt`` runs, for any
    surface that runs a prompt over a frame (experiments).

    The batch's group is ``group_id``, or named after what was planned, ``signature`` and the data (so the
    same call resumes). Rows are keyed by their index value; ``content_keys`` adds a short hash of the values
    the prompt reads (``key~hash``), so a row whose values changed is a new row; ``keys_are_parents``: the
    frame's index holds run ids, and each row's run is linked to that run (``parent_id``: a judge's verdict
    to the answer it judged). ``progress`` may be the bar's label. Missing values are handled as ``on_missing`` says (see :func:`run_prompt`).
    """
    if not isinstance(df, pd.DataFrame):
        raise E.BadParameterError(f"run_prompt needs a pandas DataFrame, got {type(df).__name__}.", field="df")
    if kind not in KINDS:
        raise E.BadParameterError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}.", field="kind")
    if on_missing not in ON_MISSING:
        choices = ", ".join(map(repr, ON_MISSING))
        raise E.BadParameterError(f"on_missing must be one of {choices}; got {on_missing!r}.", field="on_missing")
    template = compose(prompt, system=system, messages=messages, required=False)
    if kind == "chat" and not template:
        raise E.BadParameterError("Pass prompt='... {{column}} ...' or messages=[...].", field="prompt")
    if kind != "chat" and input is None and prompt is None:
        raise E.BadParameterError(f"kind={kind!r} needs input='{{{{column}}}}' (or prompt= for images).",
                                  field="input")  # fmt: skip
    texts = [m.get("content") for m in template if isinstance(m.get("content"), str)] + [input]
    paths = list(dict.fromkeys(p for t in texts for p in templating.placeholders(t or "")))
    roots = list(dict.fromkeys(name for p in paths for name in (p, templating.root(p))))
    columns = [str(c) for c in df.columns]
    missing = [r for r in roots if r not in columns and templating.root(r) == r]
    if missing:
        raise E.MissingColumnsError(missing, columns, field=f"columns.{missing[0]}")
    used = [r for r in roots if r in columns]
    spec = RunSpec(
        messages=template, input=None if kind == "transcription" else input,  # audio is looked up, not rendered
        targets=[TargetSpec(model, params or {}, response_format, kind)], tools=tuple(tools or ()),
        tool_mode=tool_mode, origin=Origin(surface=surface, prompt_ref=prompt_ref), policy=Policy(max_attempts=max_attempts, stream=False),
    )  # fmt: skip
    planner = Planner(spec)  # resolves the model and splits its parameters, once for every row
    if group_id is None:
        target = planner.targets[0]
        named = json.dumps(
            {**(signature or {}), "template": template, "input": input, "model": target.resolved.name,
             "params": target.split[0], "kind": kind, "schema": schema_of(response_format),
             "tools": [t["function"]["name"] for t in planner.tool_schemas or []], "frame": _fingerprint(df, used)},
            sort_keys=True, default=str,
        )  # fmt: skip
        group_id = "batch-" + hashlib.sha256(named.encode()).hexdigest()[:24]
    planner = planner.regrouped(group_id)
    # the used columns are str: they were picked by name from [str(c) for c in df.columns]
    records = cast("list[dict[str, Any]]", df[used].to_dict("records")) if used else [{} for _ in range(len(df))]
    keys = frames.row_keys(df.index)
    if content_keys:
        series = [df[c] for c in used]  # once: looking a column up per row cost more than hashing the row
        keys = [f"{k}~{_row_hash(series, pos)}" for pos, k in enumerate(keys)]
    gaps = _gaps(df, used, paths, records)
    if gaps and on_missing == "error":
        first = [f"{c!r} at row {keys[pos]} ({v})" for pos in sorted(gaps)[:3] for c, v in gaps[pos]][:3]
        n_cells = sum(len(v) for v in gaps.values())
        raise E.BadParameterError(
            f"Missing values where the prompt reads them: {', '.join(first)} ({n_cells} cells in {len(gaps)} "
            "rows); fill them (df.fillna) or pass on_missing='skip' (the default) or on_missing='empty'.",
            field="on_missing",
        )
    results: list[RowOutcome | None] = [None] * len(df)
    blank: dict[int, dict[str, str]] = {}  # on_missing="empty": the values rendered as ""
    for pos, cells in gaps.items():
        if on_missing == "skip":  # skipped before any lookup of earlier results: never taken as done
            results[pos] = RowOutcome.skipped(_gap_reason(cells, keys[pos]))
        else:
            names = {c for c, _ in cells}
            blank[pos] = {p: "" for p in paths if p in names or templating.root(p) in names}
            blank[pos].update({c: "" for c in names})
    audio = input.strip().strip("{} ") if kind == "transcription" and input else None

    def render(i: int) -> Rendered:
        """A row's messages and input; its ``variables`` are what each placeholder took (what is stored)."""
        row = records[i] if i not in blank else {**records[i], **blank[i]}
        rendered = planner.render(row)
        if audio is not None:  # the audio itself is not a variable worth storing
            value = templating.lookup(row, audio)
            return rendered._replace(input=value.data if isinstance(value, Media) else value)
        return rendered

    return BatchRun(planner, keys, render, results, has_input=input is not None, concurrency=concurrency,
                    max_cost=max_cost, progress=progress, keys_are_parents=keys_are_parents)  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Reading the frame
# --------------------------------------------------------------------------------------------------
def _fingerprint(df: pd.DataFrame, columns: list[str]) -> str:
    h = hashlib.sha256()
    try:
        h.update(pd.util.hash_pandas_object(df.index, index=False).to_numpy().tobytes())
    except (TypeError, ValueError):  # an object index mixing tuples, numbers and text
        h.update(json.dumps([[type(k).__name__, frames.row_key(k)] for k in df.index]).encode())
    for col in columns:
        h.update(col.encode())
        try:
            h.update(pd.util.hash_pandas_object(df[col], index=False).to_numpy().tobytes())
        except (TypeError, ValueError):  # unhashable cells (dicts, lists): hash their JSON
            h.update(json.dumps(df[col].tolist(), default=str, sort_keys=True).encode())
    return h.hexdigest()


def _row_hash(series: list[pd.Series], pos: int) -> str:
    """A short hash of the values a row's prompt reads (the ``series`` of its columns; its identity in an
    experiment)."""
    values = [s.iat[pos] for s in series]
    return hashlib.sha256(json.dumps(values, default=str, sort_keys=True).encode()).hexdigest()[:12]


def _is_missing(value: Any) -> bool:
    """A cell without a value: None, NaN, pd.NA, NaT (containers, text and media never are)."""
    if value is None:
        return True
    if not pd.api.types.is_scalar(value) or isinstance(value, str | bytes):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _missing_text(value: Any) -> str:
    return "None" if value is None else str(value)


def _gaps(
    df: pd.DataFrame, used: list[str], paths: list[str], records: list[dict[str, Any]]
) -> dict[int, list[tuple[str, str]]]:
    """Per row position, the (column or path, value shown) of each missing value the prompt would use.

    Columns are checked at once with pandas; dot paths (``{{config.lang}}``) are looked up row by row, only
    when the template has any, so a JSON ``null`` is caught too.
    """
    gaps: dict[int, list[tuple[str, str]]] = {}
    if used:
        cells = df[used]
        isna = cells.isna()
        na = isna.to_numpy()
        for pos in isna.any(axis=1).to_numpy().nonzero()[0].tolist():  # the frame's own value: records turn NA into None
            gaps[pos] = [(c, _missing_text(cells.iat[pos, j])) for j, c in enumerate(used) if na[pos, j]]
    nested = [p for p in paths if p not in used and templating.root(p) in used]
    for path in nested:
        root = templating.root(path)
        for pos, row in enumerate(records):
            if any(c == root for c, _ in gaps.get(pos, ())):
                continue  # the whole cell is missing already
            try:
                value = templating.lookup(row, path)
            except (KeyError, E.TemplateError):
                continue  # a missing key is a template error of its own row
            if _is_missing(value):
                gaps.setdefault(pos, []).append((path, _missing_text(value)))
    return gaps


def _gap_reason(cells: list[tuple[str, str]], key: str) -> str:
    names = ", ".join(f"{c!r} ({v})" for c, v in cells)
    fix = "fill it, or pass on_missing='empty' to send it as ''"
    return f"missing value in {names} at row {key}: not sent; {fix}"


# --------------------------------------------------------------------------------------------------
# Writing the answers back
# --------------------------------------------------------------------------------------------------
def _value(r: RowOutcome | None, kind: str, structured: bool) -> Any:
    if r is None or r.status != "ok":
        return pd.NA
    if kind in ("image", "speech"):
        return r.media[0] if r.media else None
    if structured:
        data = r.data
        return data.model_dump() if hasattr(data, "model_dump") else data
    return r.text


def _fill(out: pd.DataFrame, column: str, results: list[RowOutcome | None], kind: str, response_format: Any,
          expand: bool, details: bool) -> None:  # fmt: skip
    """Write the answer (and status/detail) columns by position; every missing cell is ``pd.NA``.

    Columns are assigned as arrays, never as Series, so nothing is aligned on an index that may hold
    duplicates or NaN. Text, status, error and run id columns are ``string``, counts ``Int64`` and
    costs and latencies ``Float64``; answers that are objects (dicts, Media) stay ``object``.
    """
    structured = response_format is not None
    values = [_value(r, kind, structured) for r in results]
    values = [pd.NA if v is None else v for v in values]
    if structured and expand:
        schema = schema_of(response_format) or {}
        fields = list((schema.get("properties") or {}).keys())
        expanded = pd.DataFrame([v if isinstance(v, Mapping) else {} for v in values], columns=fields)
        props = schema.get("properties") or {}
        for f in fields:
            out[f"{column}.{f}"] = _typed(expanded[f], props.get(f) or {}).array
    elif kind == "chat" and not structured:
        out[column] = pd.array(values, dtype="string")
    else:
        out[column] = pd.array(values, dtype=object)
    failed = any(r is None or r.status != "ok" for r in results)
    if details or failed:  # a failed row keeps its error in the table
        get: dict[str, Callable[[RowOutcome | None], Any]] = {
            "status": lambda r: r.status if r is not None else NOT_RUN,
            "error": lambda r: r.error if r is not None else None,
            "tokens_in": lambda r: r.tokens_in if r is not None else None,
            "tokens_out": lambda r: r.tokens_out if r is not None else None,
            "cost_usd": lambda r: r.cost_usd if r is not None else None,
            "latency_ms": lambda r: r.latency_ms if r is not None else None,
            "run_id": lambda r: r.id if r is not None else None,
        }
        for name in DETAIL_FIELDS if details else ("status", "error"):
            out[f"{column}__{name}"] = pd.array([get[name](r) for r in results], dtype=_DETAIL_DTYPES[name])


_DETAIL_DTYPES: dict[str, Literal["string", "Int64", "Float64"]] = {
    "status": "string", "error": "string", "tokens_in": "Int64", "tokens_out": "Int64",
    "cost_usd": "Float64", "latency_ms": "Float64", "run_id": "string"}  # fmt: skip


_DTYPES: dict[str, Literal["Int64", "Float64", "boolean", "string"]] = {
    "integer": "Int64", "number": "Float64", "boolean": "boolean", "string": "string"}  # fmt: skip


def _typed(series: pd.Series, prop: dict[str, Any]) -> pd.Series:
    """A column typed from its JSON schema property (nullable dtypes, so failed rows stay NA)."""
    typ = prop.get("type")
    if isinstance(typ, list):
        typ = next((t for t in typ if t != "null"), None)
    if typ is None and prop.get("anyOf"):
        typ = next((o.get("type") for o in prop["anyOf"] if o.get("type") not in (None, "null")), None)
    dtype = _DTYPES.get(str(typ))
    if dtype is not None:
        try:
            return series.astype(dtype)
        except (TypeError, ValueError):
            pass
    # lists, objects, or values that do not fit the declared type: kept as they are, NA where missing
    return pd.Series([pd.NA if _is_missing(v) else v for v in series], dtype=object)


@pd.api.extensions.register_dataframe_accessor("prompt")
class PromptAccessor:
    """``df.prompt.run("answer", prompt="Q: {{question}}", model="mock/echo")``."""

    def __init__(self, df: pd.DataFrame) -> None:
        self._df = df

    def run(self, column: str, **kw: Any) -> Any:
        """Same as :func:`nbplayground.run_prompt` on this frame."""
        return run_prompt(self._df, column, **kw)

    def estimate(self, column: str, **kw: Any) -> Estimate:
        """Planned calls, tokens and cost, without calling."""
        return cast("Estimate", run_prompt(self._df, column, estimate=True, **kw))
