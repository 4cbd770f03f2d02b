"""A real IPython kernel for surface tests: run code, collect every IOPub message with its arrival time."""

from __future__ import annotations

import os
import queue
import time
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.manager import KernelManager


@dataclass
class Execution:
    """What one ``execute`` request produced on IOPub, in order, plus the shell reply."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    arrived: list[float] = field(default_factory=list)
    reply: dict[str, Any] | None = None

    def of(self, *types: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["msg_type"] in types]

    @property
    def error(self) -> dict[str, Any] | None:
        errors = self.of("error")
        return errors[0]["content"] if errors else None

    @property
    def usage_error(self) -> str | None:
        """IPython shows a ``UsageError`` as one stderr line (no traceback): its message, if any."""
        for m in self.of("stream"):
            text = m["content"]["text"]
            if m["content"]["name"] == "stderr" and text.startswith("UsageError: "):
                return text.removeprefix("UsageError: ").rstrip("\n")
        return None

    @property
    def stdout(self) -> str:
        return "".join(m["content"]["text"] for m in self.of("stream") if m["content"]["name"] == "stdout")

    @property
    def displays(self) -> list[dict[str, Any]]:
        """Contents of display_data, update_display_data and execute_result messages, in order."""
        return [m["content"] for m in self.of("display_data", "update_display_data", "execute_result")]

    @property
    def final(self) -> dict[str, Any]:
        """The last display bundle (what a saved notebook keeps for a display that was updated)."""
        return self.displays[-1]

    @property
    def updates(self) -> list[dict[str, Any]]:
        return self.of("update_display_data")

    def text(self, mime: str = "text/plain") -> str:
        return str(self.final["data"].get(mime, ""))


class Kernel:
    """A python3 kernel started with its own environment (``NBPLAYGROUND_HOME`` and friends)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = {**os.environ, **env}
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(env=self.env)
        self._connect()

    def _connect(self) -> None:
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def restart(self) -> None:
        """A real restart: a new process, an empty namespace."""
        self.kc.stop_channels()
        self.km.restart_kernel(now=True, env=self.env)
        self._connect()

    def interrupt(self) -> None:
        self.km.interrupt_kernel()

    def shutdown(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)

    def send(self, code: str) -> str:
        return self.kc.execute(code, store_history=True)

    def collect(
        self, msg_id: str, timeout: float = 60, until: Any = None, into: Execution | None = None
    ) -> Execution:
        """Read IOPub for ``msg_id`` until the kernel is idle again (or ``until(execution)`` is true)."""
        ex = into or Execution()
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"kernel still busy after {timeout} s; got {[m['msg_type'] for m in ex.messages]}"
                )
            try:
                msg = self.kc.get_iopub_msg(timeout=left)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "status":
                if msg["content"]["execution_state"] == "idle":
                    ex.reply = self.kc.get_shell_msg(timeout=10)
                    return ex
                continue
            ex.messages.append(msg)
            ex.arrived.append(time.monotonic())
            if until is not None and until(ex):
                return ex

    def run(self, code: str, timeout: float = 60) -> Execution:
        return self.collect(self.send(code), timeout)

    def value(self, expr: str) -> Any:
        """Evaluate ``expr`` in the kernel and return it (via its repr, read back with ``eval``)."""
        ex = self.run(f"print(repr({expr}))")
        assert ex.error is None, ex.error
        return eval(ex.stdout.strip())
