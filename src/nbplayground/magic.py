"""The ``%%prompt`` cell magic and its line magics: a thin surface over the engine.

Parsing, namespace lookups and display live here; templates, providers, retries and storage do not.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import re
import shlex
import time
from typing import Any, ClassVar

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from traitlets import Unicode

from nbplayground import api
from nbplayground.core import display, render
from nbplayground.core import errors as E
from nbplayground.core.engine import RunHandle
from nbplayground.core.fold import StreamFold, TargetFold
from nbplayground.core.plan import plan
from nbplayground.core.types import Media, RunResult

#: Display refresh period while streaming: at most 20 updates a second.
REFRESH_S = 0.05


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one short line for the notebook, not a SystemExit."""

    def __init__(self, prog: str, short_usage: str, **kw: Any) -> None:
        # exit_on_error stays on: argparse then routes every ArgumentError (a missing value, a bad
        # choice, two exclusive options) through error(), which raises instead of exiting.
        super().__init__(prog=prog, add_help=False, **kw)
        self.short_usage = short_usage

    def error(self, message: str) -> Any:
        raise UsageError(f"{message} · usage: {self.short_usage}")

    def parse(self, line: str) -> argparse.Namespace:
        """Split ``line`` as a shell would and parse it; any mistake is a one-line ``UsageError``."""
        try:
            words = shlex.split(line)
        except ValueError as exc:  # shlex: an unbalanced quote or a trailing backslash
            self.error(f"{str(exc).lower()} in {line.strip()!r}")
        return self.parse_args(words)


def _parser() -> _Parser:
    p = _Parser("%%prompt", "%%prompt [MODEL] [-p KEY=VALUE] [--chat NAME] [-o VAR] [--compare M1,M2] … "
                "(%%prompt --help lists every option)",
                description="Run the cell as a prompt; {{name}} placeholders come from the notebook.")  # fmt: skip
    p.add_argument("model", nargs="?", help="model name (default: %%config Prompt.model, then config.toml)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE", help="model parameter")
    p.add_argument("--system", help="system message")
    p.add_argument("--chat", metavar="NAME", help="named thread: the conversation continues across cells")
    p.add_argument("--clear", action="store_true", help="empty the --chat thread first (Clear & Run)")
    p.add_argument("-o", "--output", metavar="VAR", help="also assign the text (or parsed data) to VAR")
    p.add_argument("--schema", metavar="NAME_OR_JSON", help="structured output: pydantic model, dict or JSON")
    p.add_argument("--tools", metavar="F,G", help="functions from the notebook the model may call")
    p.add_argument("--tool-mode", choices=("auto", "manual"), default="auto")
    p.add_argument(
        "--tool-result", nargs="?", const="", metavar="CALL_ID",
        help="with --chat: the cell body answers this tool call (the id may be left out if only one is pending)",
    )  # fmt: skip
    kinds = p.add_mutually_exclusive_group()
    kinds.add_argument("--image", action="store_true", help="generate an image from the cell")
    kinds.add_argument("--speech", action="store_true", help="read the cell aloud (text to speech)")
    kinds.add_argument(
        "--transcribe", action="store_true", help="transcribe audio: the cell names a variable or file"
    )
    p.add_argument("--format", choices=display.FORMATS, default="markdown")
    p.add_argument(
        "--prompt", metavar="NS/SLUG[@V]", help="run a saved prompt; the cell body is the user message"
    )
    p.add_argument(
        "--vars", metavar="A,B", help="notebook variables a --prompt may read that are not plain data"
    )
    p.add_argument("--save", metavar="NS/SLUG", help="save this prompt as a new version")
    p.add_argument("--compare", metavar="M1,M2", help="run 1-4 models side by side")
    p.add_argument("--no-stream", action="store_true", help="show only the final answer")
    p.add_argument("--no-history", action="store_true", help="do not record this run")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def parse_value(raw: str) -> Any:
    """``-p`` values: JSON (numbers, true/false, null, lists, objects), Python's True/False/None, else text."""
    try:
        return json.loads(raw)
    except ValueError:
        pass
    return {"True": True, "False": False, "None": None}.get(raw, raw)


def parse_params(items: list[str]) -> dict[str, Any]:
    """``["temperature=0.2", "stop=[\\"x\\"]"]`` -> ``{"temperature": 0.2, "stop": ["x"]}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"-p expects KEY=VALUE, got {item!r} (e.g. -p temperature=0.2)")
        out[key.strip()] = parse_value(raw.strip())
    return out


def _pending_call(thread: list[dict[str, Any]], name: str, call_id: str) -> str:
    """The tool call a ``--tool-result`` cell answers: the given id, or the only one the thread awaits."""
    last = thread[-1] if thread else {}
    pending = [c["id"] for c in last.get("tool_calls") or []]
    if not pending:
        raise UsageError(
            f"Thread {name!r} is not waiting for a tool result (run with --tool-mode manual first)"
        )
    if call_id and call_id not in pending:
        raise UsageError(
            f"Thread {name!r} has no pending tool call {call_id!r}; pending: {', '.join(pending)}"
        )
    if not call_id and len(pending) > 1:
        raise UsageError(f"Thread {name!r} awaits {len(pending)} tool calls: name one with --tool-result CALL_ID "
                         f"({', '.join(pending)})")  # fmt: skip
    return call_id or pending[0]


#: ``%prompt_history`` lists at most this many runs (``nbp.history(limit=...)`` returns more).
HISTORY_MAX = 1000
#: Characters of an answer a history line shows (its tooltip holds up to TOOLTIP characters).
PREVIEW, PLAIN_PREVIEW, TOOLTIP = 120, 60, 2000


def _history_count(raw: str) -> int:
    """``%prompt_history``'s N: a whole number from 1 to :data:`HISTORY_MAX`."""
    try:
        n = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {raw!r}") from None
    if not 1 <= n <= HISTORY_MAX:
        raise argparse.ArgumentTypeError(
            f"must be 1 to {HISTORY_MAX}, got {n} (nbp.history(limit=...) returns more)"
        )
    return n


def _shorten(text: str, limit: int) -> str:
    """``text`` on one line (whitespace collapsed), cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


@dataclasses.dataclass
class HistoryTable:
    """What ``%prompt_history`` shows: one line per run, the short id first (for ``%prompt_replay``).

    ``frame`` holds those runs as ``nbp.history()`` returns them (every column, for further work).
    """

    frame: Any
    COLUMNS: ClassVar[tuple[str, ...]] = ("id", "when", "surface", "model", "status", "tokens", "cost",
                                          "ms", "answer")  # fmt: skip

    def rows(self) -> list[dict[str, str]]:
        """Each run as display strings; ``answer`` is the whole text (or the error of a failed run)."""
        import pandas as pd

        def given(v: Any) -> bool:
            return v is not None and not (isinstance(v, float | int) and pd.isna(v)) and v is not pd.NA

        local = dt.datetime.now().astimezone().tzinfo  # the notebook's own clock
        today = dt.datetime.now(local).date()
        out = []
        for r in self.frame.to_dict("records"):
            when = pd.Timestamp(r["created_at"])
            when = when.tz_convert(local) if when.tzinfo else when
            tin, tout = r.get("tokens_in"), r.get("tokens_out")
            answer = str(r.get("text") or "") or str(r.get("error") or "")
            out.append({
                "id": str(r["id"])[:8],
                "when": when.strftime("%H:%M:%S" if when.date() == today else "%Y-%m-%d %H:%M"),
                "surface": str(r.get("surface") or ""), "model": str(r.get("model") or ""),
                "status": str(r.get("status") or ""),
                "tokens": f"{int(tin) if given(tin) else '–'}→{int(tout) if given(tout) else '–'}"
                if given(tin) or given(tout) else "–",
                "cost": f"${r['cost_usd']:.6f}" if given(r.get("cost_usd")) else "–",
                "ms": f"{r['latency_ms']:.0f}" if given(r.get("latency_ms")) else "–",
                "answer": answer,
            })  # fmt: skip
        return out

    def plain(self) -> str:
        """A fixed-width table, one line per run."""
        rows = [{**r, "answer": _shorten(r["answer"], PLAIN_PREVIEW)} for r in self.rows()]
        if not rows:
            return "No runs yet."
        widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in self.COLUMNS}
        lines = [[c.ljust(widths[c]) for c in self.COLUMNS]]
        lines += [[r[c].ljust(widths[c]) for c in self.COLUMNS] for r in rows]
        return "\n".join("  ".join(cells).rstrip() for cells in lines)

    def html(self) -> str:
        """An HTML table (every cell escaped) sized for reading: ids whole, answers on one or two lines."""
        rows = self.rows()
        if not rows:
            return render.page("<p><i>No runs yet.</i></p>")
        # JupyterLab lays tables out with fixed columns and the output container breaks words anywhere:
        # ask for auto widths and keep short cells (ids above all) whole, on one line
        nowrap = "white-space:nowrap;overflow-wrap:normal;text-align:left"
        left = "text-align:left;min-width:20em;max-width:60em"
        head = "".join(f'<th style="{left if c == "answer" else nowrap}">{c}</th>' for c in self.COLUMNS)
        body = []
        for r in rows:
            cells = [f'<td style="{nowrap};font-family:monospace">{render.escape(r["id"])}</td>']
            cells += [f'<td style="{nowrap}">{render.escape(r[c])}</td>' for c in self.COLUMNS[1:-1]]
            cells.append(f'<td style="{left}" title="{render.escape(r["answer"][:TOOLTIP])}">'
                         f"{render.escape(_shorten(r['answer'], PREVIEW))}</td>")  # fmt: skip
            body.append(f"<tr>{''.join(cells)}</tr>")
        return render.page(
            f'<table style="table-layout:auto;margin:0"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>"
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": self.plain(), "text/html": self.html()}

    def __repr__(self) -> str:
        return self.plain()


#: Events that change what a streaming cell shows (usage alone does not).
_SHOWN_EVENTS = frozenset({"delta", "retry", "tool_call", "done", "error"})


def _note(t: TargetFold) -> str:
    """What a streaming cell says beside the model: the tool being called, a retry and why."""
    note = f" · calling {t.tool_calls[-1].name}" if t.tool_calls else ""
    if t.attempt > 1:
        note += f" · attempt {t.attempt} after {t.retry_reason or 'an error'}"
    return note


def _answer(r: RunResult) -> Any:
    """What ``-o`` assigns for a run that did not fail: parsed data, else the first media, else the text."""
    if r.data is not None:
        return r.data
    return r.media[0] if r.media else r.text


_BARE_VAR = re.compile(r"^\s*(?:\{\{\s*)?([^\W\d]\w*)(?:\s*\}\})?\s*$")


@magics_class
class Prompt(Magics):
    """``%%prompt``: run the cell as a prompt, streaming the answer into the cell."""

    model = Unicode("", help="Default model for %%prompt (else default_model from config.toml).").tag(
        config=True
    )

    # -- helpers ---------------------------------------------------------------------------------
    @property
    def ns(self) -> dict[str, Any]:
        return self.shell.user_ns if self.shell is not None else {}

    def _lookup(self, name: str, what: str) -> Any:
        if name not in self.ns:
            raise UsageError(f"{what} {name!r} is not defined in the notebook")
        return self.ns[name]

    def _variables(
        self, *texts: str | None, saved: tuple[str, ...] = (), named: str | None = None
    ) -> dict[str, Any]:
        """Notebook values for the placeholders of the cell's own ``texts`` and of a saved prompt's texts.

        The cell's own placeholders may read anything in the notebook. A saved prompt's were written by
        someone else, so they read only plain data (``templating.is_plain``), unless the user names the
        variables with ``--vars a,b``: never a module, a function or an object such as ``os.environ``.
        """
        from nbplayground.core.templating import is_plain, placeholders, root

        def keys(path: str) -> tuple[str, str]:  # the root, and the whole path (a literal dotted name wins)
            return root(path), path

        allowed = {n.strip() for n in (named or "").split(",") if n.strip()}
        undefined = sorted(allowed - set(self.ns))
        if undefined:
            raise UsageError(f"--vars {', '.join(undefined)}: not defined in the notebook")
        out = {k: self.ns[k] for t in texts for p in placeholders(t or "") for k in keys(p) if k in self.ns}
        refused: dict[str, str] = {}
        for path in (p for t in saved for p in placeholders(t or "")):
            for k in keys(path):
                if k in out or k not in self.ns:
                    continue
                if k in allowed or is_plain(self.ns[k]):
                    out[k] = self.ns[k]
                else:
                    refused.setdefault(path, k)
        refused = {p: k for p, k in refused.items() if not any(k2 in out for k2 in keys(p))}
        if refused:
            path, name = next(iter(refused.items()))
            raise UsageError(
                f"Missing template variable{'s' if len(refused) > 1 else ''} of the saved prompt: "
                f"{', '.join(refused)}. `{path}` is not plain data ({name} is a {type(self.ns[name]).__name__}); "
                f"name it with --vars {name} to use it."
            )
        return out

    def _available(self) -> list[str]:
        import types

        names = [
            k for k, v in self.ns.items()
            if not k.startswith("_") and k not in ("In", "Out", "exit", "quit", "get_ipython")
            and not isinstance(v, types.ModuleType | types.FunctionType | type)
        ]  # fmt: skip
        return sorted(names)[:30]

    def _schema(self, spec: str | None) -> Any:
        if not spec:
            return None
        if spec in self.ns:
            return self.ns[spec]
        try:
            value = json.loads(spec)
        except ValueError:
            raise UsageError(f"--schema {spec!r} is neither a name in the notebook nor JSON") from None
        if not isinstance(value, dict):
            raise UsageError("--schema JSON must be an object (a JSON schema)")
        return value

    def _tools(self, spec: str | None) -> list[Any] | None:
        if not spec:
            return None
        tools = []
        for name in (n.strip() for n in spec.split(",") if n.strip()):
            fn = self._lookup(name, "Tool")
            if not callable(fn) and not isinstance(fn, dict):
                raise UsageError(f"Tool {name!r} is not a function")
            tools.append(fn)
        return tools

    def _audio(self, body: str) -> Any:
        m = _BARE_VAR.match(body)
        if m and m.group(1) in self.ns:
            value = self.ns[m.group(1)]
            if isinstance(value, RunResult):
                value = value.audio
            if isinstance(value, Media):
                return value.data
            return value
        path = body.strip()
        if not path:
            raise UsageError("--transcribe needs audio: a variable holding bytes/Media, or a file path")
        return path

    # -- the cell magic ----------------------------------------------------------------------------
    @line_cell_magic
    def prompt(self, line: str, cell: str | None = None) -> None:
        """Run the cell body as a prompt; ``%%prompt --help`` lists the options.

        The line form (``%prompt --prompt ns/slug``) runs with no body, which IPython does not allow for
        a cell magic: a saved prompt, a ``--chat`` turn with only a system change, and so on.
        """
        if line.strip() in ("-h", "--help"):
            print(_parser().format_help())
            return
        args = _parser().parse(line)
        try:
            self._run(args, cell or "")
        except E.NBPlaygroundError as exc:
            if args.debug:
                raise
            message = str(exc)
            if isinstance(exc, E.MissingVariablesError):
                have = self._available()
                message = (f"Missing template variable{'s' if len(exc.missing) > 1 else ''}: "
                           f"{', '.join(exc.missing)}. Defined in the notebook: {', '.join(have) or 'none'}.")  # fmt: skip
            raise UsageError(message) from None

    def _run(self, args: argparse.Namespace, body: str) -> None:
        params = parse_params(args.param)
        kind = (
            "image"
            if args.image
            else "speech"
            if args.speech
            else "transcription"
            if args.transcribe
            else "chat"
        )
        model = args.model or self.model or None
        body = body.rstrip("\n")  # IPython hands the cell over with a newline the user did not type
        text: str | None = body if body.strip() else None
        kw: dict[str, Any] = {
            "params": params, "system": args.system, "prompt": args.prompt, "kind": kind, "surface": "magic",
            "response_format": self._schema(args.schema), "tools": self._tools(args.tools),
            "tool_mode": args.tool_mode,
        }  # fmt: skip
        if kind == "speech":
            kw["input"], text = text or "", None
        elif kind == "transcription":
            kw["input"], text = self._audio(body), None
        if args.tool_result is not None and not args.chat:
            raise UsageError("--tool-result continues a thread: add --chat NAME")
        if args.chat:
            from nbplayground.storage import threads

            if args.clear:
                threads.clear(args.chat)
            last = threads.last_turn(args.chat)  # the conversation so far: its messages and answer
            kw["thread"] = [*last.messages, threads.assistant_message(last)] if last is not None else []
            kw["thread_id"] = args.chat
            if not args.model and last is not None:
                model = last.model  # a thread keeps its model
            if args.tool_result is not None:
                call_id = _pending_call(kw["thread"], args.chat, args.tool_result)
                kw["messages"] = [{"role": "tool", "tool_call_id": call_id, "content": body}]
                text = None
        elif args.clear:
            raise UsageError("--clear empties a thread: add --chat NAME")
        saved_texts: list[str] = []
        if args.prompt:
            from nbplayground.storage import registry

            kw["prompt"] = saved = registry.get(args.prompt)  # looked up once: the spec carries it
            saved_texts = [m["content"] for m in saved.messages if isinstance(m.get("content"), str)
                           and m.get("role") not in ("assistant", "tool", "function")]  # fmt: skip
        kw["variables"] = self._variables(
            text,
            args.system,
            kw.get("input") if kind == "speech" else None,
            saved=tuple(saved_texts),
            named=args.vars,
        )
        if args.compare:
            models = [m.strip() for m in args.compare.split(",") if m.strip()]
            if model and model not in models:
                models.insert(0, model)
            kw["models"] = models
        else:
            kw["model"] = model
        spec = api.build_spec(text, **kw)
        requests = plan(spec)
        if args.save:
            from nbplayground.storage import registry

            version = registry.save(args.save, messages=spec.template(), model=requests[0].model, params=params)
            print(f"saved as {version.ref}")
        handle = api.start(requests, history=not args.no_history)
        results = self._show(handle, args)
        if args.chat and not args.no_history:
            from nbplayground.storage import history

            # A thread lives in the store: make this turn durable before the cell ends, so even a
            # kernel that is killed right after still continues the conversation.
            history.flush(timeout=10)
        if args.output:
            self._assign(args.output, results, many=bool(args.compare))

    def _assign(self, name: str, results: list[RunResult], many: bool) -> None:
        """``-o NAME``: the answer (parsed data, media or text); a failed run gives ``None``, said in one line."""
        values = [None if r.status == "error" else _answer(r) for r in results]
        self.ns[name] = values if many else values[0]
        failed = [(i, r) for i, r in enumerate(results) if r.status == "error"]
        if not failed:
            return
        if many:
            print("; ".join(f"{name}[{i}] = None: {r.model} failed ({r.error_type or 'error'})"
                            for i, r in failed))  # fmt: skip
        else:
            print(f"{name} = None: the run failed ({failed[0][1].error_type or 'error'})")

    def _show(self, handle: RunHandle, args: argparse.Namespace) -> list[RunResult]:
        from IPython.display import display as ipy_display

        n = len(handle.requests)
        models = [r.model for r in handle.requests]
        fold = StreamFold(models, [r.run_id for r in handle.requests])
        compare = n > 1

        mds = [render.StreamingMarkdown() for _ in range(n)]

        def current() -> tuple[dict[str, Any], dict[str, Any]]:
            if compare:
                return display.compare_bundle(models, fold.texts, [t.result for t in fold.targets], mds)
            return display.partial(fold.texts[0], models[0], _note(fold.targets[0]), mds[0]), {}

        dh = ipy_display(current()[0], raw=True, display_id=True)
        index, finished, dirty = 0, False, False
        last = 0.0
        try:
            while not finished:
                events, finished = handle.poll(index, REFRESH_S)
                index += len(events)
                for ev in events:
                    fold.apply(ev)
                    dirty = dirty or ev.type in _SHOWN_EVENTS
                now = time.monotonic()
                if dirty and not finished and not args.no_stream and now - last >= REFRESH_S:
                    dh.update(current()[0], raw=True)
                    last, dirty = now, False
        except KeyboardInterrupt:
            handle.stop()
        final = handle.results(timeout=10)
        shown = list(final)
        if args.no_history:  # no run to look up: an id-less result's footer says "not stored"
            shown = [dataclasses.replace(r, id="") for r in final]
        if compare:
            data, meta = display.compare_bundle(models, [r.text for r in shown], shown)
        else:
            data, meta = display.bundle(shown[0], args.format, chat=args.chat)
        dh.update(data, metadata=meta, raw=True)
        return final

    # -- line magics ---------------------------------------------------------------------------------
    @line_magic
    def prompt_history(self, line: str) -> HistoryTable:
        """``%prompt_history [N]``: the N most recent runs (default 10), one line each."""
        p = _Parser("%prompt_history", f"%prompt_history [N] (N: how many recent runs, 1 to {HISTORY_MAX}, "
                    "default 10)")  # fmt: skip
        p.add_argument("n", nargs="?", type=_history_count, default=10, metavar="N")
        return HistoryTable(api.history(limit=p.parse(line).n))

    @line_magic
    def prompt_models(self, line: str) -> Any:
        """``%prompt_models``: providers, a sample of models, key status (never the key)."""
        df = api.providers()
        df = df.assign(models=df["models"].map(lambda ms: ", ".join(ms[:6]) + (" …" if len(ms) > 6 else "")))
        return df

    @line_magic
    def prompt_replay(self, line: str) -> None:
        """``%prompt_replay RUN_ID [-m MODEL] [-p KEY=VALUE]``: re-run a stored run, streaming."""
        p = _Parser("%prompt_replay", "%prompt_replay RUN_ID [-m MODEL] [-p KEY=VALUE]")
        p.add_argument("run_id")
        p.add_argument("-m", "--model")
        p.add_argument("-p", "--param", action="append", default=[])
        args = p.parse(line)
        try:
            requests = api.replay_requests(args.run_id, model=args.model, params=parse_params(args.param),
                                           surface="magic")  # fmt: skip
        except E.NBPlaygroundError as exc:
            raise UsageError(str(exc)) from None
        ns = argparse.Namespace(no_stream=False, format="markdown", chat=None, no_history=False)
        self._show(api.start(requests), ns)

    @line_magic
    def prompt_chat(self, line: str) -> None:
        """``%prompt_chat NAME``: show a thread's conversation."""
        from IPython.display import display as ipy_display

        from nbplayground.storage import threads

        name = line.strip()
        if not name:
            raise UsageError("usage: %prompt_chat NAME")
        msgs = threads.messages(name)
        if not msgs:
            ipy_display(render.bundle(f"<p><i>Thread <code>{render.escape(name)}</code> is empty.</i></p>",
                                      f"Thread {name!r} is empty."), raw=True)  # fmt: skip
            return
        blocks, plains = [], []
        for m in msgs:
            head = f"{m.get('role')}" + (f" ({m['tool_call_id']})" if m.get("tool_call_id") else "")
            content = m.get("content") if isinstance(m.get("content"), str) else json.dumps(m.get("content"))
            calls = [f"tool: {c['function']['name']}({c['function']['arguments']}) (call {c['id']})"
                     for c in m.get("tool_calls") or []]  # fmt: skip
            blocks.append(f"<div><b>{render.escape(head)}</b></div>" + render.markdown(content or "")
                          + "".join(f"<div><code>{render.escape(c)}</code></div>" for c in calls))  # fmt: skip
            plains.append("\n\n".join([head, content or "", *calls]))
        ipy_display(render.bundle("<hr>".join(blocks), "\n\n---\n\n".join(plains)), raw=True)


def load(ipython: Any) -> None:
    """Register the magics (and make ``%config Prompt.model`` work)."""
    # Typed as Any: IPython 8's Magics.__init__ is unannotated and IPython 9's is, so no ignore fits both.
    make: Any = Prompt
    magics = make(shell=ipython)
    ipython.register_magics(magics)
    if magics not in ipython.configurables:
        ipython.configurables.append(magics)
