"""How nbplayground's DataFrames show in a notebook: cells escaped, media inline, no math.

Frames nbplayground returns (run-prompt results, history, SQL, the registry, providers) hold model text.
pandas escapes HTML in cells, but JupyterLab typesets ``$...$`` in HTML outputs as LaTeX, so two dollar
amounts in an answer would turn the text between them into math. :func:`shown` marks such a frame; the
``text/html`` formatter registered here puts marked frames in the container MathJax skips, and renders
``Media`` cells as nbplayground's own images and players (every other cell still escaped).
"""

from __future__ import annotations

import functools
import json
import re
import secrets
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
from pandas.api.types import pandas_dtype

from nbplayground.core import render
from nbplayground.core.types import Media

#: ``df.attrs`` key of frames that nbplayground returned (pandas carries attrs through slicing and copies).
MARK = "nbplayground_frame"


def shown(df: Any) -> Any:
    """Mark a frame as nbplayground's (so it displays without math) and return it."""
    if isinstance(df, pd.DataFrame):
        df.attrs[MARK] = True
        _register_html()
    return df


def table(records: Iterable[Mapping[str, Any]], dtypes: Mapping[str, str]) -> Any:
    """A marked frame of typed rows (``None`` for a missing value), typed the way DuckDB types a result.

    ``dtypes`` names the columns in order, each ``int64``/``int32`` (nullable ``Int64``/``Int32`` when a
    value is missing), ``float64`` (NaN when missing), ``text``, ``time`` (tz-aware) or ``object`` (kept
    as given). Like DuckDB, a text column with no value at all stays ``object``.
    """
    df = pd.DataFrame.from_records(list(records), columns=list(dtypes))
    for col, kind in dtypes.items():
        values = df[col]
        if kind in ("int64", "int32"):
            df[col] = values.astype(pandas_dtype(kind if values.notna().all() else kind.capitalize()))
        elif kind == "float64":
            df[col] = values.astype(pandas_dtype(kind))
        elif kind == "time" and values.empty:  # no value to take the zone from: DuckDB's own
            df[col] = values.astype(pd.DatetimeTZDtype("us", _duckdb_timezone()))
    return shown(df)


@functools.cache
def _duckdb_timezone() -> str:
    """The time zone DuckDB gives timestamps in (its ``TimeZone`` setting: this machine's, by default)."""
    import duckdb

    with duckdb.connect() as con:
        row = con.execute("SELECT current_setting('TimeZone')").fetchone()
    return str(row[0]) if row else "UTC"


def _media_columns(df: pd.DataFrame) -> list[Any]:
    return [
        c for c in df.columns if df[c].dtype == object and df[c].map(lambda v: isinstance(v, Media)).any()
    ]


def frame_html(df: pd.DataFrame) -> str:
    """A frame with Media cells as HTML: every other cell (and every header) escaped by pandas.

    Media cells become a placeholder token first, so pandas escapes everything else, and only then the
    tokens are swapped for nbplayground's own media HTML.
    """
    media: list[str] = []
    nonce = secrets.token_hex(8)  # a cell's own text can never name a placeholder

    def token(v: Any) -> Any:
        if isinstance(v, Media):
            media.append(render.media(v))
            return f"nbp-media-{nonce}-{len(media) - 1}"
        return v

    out_frame = df.copy()
    for c in _media_columns(df):
        out_frame[c] = out_frame[c].map(token)
    out = out_frame.to_html(escape=True, max_rows=60, max_cols=40)
    out = re.sub(f"nbp-media-{nonce}-(\\d+)", lambda m: media[int(m.group(1))], out)
    return render.page(out)


_registered = False


def _register_html() -> None:
    """Install the DataFrame ``text/html`` formatter in the running IPython (once; no-op outside IPython)."""
    global _registered
    if _registered:
        return
    try:
        from IPython.core.getipython import get_ipython
    except ImportError:
        return
    ip = get_ipython()
    if ip is None or ip.display_formatter is None:
        return
    formatter = ip.display_formatter.formatters["text/html"]
    previous = formatter.lookup_by_type(pd.DataFrame) if pd.DataFrame in formatter.type_printers else None

    def html(df: pd.DataFrame) -> str | None:
        if _media_columns(df):
            return frame_html(df)
        # pandas-stubs does not declare DataFrame._repr_html_ (its __getattr__ types it as a column).
        out = previous(df) if previous is not None else df._repr_html_()  # type: ignore[operator]
        return render.page(out) if out and df.attrs.get(MARK) else out

    formatter.for_type(pd.DataFrame, html)
    _registered = True


def row_key(value: Any) -> str:
    """A row's index value as a history key: text as is, anything else as JSON."""
    return json.dumps(value, default=str) if not isinstance(value, str) else value


def row_keys(index: pd.Index) -> list[str]:
    """One distinct key per row: the index value as text (JSON unless a str), ``#<position>`` added where
    two rows would share one (duplicate labels, ``1`` and ``"1"``, several NaN), so no row's answer is lost.
    """
    base = [row_key(k) for k in index]
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
