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
from pathlib import Path
from typing import Any

import anywidget
import traitlets as t

from nbplayground import api
from nbplayground.core import display
from nbplayground.core import errors as E
from nbplayground.core.engine import RunHandle
from nbplayground.core.plan import MAX_TARGETS, ROLES, Origin, RunSpec, TargetSpec, plan, schema_of
from nbplayground.core.types import Event, RunRequest, RunResult
from nbplayground.widgets._stream import StreamPump

STATIC = Path(__file__).resolve().parents[1] / "static"
#: Media up to this size travels in the ``results`` trait (base64); larger media is shown by reference.
MAX_INLINE_MEDIA = 2_000_000
_PARAM_KEYS = ("temperature", "max_tokens", "top_p", "stop", "seed")

_MISSING_BUNDLE = """
export default { render({ el }) {
  el.innerHTML = "<div style='padding:8px;border:1px solid #c00'>nbplayground: the widget front end is not "
    + "built. Reinstall with <code>pip install -e .</code> (needs npm) or run <code>npm run build</code> in js/.</div>";
} };
"""


def _asset(name: str, fallback: str) -> Any:
    path = STATIC / name
    return path if path.exists() else fallback


def _target(spec: Any, params: dict[str, Any] | None) -> dict[str, Any]:
    """A ``targets`` entry from a model name or ``{"model", "params", "response_format", "tools"}``."""
    if isinstance(spec, str):
        spec = {"model": spec}
    if not isinstance(spec, dict) or not spec.get("model"):
        raise E.BadParameterError(
            f"A target is a model name or {{'model': ..., 'params': ...}}, got {spec!r}."
        )
    rf = spec.get("response_format")
    if rf is not None and not isinstance(rf, str):
        rf = json.dumps(schema_of(rf))
    return {
        "model": spec["model"],
        "params": {**(params or {}), **(spec.get("params") or {})},
        "response_format": rf,
        "tools": bool(spec.get("tools", True)),
        "kind": spec.get("kind", "auto"),
    }


def _messages(messages: Any, system: str | None) -> list[dict[str, Any]]:
    if messages is None:
        out: list[dict[str, Any]] = [{"role": "user", "content": ""}]
    elif isinstance(messages, str):
        out = [{"role": "user", "content": messages}]
    else:
        out = [dict(m) for m in messages]
    if system is not None:
        out = [{"role": "system", "content": system}, *[m for m in out if m.get("role") != "system"]]
    for m in out:
        if m.get("role") not in ROLES:
            raise E.BadParameterError(f"A message role is one of {', '.join(ROLES)}, got {m.get('role')!r}.")
        m["content"] = "" if m.get("content") is None else m["content"]
    return out


def _variable_value(raw: Any) -> Any:
    """Editor values are text; text that parses as a JSON object or array is used as JSON."""
    if isinstance(raw, str) and raw.strip()[:1] in ("{", "["):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def _roots(messages: list[dict[str, Any]]) -> list[str]:
    from nbplayground.core.templating import placeholders, root

    names: dict[str, None] = {}
    for m in messages:
        if m.get("role") in ("system", "user") and isinstance(m.get("content"), str):
            for path in placeholders(m["content"]):
                names.setdefault(root(path), None)
    return list(names)


def _result_state(r: RunResult) -> dict[str, Any]:
    out = r.to_dict()
    out["media"] = [m.to_dict(include_data=len(m.data) <= MAX_INLINE_MEDIA) for m in r.media]
    out.pop("messages", None)  # the editor already shows the conversation
    return out


class Playground(anywidget.AnyWidget):
    """An interactive prompt playground in the notebook, mirrored by a Python API.

    ``Playground(messages=..., variables=..., models=[...], params=..., tools=[f, g])``; then ``run()``,
    ``clear_and_run()``, ``stop()``, ``results``. Every run goes through the engine and lands in history
    (``surface='widget'``, ``thread_id`` = this widget's id).
    """

    _esm = _asset("playground.js", _MISSING_BUNDLE)
    _css = _asset("playground.css", "")

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
        msgs = _messages(messages, system)
        super().__init__(
            messages=msgs, base_messages=msgs,
            variables={k: v if isinstance(v, str) else json.dumps(v) for k, v in (variables or {}).items()},
            targets=[_target(s, params) for s in specs], tool_mode=tool_mode,
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
        self.models = _model_choices()
        if prompt is not None:
            self.load_version(prompt)

    # -- observers ------------------------------------------------------------------------------------
    def _on_messages(self, change: Any = None) -> None:
        self.variable_names = _roots(self.messages)
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
        from nbplayground.storage import registry

        labels = [labels] if isinstance(labels, str) else list(labels)
        target = self.targets[0]
        messages = self._conversation() if conversation else self._prompt_messages()
        saved = registry.save(
            name, messages=messages, model=target["model"], params=dict(target.get("params") or {}),
            labels=labels,
        )  # fmt: skip
        self.set_state_from_python(prompt_ref=saved.ref, prompt_labels=labels)
        return saved.ref

    def load_version(self, ref: str) -> None:
        """Load a registry version into the editor (messages; model and params into the first target)."""
        from nbplayground.storage import registry

        saved = registry.get(ref)
        msgs = _messages(saved.messages, None)
        first = dict(self.targets[0])
        if saved.model:
            first["model"] = saved.model
        first["params"] = dict(saved.params or {})
        # the labels field starts empty: saving an edit of "@prod" must not move "prod" unless asked
        self.set_state_from_python(messages=msgs, base_messages=msgs, targets=[first, *self.targets[1:]],
                                   prompt_ref=saved.ref, prompt_labels=[])  # fmt: skip
        self._turns = 0
        self._first_answer = None

    def restore(self, run_id: str) -> None:
        """Load a stored run (and the other targets of its compare) into the editor."""
        run = api.get_run(run_id)
        if run is None:
            raise E.NBPlaygroundError(f"No run with id {run_id!r} in history.")
        group = [run]
        if run.group_id:
            from nbplayground.storage import history as store

            rows = store.history(limit=MAX_TARGETS * 4, group_id=run.group_id)
            ids = list(dict.fromkeys(r.id for r in rows))
            group = [r for r in (api.get_run(i) for i in ids) if r is not None] or [run]
            group.sort(key=lambda r: r.target_index)
        template = (run.template or {}).get("messages") or run.messages
        msgs = _messages(template, None)
        targets = []
        for r in group[:MAX_TARGETS]:
            info = r.template or {}
            rf = info.get("response_format")
            targets.append({"model": r.model, "params": dict(r.params or {}),
                            "response_format": json.dumps(rf) if rf else None, "tools": bool(info.get("tools"))})  # fmt: skip
        from nbplayground.core.templating import nest

        stored = nest(run.variables or {})  # runs store values by placeholder path: back into objects
        variables = {k: v if isinstance(v, str) else json.dumps(v) for k, v in stored.items()}
        self.set_state_from_python(
            messages=msgs, base_messages=msgs, variables=variables, targets=targets,
            outputs=[_result_state(r) for r in group[:MAX_TARGETS]], previous=[None] * len(targets),
            tool_mode=(run.template or {}).get("tool_mode", self.tool_mode), prompt_ref=run.prompt_ref or "",
            prompt_labels=[],
        )  # fmt: skip
        self._last = group[:MAX_TARGETS]
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
    def _template(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in m.items() if k in ("role", "content", "tool_call_id", "tool_calls", "name")}
                for m in self.messages]  # fmt: skip

    def _prompt_messages(self) -> list[dict[str, Any]]:
        """The prompt as written: the editor's messages before the first answer a run appended.

        Messages edited after the run are kept as edited. The answer is found where the run put it (even
        if its text was edited), else wherever it moved; when it is gone, the editor is taken as it is.
        """
        msgs = self._template()
        if self._first_answer is None:
            return msgs
        keys = [_message_key(m) for m in msgs]
        n = len(self.base_messages)
        if n < len(msgs) and (keys[n] == self._first_answer or msgs[n].get("role") == "assistant"):
            return msgs[:n]
        if self._first_answer in keys:
            return msgs[: keys.index(self._first_answer)]
        return msgs

    def _conversation(self) -> list[dict[str, Any]]:
        """The whole editor, without trailing empty slots (an unanswered tool call, an unwritten user turn)."""
        msgs = self._template()
        while msgs and msgs[-1]["role"] in ("user", "tool") and not _text(msgs[-1]):
            msgs.pop()
        return msgs

    def _to_send(self) -> list[dict[str, Any]]:
        """The editor's messages as the run's template: every tool call answered, an empty trailing user turn
        left out (a slot not yet filled), and a conversation that ends where a model can go on."""
        msgs = self._template()
        for m in msgs:
            if m["role"] == "tool" and not str(m.get("content") or "").strip():
                raise E.BadParameterError(
                    f"Answer the tool call {m.get('tool_call_id')!r}: type its result in the tool message."
                )
        while msgs and msgs[-1]["role"] == "user" and not str(msgs[-1].get("content") or "").strip():
            msgs.pop()
        if not msgs:
            raise E.BadParameterError("Nothing to run: write a message first.")
        if msgs[-1]["role"] == "assistant" and not msgs[-1].get("tool_calls"):
            raise E.BadParameterError("Add a user message to continue the conversation, or use Clear & Run.")
        return msgs

    def _spec(self) -> RunSpec:
        """The run the editor describes: its messages (system and user ones are templates), variables, targets."""
        template = self._to_send()
        targets = []
        for i, target in enumerate(self.targets):
            rf = target.get("response_format")
            if isinstance(rf, str) and rf.strip():
                try:
                    rf = json.loads(rf)
                except ValueError:
                    raise E.BadParameterError(f"Target {i + 1}: response_format is not valid JSON.") from None
            else:
                rf = None
            params = {k: v for k, v in (target.get("params") or {}).items() if v not in (None, "")}
            targets.append(TargetSpec(target.get("model") or None, params, rf, target.get("kind") or "auto",
                                      bool(target.get("tools", True))))  # fmt: skip
        return RunSpec(
            messages=template, variables={k: _variable_value(v) for k, v in self.variables.items() if str(v) != ""},
            targets=targets, tools=self._functions, tool_mode=self.tool_mode,
            origin=Origin(surface="widget", thread_id=self.id, prompt_ref=self.prompt_ref or None),
        )  # fmt: skip

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
                event_dict=_event_dict,
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
                    turn = _turn_messages(first, self.tool_mode)
                    if self._turns == 0:
                        self._first_answer = _message_key(turn[0])
                    msgs.extend(turn)
                    self._turns += 1
                self._last = list(results)
                self.set_state_from_python(
                    outputs=[_result_state(r) for r in results], previous=previous[: len(results)],
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
        from nbplayground.storage import history as store

        scope = scope if scope in ("widget", "all") else self.history.get("scope", "widget")
        offset = max(0, int(offset if offset is not None else self.history.get("offset", 0)))
        filters = {"thread_id": self.id} if scope == "widget" else {}
        page = store.history(limit=20, offset=offset, **filters)
        total = store.count(**filters)
        items = [
            {"id": row.id, "group_id": row.group_id, "created_at": row.created_at.isoformat(),
             "model": row.model, "status": row.status, "text": (row.text or "")[:200],
             "tokens_in": _num(row.tokens_in), "tokens_out": _num(row.tokens_out),
             "cost_usd": _num(row.cost_usd), "latency_ms": _num(row.latency_ms)}
            for row in page
        ]  # fmt: skip
        self.history = {"scope": scope, "offset": offset, "total": int(total), "items": items}

    # -- display with a static fallback ---------------------------------------------------------------
    # The widget's own output is never updated: JupyterLab re-creates a widget view whenever its output
    # changes (losing focus and scroll). The last results go to a second output instead, a static copy
    # that the widget's CSS hides wherever the live widget renders, and that GitHub, nbviewer and a
    # kernel-less reload show.
    def fallback_bundle(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The static copy of the last results: HTML columns, plain text, provenance metadata."""
        if not self._last:
            return {"text/html": '<div class="nbp-fallback"></div>', "text/plain": ""}, {}
        data, meta = display.compare_bundle(
            [r.model for r in self._last], [r.text for r in self._last], self._last
        )
        html_ = f'<div class="nbp-fallback"><div><b>Playground</b> · last run</div>{data["text/html"]}</div>'
        return {"text/html": html_, "text/plain": data["text/plain"]}, meta

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data, meta = bundle if isinstance(bundle, tuple) else (bundle, {})
        return {**data, "text/plain": repr(self)}, meta

    def _ipython_display_(self) -> None:
        from IPython.display import display as ipy_display

        bundle = self._repr_mimebundle_()
        if bundle is None:
            return
        ipy_display(bundle[0], metadata=bundle[1], raw=True)
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


def _num(value: float | None) -> float | None:
    return None if value is None else float(value)


def _text(m: dict[str, Any]) -> str:
    return str(m.get("content") or "").strip()


def _message_key(m: dict[str, Any]) -> str:
    """A comparable form of a message as the editor holds it (what survives the JSON round trip)."""
    keep = {k: v for k, v in m.items() if k in ("role", "content", "tool_call_id", "tool_calls", "name")}
    return json.dumps(keep, sort_keys=True, default=str)


def _event_dict(ev: Event) -> dict[str, Any]:
    out = ev.to_dict()
    result = out.get("result")
    if isinstance(result, dict):
        result.pop("messages", None)  # sent once in the traits, not in every done event
    return out


def _turn_messages(r: RunResult, tool_mode: str) -> list[dict[str, Any]]:
    """The messages a finished run adds to the conversation: its answer, and slots for manual tool results."""
    from nbplayground.storage.threads import assistant_message

    msg = assistant_message(r)
    if r.data is not None and not r.text:
        msg["content"] = json.dumps(r.data)
    out = [{k: v for k, v in msg.items() if v is not None or k == "content"}]
    out[0]["content"] = out[0].get("content") or ""
    for call in out[0].get("tool_calls") or []:
        out.append({"role": "tool", "tool_call_id": call["id"], "content": ""})
    return out


def _model_choices() -> list[dict[str, Any]]:
    """Models for the picker: mock, custom and known provider models, with key status (no litellm import)."""
    from nbplayground.core import catalog

    try:
        found = catalog.providers()
    except Exception:
        return []
    return [{"model": m, "provider": p.provider, "key_status": p.key_status} for p in found for m in p.models[:200]]
