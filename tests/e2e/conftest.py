"""Browser tests: a real JupyterLab server and headless Debian Chromium driven by Playwright.

Chromium comes from Debian (Playwright cannot download browsers here); if it is missing, the session
installs it with apt (as root, or through ``sudo -n``) and fails loudly when it cannot.
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
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts" / "e2e"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: drives a real JupyterLab in headless Chromium")


def _install_chromium() -> None:
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        proc = subprocess.run(prefix + cmd, capture_output=True, text=True, env=env, timeout=1200)
        if proc.returncode != 0:
            pytest.fail(
                f"Browser tests need Debian's chromium at {CHROMIUM} and `{' '.join(prefix + cmd)}` failed:\n"
                f"{proc.stderr[-2000:]}\nInstall it with `sudo apt-get install chromium`.",
                pytrace=False,
            )


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of Debian's Chromium, installed with apt when missing."""
    if not Path(CHROMIUM).exists():
        _install_chromium()
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} still missing after apt-get install chromium"
    return CHROMIUM


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
