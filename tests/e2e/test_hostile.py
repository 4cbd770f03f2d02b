"""Hostile model output in a real JupyterLab + Chromium (issue 11): nothing an answer says can act.

A generated notebook delivers every payload of the shared corpus ``tests/support/xss_payloads.json``
(OWASP XSS cheat-sheet classes) through every surface that shows model, tool,
provider or registry text: ``%%prompt`` (final, ``--format html`` and streaming), the ``RunResult`` and
``Comparison`` reprs, ``%%prompt --compare``, tool calls and results, ``%prompt_chat``, saved prompts and
their diffs, ``Media``, DataFrames (with and without a media column), ``%prompt_history``, error lines,
and the Playground widget (clicked in the browser, run from Python, and its static copy).
The offline ``mock/echo`` model repeats the prompt, so it answers with any payload; a local
OpenAI-compatible server plays a hostile provider whose error messages are payloads.

Chromium runs every cell and clicks Run while every request to a host other than 127.0.0.1 is aborted
and recorded; then the page is searched for what a payload could have done: scripts that ran (markers),
requests that left, script/data URLs, event handlers, forms, frames, styles, overlays and MathJax.
Controls in the last cell prove each detector works in this very page (a trusted output's handler runs,
its outside image is intercepted, its LaTeX is typeset), so the test cannot pass by seeing nothing.
Every finding is grouped by surface in the failure message and in ``findings.json`` next to the
screenshots (``test-artifacts/e2e/test_hostile_outputs_are_inert/``).
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nbformat
import pytest
from lab_helpers import KERNEL_IDLE, open_notebook, run_all_cells
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect

from support.oai_server import Behaviour, OpenAIServer, last_user_text

pytestmark = pytest.mark.e2e

#: The shared corpus (also used by tests/test_render.py).
CORPUS = Path(__file__).resolve().parents[1] / "support" / "xss_payloads.json"
DELIVERED = "hostile_payloads.json"  # the merged corpus, next to the notebook
NOTEBOOK = "hostile.ipynb"
T = 60_000  # ms: generous waits for a loaded 2-core machine; nothing here sleeps blindly
RUN_ALL_MS = 240_000
CLICK_MS = 15_000  # a click on a visible button; longer only when something covers it
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
CONTROL_HOST = "control.invalid"
#: A 1x1 PNG for Media payloads (a real image, so only the hostile fields can misbehave).
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"


@dataclass(frozen=True)
class Surface:
    """One notebook cell delivering the corpus through one way nbplayground shows text.

    ``code`` calls ``deliver(name)`` for ``(id, text)`` pairs whose markers name this surface;
    ``shows_text``: every ``seen:<id>.<surface>`` line must be visible in the cell's outputs.
    """

    name: str
    code: str
    shows_text: bool = True


SETUP = """\
%load_ext nbplayground
import base64, json, os, pathlib, shlex
import pandas as pd
from IPython.display import HTML, Markdown, display
import nbplayground as nbp

ip = get_ipython()
CORPUS = json.loads(pathlib.Path("{corpus}").read_text(encoding="utf-8"))
PNG = base64.b64decode("{png}")
pd.set_option("display.max_colwidth", None)  # whole payloads in frames, as a user would set it
pd.set_option("display.max_rows", None)
os.environ["HOSTILE_KEY"] = "not-a-real-key"
nbp.configure(models={{"hostile": {{"model": "openai/hostile", "api_base": "{provider}",
                                   "api_key_env": "HOSTILE_KEY"}}}})


def deliver(surface, kind="text"):
    \"\"\"(id, text) per corpus entry of this kind; NBPID becomes '<id>.<surface>'.\"\"\"
    out = []
    for p in CORPUS:
        if p["kind"] == kind:
            tag = f"{{p['id']}}.{{surface}}"
            body = p["payload"].replace("NBPID", tag)
            out.append((p["id"], f"seen:{{tag}}\\n\\n{{body}}" if kind == "text" else body))
    return out


CURRENT = ""


def lookup(query: str) -> str:
    \"\"\"Look something up.

    Args:
        query: What to look up.
    \"\"\"
    return CURRENT


def explode(query: str) -> str:
    \"\"\"Look something up, and fail.

    Args:
        query: What to look up.
    \"\"\"
    raise ValueError(CURRENT)
"""

# fmt: off
SURFACES: tuple[Surface, ...] = (
    Surface("magic", """\
for pid, text in deliver("magic"):
    ip.run_cell_magic("prompt", "mock/echo --no-stream", text)"""),
    Surface("magic-html", """\
for pid, text in deliver("magic-html"):
    ip.run_cell_magic("prompt", "mock/echo --no-stream --format html", text)"""),
    # the final answer is plain text, so only the streaming display can misbehave
    Surface("magic-stream", """\
PAD = "\\n\\nand the answer goes on for a few more words while the display refreshes, twice or more"
for pid, text in deliver("magic-stream"):
    ip.run_cell_magic("prompt", "mock/echo --format text -p mock_delay_ms=10", text + PAD)"""),
    Surface("chat-turn", """\
for pid, text in deliver("chat"):
    ip.run_cell_magic("prompt", f"mock/echo --chat hx-{pid} --clear --no-stream --format text", text)""",
            shows_text=False),
    Surface("chat", """\
for pid, _ in deliver("chat"):
    ip.run_line_magic("prompt_chat", f"hx-{pid}")"""),
    Surface("run-repr", """\
for pid, text in deliver("run-repr"):
    display(nbp.run(text, model="mock/echo"))"""),
    Surface("compare-repr", """\
for pid, text in deliver("compare-repr"):
    display(nbp.compare(text, models=["mock/echo", "mock/json"]))"""),
    Surface("magic-compare", """\
for pid, text in deliver("magic-compare"):
    ip.run_cell_magic("prompt", "--compare mock/echo,mock/json --no-stream", text)"""),
    Surface("tool-result", """\
for pid, text in deliver("tool-result"):
    CURRENT = text
    ip.run_cell_magic("prompt", "mock/tools --tools lookup --no-stream", f"look up {pid}")"""),
    Surface("tool-error", """\
for pid, text in deliver("tool-error"):
    CURRENT = text
    ip.run_cell_magic("prompt", "mock/tools --tools explode --no-stream", f"look up {pid}")"""),
    Surface("registry", """\
for pid, text in deliver("registry"):
    saved = nbp.prompts.save(f"hostile/{pid}", content=text)
    display(nbp.prompts.get(saved.ref))"""),
    Surface("registry-diff", """\
base = nbp.prompts.save("hostile-diff/base", content="seen:base\\n\\n```\\n\\n```")  # shares the fence lines
for pid, text in deliver("registry-diff"):
    display(nbp.prompts.diff(base.ref, nbp.prompts.save(f"hostile-diff/{pid}", content=text).ref))"""),
    Surface("media", """\
for pid, text in deliver("media"):
    display(nbp.Media("image/png", PNG, revised_prompt=text))""", shows_text=False),
    Surface("media-mime", """\
for pid, mime in deliver("media-mime", kind="mime"):
    display(nbp.Media(mime, PNG))""", shows_text=False),
    Surface("media-run", """\
for pid, text in deliver("media-run"):
    ip.run_cell_magic("prompt", "mock/image --image --no-stream", text)"""),
    Surface("error-magic", """\
for pid, text in deliver("error-magic"):
    ip.run_cell_magic("prompt", "hostile --no-stream", "FAIL " + text)"""),
    Surface("error-repr", """\
for pid, text in deliver("error-repr"):
    display(nbp.run("FAIL " + text, model="hostile"))"""),
    Surface("error-model", """\
for pid, text in deliver("error-model"):
    try:
        ip.run_cell_magic("prompt", shlex.quote("mock/" + text) + " --no-stream", "hi")
    except Exception:
        ip.showtraceback()""", shows_text=False),
    Surface("dataframe", """\
rows = deliver("dataframe")
frame = pd.DataFrame({"case": [pid for pid, _ in rows], "payload": [text for _, text in rows]})
out = frame.prompt.run("answer", prompt="{{payload}}", model="mock/echo", progress=False)
for start in range(0, len(out), 25):  # short frames: no row is cut from the display
    display(out.iloc[start:start + 25])"""),
    Surface("dataframe-media", """\
rows = deliver("dataframe-media")
frame = pd.DataFrame({"case": [pid for pid, _ in rows], "payload": [text for _, text in rows]})
out = frame.prompt.run("picture", prompt="{{payload}}", model="mock/image", kind="image", progress=False)
for start in range(0, len(out), 25):
    display(out.iloc[start:start + 25])"""),
    Surface("history", "%prompt_history 40", shows_text=False),
    # one message holding every payload, run by clicking Run in the browser (the tool answers with it too)
    Surface("widget-live", """\
CURRENT = "\\n\\n".join(text for _, text in deliver("widget-live"))
live = nbp.Playground(CURRENT, models=["mock/echo", "mock/tools", "mock/image"], tools=[lookup])
live"""),
    # run from Python before it is shown: its view starts with results, and its static copy holds them
    Surface("widget-py", """\
py_pg = nbp.Playground("\\n\\n".join(text for _, text in deliver("widget-py")), models=["mock/echo", "mock/image"])
py_pg.run()
assert py_pg.wait(60), "the playground run did not finish"
py_pg"""),
)
# fmt: on
CONTROL = f"""\
# controls: a trusted output's handler runs, its outside image is intercepted, its LaTeX is typeset
display(HTML('<img src="http://{CONTROL_HOST}/probe" onerror="window.nbpControl = (window.nbpControl || 0) + 1">'))
display(Markdown("control: $x^2$"))"""

#: Elements model text must never become (pandas' own ``<style scoped>`` for frames is allowed).
BAD_TAGS = ("form, input, textarea, select, button, option, iframe, frame, frameset, object, embed, applet, "
            "portal, style, link, meta, base, script, foreignObject")  # fmt: skip
MATHJAX = (
    'mjx-container, .MathJax, .MathJax_Display, .MathJax_Preview, .MathJax_SVG, script[type^="math/tex"]'
)

# In every frame, before any output: remember every marker ever written to window.__nbp_xss, since a
# payload may replace the list instead of adding to it.
RECORD_MARKERS = """(() => {
  const seen = new Set();
  let current = [];
  Object.defineProperty(window, '__nbp_xss', {
    configurable: false,
    get: () => current,
    set: (value) => {
      current = value;
      for (const item of (Array.isArray(value) ? value : [value])) seen.add(String(item));
    },
  });
  Object.defineProperty(window, '__nbp_xss_seen', {value: () => [...seen]});
})();"""

TAG_CELLS = """() => {
  const nb = window.jupyterapp.shell.currentWidget.content;
  for (const cell of nb.widgets) {
    const s = cell.model.getMetadata('nbp_surface');
    if (s) cell.node.dataset.nbpSurface = s;
  }
  return nb.widgets.length;
}"""

# True once every wanted 'seen:' line is on screen (markdown and MathJax render asynchronously).
ALL_SHOWN = """(wanted) => {
  const nb = window.jupyterapp.shell.currentWidget.content;
  for (const cell of nb.widgets) {
    const tags = wanted[cell.model.getMetadata('nbp_surface')];
    if (!tags) continue;
    const text = cell.node.querySelector('.jp-Cell-outputArea')?.innerText || '';
    if (!tags.every(tag => text.includes('seen:' + tag))) return false;
  }
  return true;
}"""

# What a payload could have left in the page, per surface: {surface: [{kind, tag, detail}]}.
INSPECT = """([badTags, mathjax, wanted]) => {
  const found = {};
  // the payload an element came from: the last 'seen:' line before it (an output may hold several)
  const seenBefore = (el) => {
    const walk = document.createTreeWalker(el.closest('.jp-OutputArea-output') || document.body,
                                           NodeFilter.SHOW_TEXT);
    let tag = '';
    for (let t = walk.nextNode(); t; t = walk.nextNode()) {
      if (el.contains(t) || !(t.compareDocumentPosition(el) & Node.DOCUMENT_POSITION_FOLLOWING)) break;
      for (const m of t.data.matchAll(/seen:([a-z0-9-]+[.][a-z0-9-]+)/g)) tag = m[1];
    }
    return tag;
  };
  const add = (s, kind, el, tag) => {
    const detail = el ? el.outerHTML.replace(/\\s+/g, ' ').slice(0, 240) : '';
    (found[s] = found[s] || []).push({kind, tag: tag || (el ? seenBefore(el) : ''), detail});
  };
  const URL_ATTRS = new Set(['href', 'src', 'action', 'formaction', 'xlink:href', 'data', 'poster',
    'background', 'srcset', 'ping', 'codebase', 'cite', 'longdesc', 'lowsrc', 'dynsrc']);
  const MEDIA_DATA = /^data:(image[/](png|jpeg|gif|webp)|audio[/][\\w.+-]+);base64,/i;
  const badUrl = (el, name, value) => {
    const urls = name === 'srcset' ? value.split(',').map(u => u.trim().split(/\\s+/)[0]) : [value];
    for (const u of urls) {
      let scheme = '';
      try { scheme = new URL(u, document.baseURI).protocol; } catch (e) { scheme = ''; }
      const compact = u.replace(/[\\u0000-\\u0020]/g, '').toLowerCase();
      if (['javascript:', 'vbscript:'].includes(scheme) || /^(javascript|vbscript):/.test(compact)) {
        return 'script URL in ' + name;
      }
      if (scheme === 'data:' || compact.startsWith('data:')) {
        const media = ['img', 'source', 'audio', 'video'].includes(el.localName) && name === 'src';
        // JupyterLab links URLs written in plain text; such a link shows exactly where it goes
        const autolink = el.localName === 'a' && el.closest('.jp-RenderedText') && el.textContent === value;
        if (!(media && MEDIA_DATA.test(u.trim())) && !autolink) return 'data: URL in ' + name;
      }
    }
    return null;
  };
  const pandasStyle = (el) => el.textContent.replace(/[/][*][\\s\\S]*?[*][/]/g, '').split('}')
    .map(rule => rule.split('{')[0].trim()).filter(Boolean)
    .every(sel => sel.split(',').every(x => x.trim().startsWith('.dataframe')));
  const viewport = innerWidth * innerHeight;
  const nb = window.jupyterapp.shell.currentWidget.content;
  for (const cell of nb.widgets) {
    const s = cell.model.getMetadata('nbp_surface');
    if (!s || s === 'setup' || s === 'control') continue;
    const outputs = [...cell.node.querySelectorAll('.jp-OutputArea-output')];
    // anywhere in the outputs (the widget's own UI included): handlers, script/data URLs, command links
    for (const o of outputs) {
      for (const el of o.querySelectorAll('*')) {
        for (const a of [...el.attributes]) {
          const n = a.name.toLowerCase();
          if (n.startsWith('on')) add(s, 'event handler attribute', el);
          else if (n === 'srcdoc') add(s, 'srcdoc document', el);
          else if (n.startsWith('data-commandlinker')) add(s, 'JupyterLab command link', el);
          else if (URL_ATTRS.has(n)) {
            const bad = badUrl(el, n, a.value);
            if (bad) add(s, bad, el);
          }
        }
      }
    }
    // where model text is rendered (in the widget: its answers, tool cards and diffs, not its editor)
    const scopes = [];
    for (const o of outputs) {
      const w = o.querySelector('.nbp-root');
      if (w) scopes.push(...w.querySelectorAll(
        '[data-testid="nbp-output-text"], [data-testid="nbp-tool-card"], [data-testid="nbp-diff"]'));
      else scopes.push(o);
    }
    for (const scope of scopes) {
      for (const el of scope.querySelectorAll(badTags)) {
        if (el.localName === 'style' && pandasStyle(el)) continue;
        add(s, `<${el.localName}> element`, el);
      }
      for (const el of scope.querySelectorAll('*')) {
        if (el.closest('mjx-container')) continue;  // MathJax is reported as such
        const pos = getComputedStyle(el).position;
        if (!['fixed', 'absolute', 'sticky'].includes(pos)) continue;
        const r = el.getBoundingClientRect();
        const size = r.width * r.height;
        if ((pos === 'fixed' && size > 0) || size > viewport / 10) add(s, `${pos}-positioned overlay`, el);
      }
      for (const el of scope.querySelectorAll(mathjax)) add(s, 'MathJax', el);
    }
    if (wanted[s]) {
      const text = scopes.map(e => e.innerText).join('\\n');
      for (const tag of wanted[s]) if (!text.includes('seen:' + tag)) add(s, 'payload text not shown', null, tag);
    }
  }
  return found;
}"""


class HostileProvider(OpenAIServer):
    """An OpenAI-compatible server whose answers are payloads: 'FAIL <text>' comes back as a 400 with <text>."""

    async def _route(
        self, method: str, path: str, hdrs: dict[str, str], body: bytes, reader: Any, writer: Any
    ) -> bool:
        if path.endswith("/chat/completions"):
            data = json.loads(body or b"{}")
            self.bodies.append(data)
            text = last_user_text(data)
            if text.startswith("FAIL "):
                return await self._chat(data, Behaviour(status=400, error_message=text[5:]), reader, writer)
            return await self._chat(data, Behaviour(text=text), reader, writer)
        return await super()._route(method, path, hdrs, body, reader, writer)


@dataclass(frozen=True)
class Finding:
    """Something a payload did (``payload`` is the corpus id, or '?' when nothing names it)."""

    surface: str
    kind: str
    payload: str = "?"
    detail: str = ""


def load_corpus() -> list[dict[str, Any]]:
    """The payloads of :data:`CORPUS` as ``{id, class, kind, payload}``.

    Payloads with ``{{`` are templates (their values come from the notebook, see tests/test_secrets.py),
    not renderer input.
    """
    items = json.loads(CORPUS.read_text(encoding="utf-8"))["payloads"]
    return [{**p, "kind": p.get("kind", "text")} for p in items if "{{" not in p["payload"]]


def build_notebook(provider_url: str) -> nbformat.NotebookNode:
    """The hostile notebook: setup, one cell per surface (tagged ``nbp_surface``), controls last."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    setup = SETUP.format(png=PNG_B64, provider=provider_url, corpus=DELIVERED)
    cells = [("setup", setup)] + [(s.name, s.code) for s in SURFACES] + [("control", CONTROL)]
    nb.cells = [nbformat.v4.new_code_cell(code, metadata={"nbp_surface": name}) for name, code in cells]
    return nb


def wanted_tags() -> dict[str, list[str]]:
    """Per surface that shows text, the ``<id>.<surface>`` tags whose ``seen:`` line must be visible."""
    texts = [p["id"] for p in load_corpus() if p["kind"] == "text"]
    return {s.name: [f"{pid}.{s.name}" for pid in texts] for s in SURFACES if s.shows_text}


def is_local(url: str) -> bool:
    """True for this machine's servers and for URLs that never leave the page (data:, blob:, about:)."""
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about", "chrome", "chrome-error", "devtools"):
        return True
    return (parts.hostname or "") in LOCAL_HOSTS


def named_in(text: str) -> tuple[str, str]:
    """The (surface, payload id) a marker or URL names, or ('page', '?')."""
    surfaces = sorted({s.name for s in SURFACES} | {"chat"}, key=len, reverse=True)
    ids = sorted((p["id"] for p in load_corpus()), key=len, reverse=True)
    for s in surfaces:
        for pid in ids:
            if f"{pid}.{s}" in text:
                return s, pid
    return "page", "?"


def report(findings: list[Finding]) -> str:
    """Per surface and kind, the payloads that got through (every detail is in findings.json)."""
    table: dict[str, dict[str, set[str]]] = {}
    for f in findings:
        table.setdefault(f.surface, {}).setdefault(f.kind, set()).add(f.payload)
    lines = [f"hostile output had effects on {len(table)} surface(s); details in findings.json:"]
    for surface, kinds in sorted(table.items()):
        n = len(set().union(*kinds.values()))
        lines.append(f"  {surface} ({n} payload{'s' if n != 1 else ''}):")
        lines += [f"    {kind}: {', '.join(sorted(pids))}" for kind, pids in sorted(kinds.items())]
    return "\n".join(lines)


def _api(lab: Any, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
    """Call the lab server's REST API with its token; the decoded JSON answer (None when empty)."""
    data = json.dumps(payload).encode() if payload is not None else None
    headers = {**lab.headers, "Content-Type": "application/json"}
    request = urllib.request.Request(f"{lab.url}{path}", data, headers, method=method)
    with urllib.request.urlopen(request, timeout=30) as r:
        body = r.read()
    return json.loads(body) if body else None


@pytest.fixture
def render_everything(lab) -> Iterator[None]:
    """Attach every cell and show every output (no windowing, no trimming) while the test runs."""
    path = "/lab/api/settings/@jupyterlab/notebook-extension:tracker"
    before = _api(lab, "GET", path).get("raw") or "{}"
    # maxNumberOutputs=0 trims to nothing in JupyterLab 4.6, whatever its schema says
    _api(lab, "PUT", path, {"raw": json.dumps({"windowingMode": "none", "maxNumberOutputs": 100_000})})
    try:
        yield
    finally:
        _api(lab, "PUT", path, {"raw": before})


@pytest.fixture
def hostile_notebook(lab) -> Iterator[HostileProvider]:
    """``hostile.ipynb`` and the corpus in the lab's root, and the hostile provider they call."""
    with HostileProvider() as provider:
        (lab.root / DELIVERED).write_text(json.dumps(load_corpus(), ensure_ascii=False), encoding="utf-8")
        nbformat.write(build_notebook(provider.url), str(lab.root / NOTEBOOK))
        try:
            yield provider
        finally:
            # the lab server is shared by the session's other tests: stop this notebook's kernel
            for session in _api(lab, "GET", "/api/sessions"):
                if session.get("path") == NOTEBOOK:
                    _api(lab, "DELETE", f"/api/sessions/{session['id']}")
            for name in (NOTEBOOK, DELIVERED):
                (lab.root / name).unlink(missing_ok=True)


def test_corpus_is_well_formed() -> None:
    raw = [str(p["id"]) for p in json.loads(CORPUS.read_text(encoding="utf-8"))["payloads"]]
    assert len(raw) == len(set(raw)), "an id is used twice"
    corpus = load_corpus()
    for p in corpus:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", p["id"]), p["id"]  # also a valid prompt slug
        assert p["kind"] in ("text", "mime") and p["class"] and p["payload"], p
        if "__nbp_xss" in p["payload"] or "attacker.example" in p["payload"]:
            assert "NBPID" in p["payload"], f"{p['id']}: its marker or URL does not name its id"
    classes = {p["class"] for p in corpus}
    for needed in ("script", "event-handler", "url", "markdown", "exfiltration", "frame", "overlay", "navigation",
                   "svg", "obfuscation", "math", "media-mime"):  # fmt: skip
        assert needed in classes, f"the corpus has no {needed!r} payload"
    texts = [p["payload"] for p in corpus]
    assert any("```" in t for t in texts), "no code-fence breaker"
    assert any(re.search(r"\$\d.*\$\d", t) for t in texts), "no dollar amounts"


def test_hostile_outputs_are_inert(lab, page: Page, shots, render_everything, hostile_notebook) -> None:
    findings: list[Finding] = []
    outside: list[str] = []

    def intercept(route: Any) -> None:
        outside.append(route.request.url)
        if route.request.is_navigation_request():
            route.fulfill(status=204)  # a 204 keeps the page where it is (meta refresh, frames)
        else:
            route.abort()

    def on_dialog(dialog: Any) -> None:
        what = (
            "the page tried to leave JupyterLab"
            if dialog.type == "beforeunload"
            else f"a {dialog.type} opened"
        )
        findings.append(Finding("page", what, detail=dialog.message[:200]))
        dialog.dismiss()  # for beforeunload: stay

    context = page.context
    context.add_init_script(RECORD_MARKERS)
    context.route(lambda url: not is_local(url), intercept)
    page.on("websocket", lambda ws: None if is_local(ws.url) else outside.append(ws.url))
    page.on("dialog", on_dialog)
    context.on("page", lambda p: findings.append(Finding("page", "a new window opened", detail=p.url)))

    open_notebook(page, lab, NOTEBOOK)
    page.evaluate(TAG_CELLS)
    shots(page, "opened")

    # -- run everything ---------------------------------------------------------------------------------
    try:
        run_all_cells(page, timeout=RUN_ALL_MS)
    except PlaywrightError as exc:
        findings.append(
            Finding("notebook", f"Run All did not finish in {RUN_ALL_MS // 1000} s", detail=str(exc))
        )
    page.evaluate(TAG_CELLS)
    for s in SURFACES:
        errors = page.locator(
            f'[data-nbp-surface="{s.name}"] .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
        ).all_inner_texts()
        broken = [e for e in errors if "Traceback" in e or e.lstrip().startswith("UsageError")]
        if broken and s.name != "error-model":
            findings.append(
                Finding(s.name, "the cell failed (payloads not all delivered)", detail=broken[0][-800:])
            )

    # -- the widget: Run in the browser, then open its history --------------------------------------------
    live = page.locator('[data-nbp-surface="widget-live"] [data-testid="nbp-playground"]')
    visible = page.locator(".jp-Notebook").is_visible()
    if not visible:  # e.g. an injected <style> hid the page: still run the widget and inspect the DOM
        findings.append(Finding("page", "the notebook was hidden"))
    try:
        expect(live).to_have_count(1, timeout=T)
        if visible:
            live.scroll_into_view_if_needed(timeout=T)
        shots(page, "widget-before-run")
        run = live.locator('[data-testid="nbp-run"]')
        try:
            run.click(timeout=CLICK_MS)
        except PlaywrightError as exc:
            findings.append(
                Finding("widget-live", "Run could not be clicked (something covers it)", detail=str(exc))
            )
            run.dispatch_event("click")
        cards = live.locator('[data-testid="nbp-output"]')
        expect(cards).to_have_count(3, timeout=T)
        for i in range(3):
            expect(cards.nth(i)).to_have_attribute("data-status", "ok", timeout=T)
        live.locator('[data-testid="nbp-history-toggle"]').dispatch_event("click")
        expect(live.locator('[data-testid="nbp-history-item"]').first).to_be_attached(timeout=T)
        page.wait_for_function(KERNEL_IDLE, timeout=T)
        if visible:
            cards.first.scroll_into_view_if_needed(timeout=T)
        shots(page, "widget-after-run")
    except (PlaywrightError, AssertionError) as exc:
        findings.append(Finding("widget-live", "the widget did not run", detail=str(exc)))

    # -- look at every surface (scrolling also starts anything that loads lazily) ---------------------------
    for s in SURFACES if visible else ():
        page.locator(f'[data-nbp-surface="{s.name}"]').first.scroll_into_view_if_needed(timeout=T)
        shots(page, s.name)

    # -- controls: each detector works in this page -------------------------------------------------------------
    problems = []
    try:
        page.wait_for_function("() => (window.nbpControl || 0) >= 1", timeout=T)
    except PlaywrightError:
        problems.append("the control's onerror handler never ran (are executed outputs still trusted?)")
    try:
        page.wait_for_selector('[data-nbp-surface="control"] mjx-container', state="attached", timeout=T)
    except PlaywrightError:
        problems.append("the control's $x^2$ was never typeset (is MathJax still on?)")
    # a request made now is handled after every earlier one, so the record below is complete
    page.evaluate(f"() => fetch('http://{CONTROL_HOST}/last').catch(() => null)")
    if not any(urlsplit(u).hostname == CONTROL_HOST for u in outside):
        problems.append("the control's outside image was not intercepted (is routing working?)")

    # -- collect what the payloads did ---------------------------------------------------------------------
    page.evaluate(TAG_CELLS)
    try:
        page.wait_for_function(ALL_SHOWN, arg=wanted_tags(), timeout=T, polling=500)
    except PlaywrightError:
        pass  # whatever is still missing is reported below, payload by payload
    for surface, items in page.evaluate(INSPECT, [BAD_TAGS, MATHJAX, wanted_tags()]).items():
        for item in items:
            pid = item["tag"].split(".")[0] if item["tag"] else named_in(item["detail"])[1]
            findings.append(Finding(surface, item["kind"], pid, item["detail"]))
    ran: list[str] = []
    for frame in page.frames:
        try:
            ran += frame.evaluate("() => window.__nbp_xss_seen ? window.__nbp_xss_seen() : []")
        except PlaywrightError:
            pass  # a frame that navigated away or is cross-origin: its markers land on top anyway
    for marker in sorted(set(ran)):
        surface, pid = named_in(marker)
        findings.append(Finding(surface, "script ran", pid, marker))
    for url in dict.fromkeys(outside):
        if urlsplit(url).hostname != CONTROL_HOST:
            surface, pid = named_in(url)
            findings.append(Finding(surface, "request left the machine", pid, url[:300]))

    (shots.folder / "findings.json").write_text(
        json.dumps([asdict(f) for f in findings], indent=1, ensure_ascii=False), encoding="utf-8"
    )
    assert not problems, "the test's own controls failed, so its findings mean nothing:\n" + "\n".join(
        problems
    )
    assert not findings, report(findings)
