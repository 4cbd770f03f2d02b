"""Which browser the browser tests drive: found on PATH first, and a clear skip when there is none."""

from __future__ import annotations

import os
import stat

import pytest

from e2e import conftest as e2e


def _fake_browser(folder, name: str) -> str:
    path = folder / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_a_chromium_on_path_is_used_first(tmp_path, monkeypatch):
    fake = _fake_browser(tmp_path, "chromium-browser")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert e2e.find_chromium() == fake


def test_without_any_browser_the_tests_skip_saying_why(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH, no apt-get either
    monkeypatch.setattr(e2e, "_playwrights_own", lambda: None)
    assert e2e.find_chromium() is None
    with pytest.raises(pytest.skip.Exception, match="no Chromium for the browser tests"):
        e2e.chromium.__wrapped__()  # the fixture's body
    assert os.environ["PATH"] == str(tmp_path)
