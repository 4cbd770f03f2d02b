"""Browser tests: a real JupyterLab server and headless Chromium driven by Playwright.

The browser is the first of: a Chromium or Chrome on PATH (Debian's ``chromium``, ``chromium-browser``,
``google-chrome``), Playwright's own downloaded Chromium, or Debian's installed with apt when the session
may (root or ``sudo -n``). When none can be had the browser tests are skipped, saying why.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.servers import JupyterServer, start_jupyter

ROOT = Path(__file__).resolve().parents[2]
_ON_PATH = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
ARTIFACTS = ROOT / "test-artifacts" / "e2e"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: drives a real JupyterLab in headless Chromium")


def _on_path() -> str | None:
    return next((found for name in _ON_PATH if (found := shutil.which(name))), None)


def _playwrights_own() -> str | None:
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            path = pw.chromium.executable_path
    except Exception:
        return None
    return path if path and Path(path).exists() else None


def _install_with_apt() -> str | None:
    """Debian's chromium through apt, when this session may install packages; None when it cannot."""
    if shutil.which("apt-get") is None:
        return None
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        try:
            proc = subprocess.run(prefix + cmd, capture_output=True, text=True, env=env, timeout=1200)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if proc.returncode != 0:
            return None
    return _on_path()


def find_chromium() -> str | None:
    """A Chromium to drive: on PATH, Playwright's own, or installed with apt; None when there is none."""
    return _on_path() or _playwrights_own() or _install_with_apt()


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of a Chromium (see :func:`find_chromium`); the browser tests are skipped without one."""
    path = find_chromium()
    if path is None:
        pytest.skip(
            "no Chromium for the browser tests: none on PATH (chromium, google-chrome), no Playwright browser "
            "(`playwright install chromium`), and apt could not install one (`sudo apt-get install chromium`)"
        )
    return path


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    """JupyterLab on a free port, serving a copy of notebooks/, with its own config, home and no keys."""
    base = tmp_path_factory.mktemp("lab")
    cfg = base / "config"
    (cfg / "labconfig").mkdir(parents=True)
    # Announcements and news pop-ups cover the page and ask for network: off.
    (cfg / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )
    (base / "root").mkdir()
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        shutil.copy(nb, base / "root" / nb.name)
    env = {"JUPYTER_CONFIG_DIR": str(cfg), "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
           "JUPYTERLAB_SETTINGS_DIR": str(base / "settings")}  # fmt: skip
    args = [
        "--ZMQChannelsWebsocketConnection.iopub_msg_rate_limit=0",
        "--ZMQChannelsWebsocketConnection.iopub_data_rate_limit=0",
        "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    try:
        server = start_jupyter(base, app="lab", args=args, env=env)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def shots(request: pytest.FixtureRequest):
    """``shots(page, "name")`` saves ``test-artifacts/e2e/<test>/NN-name.png``."""
    folder = ARTIFACTS / re.sub(r"[^\w.-]+", "_", request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    count = [0]

    def take(page, name: str) -> Path:
        count[0] += 1
        path = folder / f"{count[0]:02d}-{name}.png"
        page.screenshot(path=str(path))
        return path

    take.folder = folder  # type: ignore[attr-defined]
    return take


@pytest.fixture
def page(chromium: str, lab: JupyterServer, shots):
    """A headless Chromium page; console errors are collected on ``page.errors``; a last screenshot on teardown."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=args)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        pg.errors = errors  # type: ignore[attr-defined]
        try:
            yield pg
        finally:
            try:
                shots(pg, "final")
            finally:
                browser.close()
