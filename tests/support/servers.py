"""Start a real Jupyter server (``jupyter server`` or ``jupyter lab``) in a subprocess for tests."""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class JupyterServer:
    """A running server: base URL, token, root, nbplayground home, log file."""

    url: str
    token: str
    root: Path
    home: Path
    log: Path
    proc: subprocess.Popen[bytes] = field(repr=False)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_jupyter(
    base: Path, app: str = "server", args: list[str] | None = None, env: dict[str, str] | None = None
) -> JupyterServer:
    """Start ``jupyter <app>`` on a free 127.0.0.1 port with its own config, runtime dir and home; no API keys."""
    root, home = base / "root", base / "home"
    root.mkdir(parents=True, exist_ok=True)
    port, token = free_port(), secrets.token_hex(16)
    environ = {k: v for k, v in os.environ.items() if not re.search(r"_API_KEY$", k)}
    environ.update(NBPLAYGROUND_HOME=str(home), JUPYTER_RUNTIME_DIR=str(base / "runtime"), **(env or {}))
    cmd = [
        sys.executable, "-m", "jupyter", app, "--no-browser", f"--port={port}", "--ip=127.0.0.1",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        *(["--allow-root"] if os.geteuid() == 0 else []), *(args or []),
    ]  # fmt: skip
    log = base / f"{app}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=environ, cwd=root)
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
            raise RuntimeError(f"jupyter {app} did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return JupyterServer(url=url, token=token, root=root, home=home, log=log, proc=proc)
