"""The Playground widget: edit messages and variables, run 1-4 models side by side, stop, iterate.

State lives in traits (see ``docs/widget-protocol.md``); streaming goes through batched custom messages.
Runs happen on the engine's loop thread and a small pump thread, so the kernel stays free to handle
Stop, other cells and widget edits while models stream.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import traitlets as t

# imported by module path, not from the package: the package's __init__ imports this module
import nbplayground.widgets._editor as ed
import nbplayground.widgets._library as library
from nbplayground import api
from nbplayground.core import display
from nbplayground.core import errors as E
from nbplayground.core.engine import RunHandle
from nbplayground.core.plan import MAX_TARGETS, RunSpec, plan
from nbplayground.core.types import RunRequest, RunResult
from nbplayground.widgets._base import StaticCopyWidget, bundle
from nbplayground.widgets._stream import StreamPump


class Playground(StaticCopyWidget):
    """An interactive prompt playground in the notebook, mirrored by a Python API.

    ``Playground(messages=..., variables=..., models=[...], params=..., tools=[f, g])``; then ``run()``,
    ``clear_and_run()``, ``stop()``, ``results``. Every run goes through the engine and lands in history
    (``surface='widget'``, ``thread_id`` = this widget's id).
    """

    _esm = bundle("playground.js", "widget")
    _css = bundle("playground.css", "widget")

    messages = t.List(
        t.Dict(), help="The editor's messages: role, content (+ tool_call_id / tool_calls)."
    ).tag(sync=True)
    base_messages = t.List(t.Dict(), help="The editor's messages when the conversation began.").tag(sync=True)
    variables = t.Dict(help="Template variables by name (text; JSON text is parsed).").tag(sync=True)
    variable_names = t.List(t.Unicode(), help="Placeholder roots found in the messages.").tag(sync=True)
    missing = t.List(t.Unicode(), help="Placeholders with no value.").tag(sync=True)
    targets = t.List(t.Dict(), help="1-4 targets: model, params, response_format, tools, kind.").tag(sync=True)
    models = t.List(t.Dict(), help="Models for the picker, with key status (never keys).").tag(sync=True)
    tool_names = t.List(t.Unicode(), help="Names of the functions passed as tools.").tag(sync=True)
    tool_mode = t.Unicode("auto", help="'auto' runs tools in the kernel; 'manual' asks you.").tag(sync=True)
    status = t.Unicode("idle", help="idle, running or stopping.").tag(sync=True)
    error = t.Unicode("", help="The last validation error, or ''.").tag(sync=True)
    outputs: t.List[Any] = t.List(help="Per target, the last finished run (RunResult.to_dict()) or None.").tag(sync=True)
    previous: t.List[Any] = t.List(help="Per target, the previous run's text (for the diff) or None.").tag(sync=True)
    history = t.Dict(help="The history panel page: scope, offset, total, items.").tag(sync=True)
    prompt_ref = t.Unicode("", help="The registry version last saved or loaded.").tag(sync=True)
    prompt_labels = t.List(t.Unicode(), help="The labels given to the last save (the labels field).").tag(
        sync=True
    )

    @t.validate("messages", "base_messages", "variables", "targets", "models", "tool_mode", "status", "outputs",
                "previous", "history")  # fmt: skip
    def _check_protocol(self, proposal: t.Bunch) -> Any:
        """Synced values must match the protocol (``widgets/protocol.py``); a bad one is refused in one line."""
        from nbplayground.widgets import protocol  # pydantic: loaded with the first widget, not on import

        try:
            return protocol.check_trait(proposal["trait"].name, proposal["value"])
        except ValueError as exc:
            raise t.TraitError(f"Playground.{exc}") from None

    def __init__(
        self,
        messages: list[dict[str, Any]] | str | None = None,
        *,
        variables: dict[str, Any] | None = None,
        models: Iterable[Any] | None = None,
        model: str | None = None,
        params: dict[str, Any] | None = None,
        system: str | None = None,
        tools: Iterable[Callable[..., Any]] | None = None,
        tool_mode: str = "auto",
        prompt: str | None = None,
        **kwargs: Any,
    ) -> None:
        from nbplayground import config

        specs = (
            list(models) if models is not None else [model or config.settings().default_model or "mock/echo"]
        )
        if not 1 <= len(specs) <= MAX_TARGETS:
            raise E.BadParameterError(f"A playground has 1 to {MAX_TARGETS} targets, got {len(specs)}.")
        if tool_mode not in ("auto", "manual"):
            raise E.BadParameterError(f"tool_mode must be 'auto' or 'manual'; got {tool_mode!r}.")
        msgs = ed.editor_messages(messages, system)
        super().__init__(
            messages=msgs, base_messages=msgs,
            variables={k: v if isinstance(v, str) else json.dumps(v) for k, v in (variables or {}).items()},
            targets=[ed.target_entry(s, params) for s in specs], tool_mode=tool_mode,
            outputs=[None] * len(specs), previous=[None] * len(specs),
            history={"scope": "widget", "offset": 0, "total": 0, "items": []}, **kwargs,
        )  # fmt: skip
        self.id = "pg-" + uuid.uuid4().hex[:10]
        self._functions = list(tools or [])
        self.tool_names = [getattr(f, "__name__", str(f)) for f in self._functions]
        self._handle: RunHandle | None = None
        self._pump: StreamPump | None = None
        self._run_seq = 0
        self._ready = False
        self._lock = threading.RLock()
        self._idle = threading.Event()
        self._idle.set()
        self._last: list[RunResult] = []
        self._displays: list[Any] = []
        self._turns = 0
        # the first turn a run appended: where the prompt ends and the conversation begins
        self._first_answer: str | None = None
        self.observe(self._on_messages, names="messages")
        self.observe(self._on_variables, names="variables")
        self.on_msg(self._on_front_msg)
        self._on_messages()
        self.models = ed.model_choices()
        if prompt is not None:
            self.load_version(prompt)

    # -- observers ------------------------------------------------------------------------------------
    def _on_messages(self, change: Any = None) -> None:
        self.variable_names = ed.placeholder_roots(self.messages)
        self._on_variables()

    def _on_variables(self, change: Any = None) -> None:
        self.missing = [n for n in self.variable_names if str(self.variables.get(n, "")) == ""]

    # -- Python API -----------------------------------------------------------------------------------
    def run(self) -> RunHandle:
        """Run the editor's messages on every target (continuing the conversation); returns at once.

        The answer of the first target becomes an assistant message when the run ends. Wait with
        ``pg.wait()`` (or the returned handle's ``wait()``); read ``pg.results``.
        """
        return self._start(clear=False)

    def clear_and_run(self) -> RunHandle:
        """Drop the conversation (answers and the turns after them), keep the prompt as edited, then run."""
        return self._start(clear=True)

    def stop(self) -> None:
        """Stop every target now; partial text is kept and the runs are recorded as stopped."""
        with self._lock:
            if self._handle is not None and not self._handle.done:
                self.status = "stopping"
                self._handle.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the current run (and its bookkeeping) is over; False on timeout."""
        return self._idle.wait(timeout)

    @property
    def results(self) -> api.Comparison:
        """The results of the last finished run, one per target."""
        if self._handle is not None and self._handle.done:
            self._idle.wait(10)  # the engine is done: let the bookkeeping (outputs, thread) finish too
        out = api.Comparison(self._last)
        out.group_id = self._last[0].group_id if self._last else None
        return out

    def save_version(self, name: str, labels: Iterable[str] = (), *, conversation: bool = False) -> str:
        """Save the prompt you wrote (messages, first target's model and params) as a new registry version.

        After a run the editor also holds the model's answers and the turns that followed; they are left
        out unless ``conversation=True`` (then the whole conversation is saved, as few-shot turns).
        """
        labels = [labels] if isinstance(labels, str) else list(labels)
        messages = ed.conversation(self.messages) if conversation else self._prompt_messages()
        ref = library.save_prompt(name, messages, self.targets[0], labels)
        self.set_state_from_python(prompt_ref=ref, prompt_labels=labels)
        return ref

    def load_version(self, ref: str) -> None:
        """Load a registry version into the editor (messages; model and params into the first target)."""
        self.set_state_from_python(**library.load_state(ref, list(self.targets)))
        self._turns = 0
        self._first_answer = None

    def restore(self, run_id: str) -> None:
        """Load a stored run (and the other targets of its compare) into the editor.

        Raises :class:`~nbplayground.core.errors.RunNotFoundError` when the history has no such run.
        """
        state, group = library.restore_state(run_id, self.tool_mode)
        self.set_state_from_python(**state)
        self._last = group
        self._turns = 0
        self._first_answer = None

    @classmethod
    def from_run(cls, run_id: str, **kwargs: Any) -> Playground:
        """A new playground holding a stored run: "open in playground"."""
        pg = cls(**kwargs)
        pg.restore(run_id)
        return pg

    def set_state_from_python(self, **traits: Any) -> None:
        """Set several traits in one sync message."""
        with self.hold_sync():
            for k, v in traits.items():
                setattr(self, k, v)

    # -- running --------------------------------------------------------------------------------------
    def _prompt_messages(self) -> list[dict[str, Any]]:
        """The prompt as written: the editor's messages before the first answer a run appended."""
        return ed.prompt_messages(self.messages, len(self.base_messages), self._first_answer)

    def _spec(self) -> RunSpec:
        """The run the editor describes: its messages (system and user ones are templates), variables, targets."""
        return ed.run_spec(self.messages, self.variables, self.targets, self._functions, self.tool_mode,
                           self.id, self.prompt_ref)  # fmt: skip

    def _requests(self) -> list[RunRequest]:
        requests = plan(self._spec())
        for req in requests:
            if req.kind == "transcription":
                raise E.BadParameterError(
                    f"Target {req.target_index + 1}: {req.model} transcribes audio; use "
                    "nbp.run(kind='transcription', input=...) or %%prompt --transcribe (the playground sends text)."
                )
        return requests

    def _rendered(self) -> list[dict[str, Any]]:
        """What a run sends: the editor's messages with their placeholders filled."""
        return self._requests()[0].messages

    def _start(self, clear: bool) -> RunHandle:
        with self._lock:
            if not self._idle.is_set():
                raise E.NBPlaygroundError("A run is in progress: stop it first (pg.stop()).")
            if clear:
                self.set_state_from_python(messages=self._prompt_messages())
                self._turns = 0
                self._first_answer = None
            if self._turns == 0:
                self.base_messages = [dict(m) for m in self.messages]
            try:
                requests = self._requests()
            except E.NBPlaygroundError as exc:
                self.error = str(exc)
                raise
            self.error = ""
            self._run_seq += 1
            seq = self._run_seq
            self._idle.clear()
            self.status = "running"
            handle = api.start(requests)
            self._handle = handle
            self._emit_msg({"type": "run_started", "run": seq,
                        "targets": [{"index": r.target_index, "model": r.model, "run_id": r.run_id} for r in requests]})  # fmt: skip
            pump = StreamPump(
                handle,
                send=lambda events: self._emit_msg({"type": "events", "run": seq, "events": events}),
                on_end=lambda: self._finish(handle, seq),
                event_dict=ed.event_dict,
            )
            self._pump = pump
            pump.start()
            return handle

    def _finish(self, handle: RunHandle, seq: int) -> None:
        try:
            results = handle.results(timeout=30)
            with self._lock:
                previous = [r.get("text") if isinstance(r, dict) else None for r in self.outputs]
                while len(previous) < len(results):
                    previous.append(None)
                first = results[0]
                msgs = list(self.messages)
                if first.status == "ok":
                    turn = ed.turn_messages(first, self.tool_mode)
                    if self._turns == 0:
                        self._first_answer = ed.message_key(turn[0])
                    msgs.extend(turn)
                    self._turns += 1
                self._last = list(results)
                self.set_state_from_python(
                    outputs=[ed.result_state(r) for r in results], previous=previous[: len(results)],
                    messages=msgs, status="idle",
                )  # fmt: skip
                self._refresh_history()
                self._emit_msg({"type": "run_finished", "run": seq})
                self._update_displays()
        except Exception as exc:  # the widget must never be left "running"
            self.error = f"{type(exc).__name__}: {exc}"
            self.status = "idle"
        finally:
            self._idle.set()

    # -- comm -----------------------------------------------------------------------------------------
    def _emit_msg(self, msg: dict[str, Any]) -> None:
        if self._ready and self.comm is not None:
            self.send(msg)

    def _on_front_msg(self, _widget: Any, msg: dict[str, Any], _buffers: list[bytes]) -> None:
        kind = msg.get("type")
        try:
            if kind == "ready":
                self._ready = True
                pump = self._pump
                if pump is not None and self._handle is not None and not self._handle.done:
                    self.send({"type": "snapshot", "run": self._run_seq, "texts": pump.snapshot()})
                self._refresh_history()
            elif kind == "run":
                self.run()
            elif kind == "clear_and_run":
                self.clear_and_run()
            elif kind == "stop":
                self.stop()
            elif kind == "history":
                self._refresh_history(scope=msg.get("scope"), offset=msg.get("offset"))
            elif kind == "restore":
                self.restore(str(msg.get("run_id")))
            elif kind == "save_version":
                labels = msg.get("labels") or []
                if not isinstance(labels, list):
                    raise E.BadParameterError("Labels are a list of words, e.g. ['prod'].")
                ref = self.save_version(str(msg.get("name", "")), labels=[str(x) for x in labels],
                                        conversation=bool(msg.get("conversation")))  # fmt: skip
                self._emit_msg({"type": "saved", "ref": ref})
            elif kind == "load_version":
                self.load_version(str(msg.get("ref", "")))
            else:
                raise E.BadParameterError(f"Unknown widget command {kind!r}.")
            if kind not in ("run", "clear_and_run"):
                self.error = ""
        except E.NBPlaygroundError as exc:
            self.error = str(exc)
            self._emit_msg({"type": "error", "message": str(exc)})
        except Exception as exc:  # shown in the widget, not lost in the kernel log
            self.error = f"{type(exc).__name__}: {exc}"
            self._emit_msg({"type": "error", "message": self.error})

    def _refresh_history(self, scope: str | None = None, offset: Any = None) -> None:
        self.history = library.history_page(self.id, dict(self.history), scope, offset)

    # -- display with a static fallback (see widgets/_base.py) ----------------------------------------
    def fallback_bundle(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The static copy of the last results: HTML columns, plain text, provenance metadata."""
        if not self._last:
            return {"text/html": '<div class="nbp-fallback"></div>', "text/plain": ""}, {}
        data, meta = display.compare_bundle(
            [r.model for r in self._last], [r.text for r in self._last], self._last
        )
        html_ = f'<div class="nbp-fallback"><div><b>Playground</b> · last run</div>{data["text/html"]}</div>'
        return {"text/html": html_, "text/plain": data["text/plain"]}, meta

    def display_after(self) -> None:
        """The static copy of the last results, refreshed after every run."""
        from IPython.display import display as ipy_display

        data, meta = self.fallback_bundle()
        self._displays.append(ipy_display(data, metadata=meta, raw=True, display_id=True))

    def _update_displays(self) -> None:
        """After a run, refresh the static copies so a saved notebook keeps the last outputs."""
        data, meta = self.fallback_bundle()
        for handle in self._displays:
            if handle is not None:
                handle.update(data, metadata=meta, raw=True)

    def __repr__(self) -> str:
        models = ", ".join(tg["model"] for tg in self.targets)
        return f"Playground({models}; {len(self.messages)} messages; {self.status})"
