"""Run history: every run from every surface, on disk before ``record()`` returns, in DuckDB soon after.

The store's one import for other layers, in three parts:

- ``writer``: ``record()`` journals a finished run (scrubbed and made storable by ``rows``) and queues it;
  one writer thread per process stores runs in batches (``intake``). ``flush()`` waits for them.
- ``queries``: reads as typed rows (``RunSummary``, ``PageRow``, whole ``RunResult``s), never NaN-bearing
  frames; ``sql()`` is the notebook's read-only SQL window (a DataFrame).
- ``rows``: the stored row vocabulary (columns, scrubbing, conversion).

Surfaces call ``history.<name>``; the names below are those modules' own.
"""

from __future__ import annotations

from nbplayground.storage.queries import (
    HISTORY_COLUMNS,
    Page,
    PageRow,
    RunSummary,
    count,
    finished_by_row_key,
    get_run,
    history,
    near_ids,
    page,
    sql,
    thread_runs,
)
from nbplayground.storage.rows import (
    COLUMNS,
    FLOAT_COLUMNS,
    INT_COLUMNS,
    JSON_COLUMNS,
    media_extension,
    safe_params,
    to_row,
)
from nbplayground.storage.rows import insert as insert_rows
from nbplayground.storage.rows import to_json as _row_to_json
from nbplayground.storage.writer import (
    backlog,
    flush,
    ingest_pending,
    record,
    reset_for_tests,
    writer_state,
)

__all__ = [
    "COLUMNS", "FLOAT_COLUMNS", "HISTORY_COLUMNS", "INT_COLUMNS", "JSON_COLUMNS", "Page", "PageRow", "RunSummary",
    "_row_to_json", "backlog", "count", "finished_by_row_key", "flush", "get_run", "history", "ingest_pending",
    "insert_rows", "media_extension", "near_ids", "page", "record", "reset_for_tests", "safe_params", "sql",
    "thread_runs", "to_row", "writer_state",
]  # fmt: skip
