"""The ``%%prompt`` cell magic and its line magics: a thin surface over the engine.

Parsing, namespace lookups and display live here; templates, providers, retries and storage do not.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import time
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from traitlets import Unicode

from nbplayground import api
from nbplayground.core import display, render
from nbplayground.core import errors as E
from nbplayground.core.engine import RunHandle
from nbplayground.core.types import Media, RunResult

#: Display refresh period while streaming: at most 20 updates a second.
REFRESH_S = 0.05


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one short line for the notebook, not a SystemExit."""

    def __init__(self, prog: str, short_usage: str, **kw: Any) -> None:
        super().__init__(prog=prog, add_help=False, exit_on_error=False, **kw)
        self.short_usage = short_usage

    def error(self, message: str) -> Any:
        raise UsageError(f"{message} · usage: {self.short_usage}")


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
        from nbplayground.core.templating import is_plain, placeholders

        def keys(path: str) -> tuple[str, str]:  # the root, and the whole path (a literal dotted name wins)
            return re.split(r"[.\[]", path, maxsplit=1)[0], path

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
        try:
            args = _parser().parse_args(shlex.split(line))
        except ValueError as exc:  # shlex: unbalanced quotes
            raise UsageError(f"{exc} · usage: {_parser().short_usage}") from None
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
            kw["thread"] = threads.messages(args.chat)
            kw["thread_id"] = args.chat
            if not args.model and kw["thread"]:
                last = threads.last_turn(args.chat)
                model = last.model if last is not None else model  # a thread keeps its model
            if args.tool_result is not None:
                call_id = _pending_call(kw["thread"], args.chat, args.tool_result)
                kw["messages"] = [{"role": "tool", "tool_call_id": call_id, "content": body}]
                text = None
        elif args.clear:
            raise UsageError("--clear empties a thread: add --chat NAME")
        saved_texts: list[str] = []
        if args.prompt:
            from nbplayground.storage import registry

            saved = registry.get(args.prompt)
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
        requests = api.prepare(text, **kw)
        if args.save:
            from nbplayground.storage import registry

            template = requests[0].template_messages or []
            saved = registry.save(args.save, messages=template, model=requests[0].model, params=params)
            print(f"saved as {saved.ref}")
        handle = api.start(requests, history=not args.no_history)
        results = self._show(handle, args)
        if args.chat and not args.no_history:
            from nbplayground.storage import history

            # A thread lives in the store: make this turn durable before the cell ends, so even a
            # kernel that is killed right after still continues the conversation.
            history.flush(timeout=10)
        if args.output:
            values = [r.data if r.data is not None else (r.media[0] if r.media else r.text) for r in results]
            self.ns[args.output] = values if args.compare else values[0]

    def _show(self, handle: RunHandle, args: argparse.Namespace) -> list[RunResult]:
        from IPython.display import display as ipy_display

        n = len(handle.requests)
        models = [r.model for r in handle.requests]
        texts = [""] * n
        results: list[RunResult | None] = [None] * n
        notes = [""] * n
        compare = n > 1

        mds = [render.StreamingMarkdown() for _ in range(n)]

        def current() -> tuple[dict[str, Any], dict[str, Any]]:
            if compare:
                return display.compare_bundle(models, texts, results, mds)
            return display.partial(texts[0], models[0], notes[0], mds[0]), {}

        dh = ipy_display(current()[0], raw=True, display_id=True)
        index, finished, dirty = 0, False, False
        last = 0.0
        try:
            while not finished:
                events, finished = handle.poll(index, REFRESH_S)
                index += len(events)
                for ev in events:
                    t = ev.target
                    if ev.type == "delta":
                        texts[t] += ev.text
                        dirty = True
                    elif ev.type == "start" and ev.text.startswith("retry"):
                        texts[t], dirty = "", True
                    elif ev.type == "tool_call" and ev.tool_call is not None:
                        notes[t] = f" · calling {ev.tool_call.name}"
                        dirty = True
                    elif ev.type == "done" and ev.result is not None:
                        results[t] = ev.result
                        dirty = True
                now = time.monotonic()
                if dirty and not finished and not args.no_stream and now - last >= REFRESH_S:
                    dh.update(current()[0], raw=True)
                    last, dirty = now, False
        except KeyboardInterrupt:
            handle.stop()
        final = handle.results(timeout=10)
        if compare:
            data, meta = display.compare_bundle(models, [r.text for r in final], list(final))
        else:
            data, meta = display.bundle(final[0], args.format, chat=args.chat)
        dh.update(data, metadata=meta, raw=True)
        return final

    # -- line magics ---------------------------------------------------------------------------------
    @line_magic
    def prompt_history(self, line: str) -> Any:
        """``%prompt_history [N]``: the N most recent runs (default 10) as a table."""
        try:
            n = int(line.strip() or 10)
        except ValueError:
            raise UsageError("usage: %prompt_history [N] (N: how many recent runs, default 10)") from None
        df = api.history(limit=n)
        return df[
            ["created_at", "surface", "model", "status", "text", "tokens_out", "cost_usd", "latency_ms", "id"]
        ]

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
        args = p.parse_args(shlex.split(line))
        try:
            requests = api.replay_requests(args.run_id, model=args.model, params=parse_params(args.param),
                                           surface="magic")  # fmt: skip
        except E.NBPlaygroundError as exc:
            raise UsageError(str(exc)) from None
        ns = argparse.Namespace(no_stream=False, format="markdown", chat=None)
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
            calls = [f"🔧 {c['function']['name']}({c['function']['arguments']}) (call {c['id']})"
                     for c in m.get("tool_calls") or []]  # fmt: skip
            blocks.append(f"<div><b>{render.escape(head)}</b></div>" + render.markdown(content or "")
                          + "".join(f"<div><code>{render.escape(c)}</code></div>" for c in calls))  # fmt: skip
            plains.append("\n\n".join([head, content or "", *calls]))
        ipy_display(render.bundle("<hr>".join(blocks), "\n\n---\n\n".join(plains)), raw=True)


def load(ipython: Any) -> None:
    """Register the magics (and make ``%config Prompt.model`` work)."""
    magics = Prompt(shell=ipython)
    ipython.register_magics(magics)
    if magics not in ipython.configurables:
        ipython.configurables.append(magics)
