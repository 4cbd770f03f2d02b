"""Shared fixtures: every test gets its own nbplayground home, so tests never touch the user's."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def nbp_home(tmp_path, monkeypatch):
    """Point NBPLAYGROUND_HOME at a fresh folder; afterwards stop the history writer and reset settings."""
    home = tmp_path / "nbp-home"
    monkeypatch.setenv("NBPLAYGROUND_HOME", str(home))
    import nbplayground.config as config

    config.configure(reset=True)
    yield home
    from nbplayground.storage import history

    history.reset_for_tests()  # flush and stop this test's writer thread, forget per-home state
    config.configure(reset=True)
