"""Shared fixtures: every test gets its own nbplayground home, so tests never touch the user's."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def nbp_home(tmp_path, monkeypatch):
    """Point NBPLAYGROUND_HOME at a fresh folder and forget process-wide configuration afterwards."""
    home = tmp_path / "nbp-home"
    monkeypatch.setenv("NBPLAYGROUND_HOME", str(home))
    import nbplayground.config as config

    config.configure(reset=True)
    yield home
    try:
        from nbplayground.storage import history
    except ImportError:
        history = None
    if history is not None and hasattr(history, "reset_for_tests"):
        history.reset_for_tests()
    config.configure(reset=True)
