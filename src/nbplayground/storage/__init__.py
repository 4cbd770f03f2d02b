"""Storage: the DuckDB run history and prompt registry (one file under NBPLAYGROUND_HOME)."""
