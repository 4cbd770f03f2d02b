"""Browser tests: a real JupyterLab server and headless Debian Chromium driven by Playwright.

Chromium comes from Debian (Playwright cannot download browsers here); if it is missing, the session
installs it with apt (as root, or through ``sudo -n``) and fails loudly when it cannot.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Lab:
    """A running JupyterLab: its URL, token, root folder and nbplayground home."""

    url: str
    token: str
    root: Path
    home: Path
    log: Path
    proc: subprocess.Popen[bytes] = field(repr=False)

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?token={self.token}&reset"


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab on a free port, serving a copy of notebooks/, with its own config, home and no keys."""
    base = tmp_path_factory.mktemp("lab")
    root, home, cfg = base / "root", base / "home", base / "config"
    root.mkdir()
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        shutil.copy(nb, root / nb.name)
    (cfg / "labconfig").mkdir(parents=True)
    # Announcements and news pop-ups cover the page and ask for network: off.
    (cfg / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )
    port, token = _free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if not re.search(r"_API_KEY$", k)}
    env.update(NBPLAYGROUND_HOME=str(home), JUPYTER_CONFIG_DIR=str(cfg), JUPYTER_RUNTIME_DIR=str(base / "runtime"),
               JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"), JUPYTERLAB_SETTINGS_DIR=str(base / "settings"))  # fmt: skip
    log = base / "lab.log"
    cmd = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--ZMQChannelsWebsocketConnection.iopub_msg_rate_limit=0",
        "--ZMQChannelsWebsocketConnection.iopub_data_rate_limit=0",
        "--LabApp.expose_app_in_browser=True", *(["--allow-root"] if os.geteuid() == 0 else []), "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"JupyterLab did not start:\n{log.read_text()[-3000:]}", pytrace=False)
        time.sleep(0.25)
    yield Lab(url=url, token=token, root=root, home=home, log=log, proc=proc)
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


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
def page(chromium: str, lab: Lab, shots):
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
