"""Run a prompt over a pandas DataFrame: a new column filled by a model, one run per row.

Rows are rendered from ``{{column}}`` placeholders (dot paths reach into dict and JSON-string columns),
scheduled by the engine's AIMD limiter (concurrency is an upper bound that halves on 429s and grows back),
checkpointed to the history as they finish, and written back by position, so rows never shift. Running
the same call again resumes: rows already done come from the store with zero model calls.

A row whose prompt would be made of a missing value (NaN, None, ``pd.NA``, NaT, or a JSON ``null`` reached
by a dot path) is not sent: it gets the status ``skipped`` and its reason, unless ``on_missing`` says
otherwise; so is a row whose rendered prompt is empty. Skipped rows are never stored as done, so the
next run looks at them again.
"""

from __future__ import annotations

import hashlib
import json
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, cast

import pandas as pd

from nbplayground import frames
from nbplayground.core import errors as E
from nbplayground.core import providers, templating
from nbplayground.core.batch import AIMDLimiter, Batch
from nbplayground.core.plan import schema_of
from nbplayground.core.tools import normalize_tools
from nbplayground.core.types import KINDS, Media, RunRequest, RunResult, new_id

NOT_RUN = "not run"
SKIPPED = "skipped"
ON_MISSING = ("skip", "empty", "error")
#: Finished rows allowed to wait for the store before workers pause (bounds memory on fast models).
MAX_BACKLOG = 2000
DETAIL_FIELDS = ("status", "error", "tokens_in", "tokens_out", "cost_usd", "latency_ms", "run_id")


class RowOutcome(NamedTuple):
    """What the output frame needs of a finished row (the full run lives in the history)."""

    id: str | None  # None: no run was made (a skipped row)
    status: str
    text: str
    data: Any
    media: list[Media]
    error: str | None
    tokens_in: int | None
    tokens_out: int | None
    cost_usd: float | None
    latency_ms: float | None


def _slim(r: RunResult) -> RowOutcome:
    return RowOutcome(r.id, r.status, r.text, r.data, r.media, r.error, r.tokens_in, r.tokens_out, r.cost_usd,
                      r.latency_ms)  # fmt: skip


@dataclass
class Estimate:
    """What a batch would do, without calling any model."""

    rows: int
    calls: int
    already_done: int
    tokens_in: int
    tokens_out_max: int | None
    cost_usd: float | None
    model: str
    skipped: int = 0  # rows that will not be sent: missing values or an empty prompt

    def __str__(self) -> str:
        if self.cost_usd is None:
            cost = "unknown (no price for this model)"
        elif self.tokens_out_max is None:  # only the input is priced: a floor, not an estimate
            cost = f"at least ${self.cost_usd:.4f} (input only: output unbounded)"
        else:
            cost = f"${self.cost_usd:.4f}"
        out = self.tokens_out_max if self.tokens_out_max is not None else "unbounded (set max_tokens)"
        skipped = f", {self.skipped} skipped: missing values or empty prompts" if self.skipped else ""
        return (
            f"{self.calls} calls to {self.model} for {self.rows} rows ({self.already_done} already done{skipped}) · "
            f"~{self.tokens_in:,} tokens in · up to {out} tokens out · est. cost {cost}"
        )

    def _repr_html_(self) -> str:
        from nbplayground.core import render

        return render.page(render.paragraph(str(self)))


def _roots(texts: Iterable[str | None]) -> list[str]:
    import re

    roots: dict[str, None] = {}
    for text in texts:
        for path in templating.placeholders(text or ""):
            roots.setdefault(path, None)
            roots.setdefault(re.split(r"[.\[]", path, maxsplit=1)[0], None)
    return list(roots)


def _template(
    prompt: str | None, messages: list[dict[str, Any]] | None, system: str | None
) -> list[dict[str, Any]]:
    out = [dict(m) for m in (messages or [])]
    if system is not None:
        out = [m for m in out if m.get("role") != "system"]
        out.insert(0, {"role": "system", "content": system})
    if prompt is not None:
        out.append({"role": "user", "content": prompt})
    return out


def _fingerprint(df: pd.DataFrame, columns: list[str]) -> str:
    h = hashlib.sha256()
    try:
        h.update(pd.util.hash_pandas_object(df.index, index=False).to_numpy().tobytes())
    except (TypeError, ValueError):  # an object index mixing tuples, numbers and text
        h.update(json.dumps([[type(k).__name__, _row_key(k)] for k in df.index]).encode())
    for col in columns:
        h.update(col.encode())
        try:
            h.update(pd.util.hash_pandas_object(df[col], index=False).to_numpy().tobytes())
        except (TypeError, ValueError):  # unhashable cells (dicts, lists): hash their JSON
            h.update(json.dumps(df[col].tolist(), default=str, sort_keys=True).encode())
    return h.hexdigest()


def _row_key(value: Any) -> str:
    return json.dumps(value, default=str) if not isinstance(value, str) else value


def _row_keys(index: pd.Index) -> list[str]:
    """One distinct key per row: the index value as text (JSON unless a str), ``#<position>`` added where
    two rows would share one (duplicate labels, ``1`` and ``"1"``, several NaN), so no row's answer is lost.
    """
    base = [_row_key(k) for k in index]
    if index.is_unique and (index.dtype != object or index.inferred_type in ("string", "integer")):
        return base  # one type, distinct labels: distinct keys (without counting 100,000 of them)
    seen = Counter(base)
    if len(seen) == len(base):
        return base
    taken = {k for k, c in seen.items() if c == 1}
    keys = []
    for pos, key in enumerate(base):
        if seen[key] > 1:
            key = f"{key}#{pos}"
            while key in taken:  # an index that already holds "1#0" as a label
                key += "#"
            taken.add(key)
        keys.append(key)
    return keys


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


def _skipped(reason: str) -> RowOutcome:
    return RowOutcome(None, SKIPPED, "", None, [], reason, None, None, None, None)


def _empty_prompt(msgs: list[dict[str, Any]], value: Any, kind: str, has_input: bool) -> bool:
    """True when what would be sent has no text: the user messages (or a media kind's input) are blank."""
    if kind != "chat" and has_input:
        if isinstance(value, str | bytes | bytearray):
            return not value.strip()
        return value is None
    users = [m for m in msgs if m.get("role") == "user"] or [
        m for m in msgs if m.get("role") not in ("assistant", "tool", "function")
    ]
    for m in users:
        content = m.get("content")
        if isinstance(content, str):
            if content.strip():
                return False
        elif isinstance(content, list):
            for part in content:
                if not (isinstance(part, dict) and part.get("type") == "text"):
                    return False  # an image or audio part is something to answer
                if str(part.get("text") or "").strip():
                    return False
        elif content is not None:
            return False
    return True


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
    nested = [p for p in paths if p not in used and _root(p) in used]
    for path in nested:
        root = _root(path)
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


def _root(path: str) -> str:
    import re

    return re.split(r"[.\[]", path, maxsplit=1)[0]


def _gap_reason(cells: list[tuple[str, str]], key: str) -> str:
    names = ", ".join(f"{c!r} ({v})" for c, v in cells)
    fix = "fill it, or pass on_missing='empty' to send it as ''"
    return f"missing value in {names} at row {key}: not sent; {fix}"


def _cost_unknown(r: RowOutcome) -> bool:
    """True when a finished row may have been billed but has no cost (no price, or no token usage).

    A row that failed or stopped with nothing back (a 4xx, a refused connection, a template error) is
    not counted: providers do not bill requests they rejected.
    """
    if r.cost_usd is not None:
        return False
    return (
        r.status == "ok"
        or bool(r.text)
        or bool(r.media)
        or r.tokens_in is not None
        or r.tokens_out is not None
    )


def _no_price_message(name: str) -> str:
    return (
        f"max_cost cannot be enforced: {name} has no price. Set input_cost_per_token and output_cost_per_token "
        f"for it in nbp.configure(models={{{name!r}: {{...}}}}) (0 for a free local model), or drop max_cost."
    )


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
    from nbplayground import config
    from nbplayground.storage import history

    if not isinstance(df, pd.DataFrame):
        raise E.BadParameterError(f"run_prompt needs a pandas DataFrame, got {type(df).__name__}.")
    if not isinstance(column, str) or not column:
        raise E.BadParameterError("Name the new column: run_prompt(df, 'answer', prompt=...).")
    if kind not in KINDS:
        raise E.BadParameterError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}.")
    if on_missing not in ON_MISSING:
        choices = ", ".join(map(repr, ON_MISSING))
        raise E.BadParameterError(f"on_missing must be one of {choices}; got {on_missing!r}.")
    template = _template(prompt, messages, system)
    if kind == "chat" and not template:
        raise E.BadParameterError("Pass prompt='... {{column}} ...' or messages=[...].")
    if kind != "chat" and input is None and prompt is None:
        raise E.BadParameterError(f"kind={kind!r} needs input='{{{{column}}}}' (or prompt= for images).")
    texts = [m.get("content") for m in template if isinstance(m.get("content"), str)] + [input]
    roots = _roots(texts)
    columns = [str(c) for c in df.columns]
    missing = [r for r in roots if r not in columns and "." not in r and "[" not in r]
    if missing:
        raise E.MissingColumnsError(missing, columns)
    used = [r for r in roots if r in columns]
    rm = providers.resolve(model or config.settings().default_model)
    send, _options = providers.split_params(rm, params)
    tool_schemas, functions = normalize_tools(tools)
    schema = schema_of(response_format)

    signature = json.dumps(
        {"column": column, "template": template, "input": input, "model": rm.name, "params": send, "kind": kind,
         "schema": schema, "tools": [t["function"]["name"] for t in tool_schemas or []],
         "frame": _fingerprint(df, used)},
        sort_keys=True, default=str,
    )  # fmt: skip
    group_id = "batch-" + hashlib.sha256(signature.encode()).hexdigest()[:24]
    # the used columns are str: they were picked by name from [str(c) for c in df.columns]
    records = cast("list[dict[str, Any]]", df[used].to_dict("records")) if used else [{} for _ in range(len(df))]
    keys = _row_keys(df.index)
    n = len(df)
    paths = list(dict.fromkeys(p for t in texts for p in templating.placeholders(t or "")))
    gaps = _gaps(df, used, paths, records)
    if gaps and on_missing == "error":
        first = [f"{c!r} at row {keys[pos]} ({v})" for pos in sorted(gaps)[:3] for c, v in gaps[pos]][:3]
        n_cells = sum(len(v) for v in gaps.values())
        raise E.BadParameterError(
            f"Missing values where the prompt reads them: {', '.join(first)} ({n_cells} cells in {len(gaps)} "
            "rows); fill them (df.fillna) or pass on_missing='skip' (the default) or on_missing='empty'."
        )
    results: list[RowOutcome | None] = [None] * n
    blank: dict[int, dict[str, str]] = {}  # on_missing="empty": the values rendered as ""
    for pos, cells in gaps.items():
        if on_missing == "skip":  # skipped before any lookup of earlier results: never taken as done
            results[pos] = _skipped(_gap_reason(cells, keys[pos]))
        else:
            names = {c for c, _ in cells}
            blank[pos] = {p: "" for p in paths if p in names or _root(p) in names}
            blank[pos].update({c: "" for c in names})
    skipped_early = len(gaps) if on_missing == "skip" else 0
    resumed = 0
    if resume:
        done = _previous(group_id, retry_failed)
        for pos, key in enumerate(keys):
            prev = done.get(key) if results[pos] is None else None
            if prev is not None:
                results[pos] = _slim(prev)
                resumed += 1
    todo = [i for i in range(n) if results[i] is None]
    resumed_ok = sum(1 for r in results if r is not None and r.status == "ok")

    def render(i: int, resolved: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], Any]:
        """A row's messages and input; ``resolved`` receives each placeholder's value (what is stored)."""
        row = records[i] if i not in blank else {**records[i], **blank[i]}
        msgs = templating.render_messages(template, row, resolved=resolved) if template else []
        if kind == "transcription":  # the audio itself is not a variable worth storing
            value = templating.lookup(row, input.strip().strip("{} ")) if input else None
            return msgs, value.data if isinstance(value, Media) else value
        return msgs, templating.render(input, row, resolved=resolved) if input is not None else None

    def empty(msgs: list[dict[str, Any]], value: Any) -> bool:
        return _empty_prompt(msgs, value, kind, input is not None)

    if estimate:
        return _estimate(rm, send, todo, render, n, empty, resumed, skipped_early)
    priced = rm.price(1, 1) is not None
    if max_cost is not None:
        if isinstance(max_cost, bool) or not isinstance(max_cost, int | float) or max_cost < 0:
            raise E.BadParameterError(f"max_cost must be a number of USD >= 0, got {max_cost!r}.")
        if not priced:  # checked before any request: a cap that cannot be enforced is refused
            raise E.BadParameterError(_no_price_message(rm.name))

    per_row = _row_cost_guess(rm, send, todo[:50], render)
    max_out = send.get("max_tokens") or send.get("max_completion_tokens")
    # A row without usage can be counted at its worst case only when that case is finite: one request
    # per attempt (no tool loop) and a cap on output tokens.
    bounded = kind == "chat" and not tool_schemas and isinstance(max_out, int)
    spent = [0.0]  # known costs
    ceiling = [0.0]  # worst-case costs of rows that came back without usage (max_cost only)
    reserved = [0.0]
    worst: dict[int, float] = {}  # row -> worst-case cost of one attempt, for rows in flight
    held: dict[int, float] = {}  # row -> what it holds of the budget while in flight
    unknown = [0]
    estimated = [0]  # rows whose server sent no usage: their tokens (and cost) were counted here
    halted: list[str] = []  # why scheduling stopped because the budget could no longer be enforced
    lock = threading.Lock()
    counts = {"ok": 0, "error": 0, "stopped": 0, SKIPPED: 0}
    budget_hit = [False]

    def make(i: int) -> RunRequest | None:
        if halted:
            return None
        try:
            resolved: dict[str, Any] = {}
            msgs, value = render(i, resolved)
        except E.TemplateError as exc:
            failed = RunResult(id=new_id(), model=rm.name, status="error", error=str(exc),
                               error_type=type(exc).__name__, surface="dataframe", group_id=group_id,
                               row_key=keys[i])  # fmt: skip
            results[i] = _slim(failed)
            history.record(failed)
            with lock:
                counts["error"] += 1
            return None
        if empty(msgs, value):  # nothing to ask: no call, nothing charged, looked at again next run
            results[i] = _skipped(f"the prompt is empty at row {keys[i]}: not sent")
            with lock:
                counts[SKIPPED] += 1
            return None
        if max_cost is not None:
            hold = per_row or 0.0
            # a token is at least one byte: the request's JSON bytes bound its input tokens
            if bounded and isinstance(max_out, int):
                size = len(json.dumps([msgs, value, schema], default=str).encode())
                worst[i] = rm.price(size, int(max_out)) or 0.0
            with lock:
                if unknown[0] and i in worst:  # usage has gone missing: hold each row's worst case
                    hold = max(hold, worst[i])
                if halted or spent[0] + ceiling[0] + reserved[0] + hold > max_cost:
                    budget_hit[0] = budget_hit[0] or not halted
                    worst.pop(i, None)
                    return None
                reserved[0] += hold
                held[i] = hold
        return RunRequest(
            model=rm.name, messages=msgs, params=dict(params or {}), variables=resolved, tools=tool_schemas,
            tool_functions=functions, tool_mode=tool_mode,  # type: ignore[arg-type]
            response_format=response_format, kind=kind,  # type: ignore[arg-type]
            input=value, template_messages=template or None, surface="dataframe", group_id=group_id,
            max_attempts=max_attempts, row_key=keys[i], stream=False, resolved=rm,
        )  # fmt: skip

    position = {keys[i]: i for i in range(n)}

    def on_result(r: RunResult) -> None:
        i = position.get(r.row_key) if r.row_key is not None else None  # by row key: rows never shift or swap
        if i is None:  # make() gives every request its row's key: this is no row of the frame; keep the run
            if r.status != "stopped" or r.text:
                history.record(r)
            return
        row = results[i] = _slim(r)  # keep only what the frame needs: 100,000 rows stay small
        with lock:
            counts[r.status] = counts.get(r.status, 0) + 1
            bound = worst.pop(i, None)
            estimated[0] += bool(r.tokens_estimated)
            if r.cost_usd is not None:
                spent[0] += r.cost_usd
            elif _cost_unknown(row):
                unknown[0] += 1
                if max_cost is not None and bound is not None:
                    ceiling[0] += bound * max(1, r.attempts)  # every attempt may have been billed
                elif max_cost is not None and not halted:
                    fix = (
                        "set params={'max_tokens': N} so such rows count at their worst case"
                        if kind == "chat" and not tool_schemas
                        else "its worst case cannot be bounded"
                    )
                    halted.append(f"Stopped the batch: row {r.row_key} came back without token usage, so its "
                                  f"cost is unknown and max_cost cannot be enforced; {fix}, or drop max_cost.")  # fmt: skip
            reserved[0] = max(0.0, reserved[0] - held.pop(i, 0.0))
        if r.status != "stopped" or r.text:
            history.record(r)

    limiter = AIMDLimiter(concurrency)
    batch = Batch(make, todo, workers=concurrency, on_result=on_result, limiter=limiter,
                  throttle=lambda: history.backlog() > MAX_BACKLOG)  # fmt: skip
    future = batch.start()
    bar = _progress(progress, n, n - len(todo))  # rows resumed or skipped up front are done already
    interrupted = False
    last_done = [0]

    def refresh(final: bool = False) -> None:
        """Move the bar to the rows finished so far; ``final`` draws it now (tqdm waits mininterval)."""
        if bar is None:
            return
        finished = counts["ok"] + counts["error"] + counts[SKIPPED]  # a stopped row is not finished
        if finished == last_done[0] and not final:
            return
        bar.update(finished - last_done[0])
        last_done[0] = finished
        cost = f"${spent[0]:.4f}" if not unknown[0] else f"unknown ({unknown[0]} unpriced)"
        skipped = skipped_early + counts[SKIPPED]
        extra = {"skipped": skipped} if skipped else {}
        bar.set_postfix(ok=resumed_ok + counts["ok"], failed=resumed - resumed_ok + counts["error"], **extra,
                        retrying=limiter.rate_limited, limit=limiter.allowed, cost=cost, refresh=False)  # fmt: skip
        if final:
            bar.refresh()

    try:
        while not future.done():
            try:
                future.result(timeout=0.1)
            except TimeoutError:
                pass
            except Exception:
                break
            refresh()
    except KeyboardInterrupt:
        interrupted = True
        batch.stop()
        try:
            future.result(timeout=10)
        except Exception:
            pass
    finally:
        if bar is not None:
            refresh(final=True)  # the true final count, also when the batch ended before the first look
            bar.close()
    history.flush()
    out = df if inplace else df.copy()
    _fill(out, column, results, kind, response_format, expand, details)
    info = {"group_id": group_id, "model": rm.name, "rows": n, "ran": len(todo) - counts[SKIPPED],
            "resumed": resumed,
            "ok": sum(1 for r in results if r is not None and r.status == "ok"),
            "failed": sum(1 for r in results if r is not None and r.status == "error"),
            "skipped": sum(1 for r in results if r is not None and r.status == SKIPPED),
            "not_run": sum(1 for r in results if r is None),
            "cost_usd": None if unknown[0] else round(spent[0], 8), "unpriced_rows": unknown[0],
            "estimated_rows": estimated[0],
            "cost_usd_at_most": round(spent[0] + ceiling[0], 8) if unknown[0] and max_cost is not None
            and not halted else None,
            "interrupted": interrupted, "budget_exhausted": budget_hit[0],
            "cost_unenforceable": bool(halted)}  # fmt: skip
    info["summary"] = _summary(info, priced)
    out.attrs["nbplayground"] = info
    out.attrs["batch_id"] = group_id
    frames.shown(out)
    if halted:
        warnings.warn(f"{halted[0]} {info['not_run']} rows not run; run the same call again to resume.",
                      stacklevel=2)  # fmt: skip
    return None if inplace else out


def _summary(info: dict[str, Any], priced: bool) -> str:
    """One line on what a batch did and cost; an unknown cost says how many rows had none, and why."""
    text = f"{info['rows']} rows: {info['ok']} ok, {info['failed']} failed, {info['not_run']} not run"
    if info.get("skipped"):
        text += f", {info['skipped']} skipped (missing values or empty prompts: see the __error column)"
    if info["resumed"]:
        text += f" ({info['resumed']} from an earlier run)"
    if info["cost_usd"] is not None:
        counted = info.get("estimated_rows") or 0
        note = f" (~: {counted} rows sent no usage and were counted here)" if counted else ""
        return f"{text} · cost ${info['cost_usd']:.4f}{note}"
    why = (
        "the server sent no token usage"
        if priced
        else f"{info['model']} has no price: set input_cost_per_token / output_cost_per_token in "
        "nbp.configure(models=...)"
    )
    text += f" · cost unknown: {info['unpriced_rows']} of {info['ran']} rows had no price ({why})"
    if info["cost_usd_at_most"] is not None:
        text += f", at most ${info['cost_usd_at_most']:.4f}"
    return text


def _previous(group_id: str, retry_failed: bool) -> dict[str, RunResult]:
    """The latest finished run per row of an earlier attempt at this same batch."""
    from nbplayground.storage import history

    return history.finished_by_row_key(group_id, ("ok",) if retry_failed else ("ok", "error"))


def _tokens(msgs: list[dict[str, Any]], value: Any) -> int:
    text = " ".join(str(m.get("content") or "") for m in msgs) + (value if isinstance(value, str) else "")
    return max(1, len(text) // 4)


def _row_cost_guess(
    rm: providers.ResolvedModel, send: dict[str, Any], sample: list[int], render: Any
) -> float | None:
    if not sample:
        return 0.0
    try:
        tin = sum(_tokens(*render(i)) for i in sample) / len(sample)
    except E.TemplateError:
        tin = 0
    tout = send.get("max_tokens") or send.get("max_completion_tokens") or 256
    return rm.price(int(tin) + 1, int(tout))


def _estimate(
    rm: providers.ResolvedModel,
    send: dict[str, Any],
    todo: list[int],
    render: Any,
    n: int,
    empty: Any,
    already_done: int,
    skipped: int,
) -> Estimate:
    tin = 0
    calls = 0
    empties = 0
    for i in todo:
        try:
            rendered = render(i)
        except E.TemplateError:
            continue  # the row fails without a call
        if empty(*rendered):  # skipped, not sent
            empties += 1
        else:
            tin += _tokens(*rendered)
            calls += 1
    tout = send.get("max_tokens") or send.get("max_completion_tokens")
    cost = rm.price(tin, (tout or 0) * calls) if tout else rm.price(tin, 0)
    return Estimate(rows=n, calls=calls, already_done=already_done, tokens_in=tin,
                    tokens_out_max=tout * calls if tout else None, cost_usd=cost, model=rm.name,
                    skipped=skipped + empties)  # fmt: skip


def _progress(enabled: bool, total: int, initial_done: int) -> Any:
    """A tqdm bar over ``total`` rows that starts at ``initial_done`` (resumed or skipped before the run)."""
    if not enabled or total == 0:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial_done, desc="nbplayground", unit="row", leave=True)


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
