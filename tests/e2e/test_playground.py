"""The Playground in a real JupyterLab, driven by headless Chromium: what a person sees and clicks.

Every step saves a screenshot under ``test-artifacts/e2e/``.
"""

from __future__ import annotations

import re

import pytest
from lab_helpers import open_notebook, run_all_cells
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

T = 30_000  # ms: generous waits for a loaded 2-core CI machine; nothing here sleeps blindly


def tid(name: str) -> str:
    return f'[data-testid="{name}"]'


def output_text(card) -> str:
    return card.locator(tid("nbp-output-text")).inner_text()


# Characters drawn as the "missing glyph" box: a canvas drawing of each equals that of a code point no
# font has (Chromium falls back through every installed font, as the page does).
TOFU = """(el, chars) => {
  const font = `20px ${getComputedStyle(el).fontFamily}`;
  const draw = (ch) => {
    const c = document.createElement("canvas");
    c.width = 32; c.height = 32;
    const ctx = c.getContext("2d");
    ctx.font = font;
    ctx.fillText(ch, 2, 24);
    return c.toDataURL();
  };
  const missing = draw("\\u{10FFFD}");
  return chars.filter((ch) => draw(ch) === missing);
}"""

# Placeholders wider than their input (cut off on screen).
CUT_PLACEHOLDERS = """(root) => {
  const ctx = document.createElement("canvas").getContext("2d");
  return [...root.querySelectorAll("input[placeholder]")].filter((el) => el.offsetParent !== null).flatMap((el) => {
    const cs = getComputedStyle(el);
    ctx.font = `${cs.fontStyle} ${cs.fontWeight} ${cs.fontSize} ${cs.fontFamily}`;
    const room = el.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
    return ctx.measureText(el.placeholder).width > room ? [el.placeholder] : [];
  });
}"""

# A <pre>'s style and whether any of its lines wrapped: one line box per text line when none did.
PRE_LINES = """(pre) => {
  const range = document.createRange();
  range.selectNodeContents(pre);
  const tops = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
  return { whiteSpace: getComputedStyle(pre).whiteSpace, lines: pre.textContent.split("\\n").length,
           boxes: tops.size, scrolls: pre.scrollWidth > pre.clientWidth };
}"""


def glyphs_missing(el) -> list[str]:
    """Non-ASCII characters in the element's text, placeholders and titles that no installed font draws."""
    text = el.evaluate(
        "el => el.innerText + [...el.querySelectorAll('[placeholder],[title]')]"
        ".map(e => (e.placeholder || '') + (e.title || '')).join('')"
    )
    chars = sorted({ch for ch in text if ord(ch) > 127})
    return el.evaluate(TOFU, chars) if chars else []


def expect_stats_without_status(card, status: str) -> None:
    """The status is in the badge only; the stats line holds only known figures."""
    expect(card.locator(".nbp-badge")).to_have_text(re.compile(f"^{status}$", re.I), timeout=T)
    stats = card.locator(tid("nbp-output-stats")).inner_text()
    assert re.fullmatch(r"in \d+ · out \d+ tok( · \$\d+\.\d+)? · \d+ ms( · TTFT \d+ ms)?", stats), stats
    assert "$0.000000" not in stats, stats  # (the pattern above leaves no room for a status or "–")


def test_playground_click_through(lab, page, shots):
    open_notebook(page, lab, "playground.ipynb")
    run_all_cells(page)
    widgets = page.locator(tid("nbp-playground"))
    expect(widgets).to_have_count(4, timeout=T)
    pg = widgets.nth(0)
    pg.scroll_into_view_if_needed()
    shots(page, "opened")
    # labels given to save_version from Python (the notebook's last cell) are in that widget's labels field
    expect(widgets.nth(1).locator(tid("nbp-save-labels"))).to_have_value("draft", timeout=T)
    for i in range(4):
        assert widgets.nth(i).evaluate(CUT_PLACEHOLDERS) == [], f"widget {i}: placeholders cut off"

    # -- edit a message and a variable -----------------------------------------------------------
    messages = pg.locator(tid("nbp-message"))
    expect(messages).to_have_count(2)
    user = messages.nth(1).locator(tid("nbp-message-content"))
    user.fill("Write about {{topic}} for {{reader.name}} and {{mood}}")
    mood = pg.locator(f'{tid("nbp-variable")}[data-name="mood"]')
    expect(mood).to_have_attribute("data-missing", "true", timeout=T)  # found live, flagged missing
    mood.locator(tid("nbp-variable-input")).fill("calm")
    expect(mood).not_to_have_attribute("data-missing", "true", timeout=T)
    pg.locator(f'{tid("nbp-variable")}[data-name="topic"] {tid("nbp-variable-input")}').fill("lighthouses")
    shots(page, "edited")

    # -- Run: the text grows while streaming --------------------------------------------------------
    pg.locator(tid("nbp-run")).click()
    card = pg.locator(tid("nbp-output")).nth(0)
    expect(card).to_have_attribute("data-status", "streaming", timeout=T)
    expect(card.locator(tid("nbp-output-text"))).not_to_be_empty(timeout=T)
    first = len(output_text(card))
    page.wait_for_function(
        """([el, n]) => el.innerText.length > n""",
        arg=[card.locator(tid("nbp-output-text")).element_handle(), first],
        timeout=T,
    )
    card.scroll_into_view_if_needed()
    shots(page, "streaming")
    expect(card).to_have_attribute("data-status", "ok", timeout=T)
    final = output_text(card)
    assert len(final.split()) >= 100
    expect(card.locator(tid("nbp-output-stats"))).to_contain_text("tok", timeout=T)
    expect_stats_without_status(card, "ok")
    expect(pg.locator(f'{tid("nbp-message")}[data-role="assistant"]')).to_have_count(1, timeout=T)
    # the static copy of the results (for GitHub / kernel-less reloads) is in the page but hidden
    expect(page.locator(".nbp-fallback").first).to_be_attached(timeout=T)
    expect(page.locator(".nbp-fallback").first).to_be_hidden()
    shots(page, "run-done")

    # -- Run again, continuing the thread ------------------------------------------------------------
    pg.locator(tid("nbp-add-message")).click()
    expect(messages).to_have_count(4, timeout=T)
    messages.nth(3).locator(tid("nbp-message-content")).fill("Now shorter, for {{reader.name}}")
    pg.locator(tid("nbp-run")).click()
    expect(card).to_have_attribute("data-status", "ok", timeout=T)
    expect(pg.locator(f'{tid("nbp-message")}[data-role="assistant"]')).to_have_count(2, timeout=T)
    expect(pg.locator(tid("nbp-diff-toggle"))).to_be_visible(timeout=T)
    pg.locator(tid("nbp-diff-toggle")).first.click()
    expect(pg.locator(tid("nbp-diff")).first).to_be_visible(timeout=T)
    shots(page, "thread-continued")

    # -- Clear & Run: back to the editor's messages ----------------------------------------------------
    pg.locator(tid("nbp-clear-run")).click()
    expect(card).to_have_attribute("data-status", "ok", timeout=T)
    expect(messages).to_have_count(3, timeout=T)  # system, user, the new answer
    shots(page, "cleared")

    # -- Stop mid-stream (Esc) keeps the partial text -----------------------------------------------------
    pg.locator(tid("nbp-target-max-tokens")).first.fill("3000")
    pg.locator(tid("nbp-clear-run")).click()
    expect(card).to_have_attribute("data-status", "streaming", timeout=T)
    expect(card.locator(tid("nbp-output-text"))).not_to_be_empty(timeout=T)
    pg.locator(tid("nbp-stop")).click()
    expect(card).to_have_attribute("data-status", "stopped", timeout=T)
    partial = output_text(card)
    assert 0 < len(partial.split()) < 3000
    expect(card.locator(".nbp-badge")).to_have_text(re.compile("^stopped$", re.I))
    assert "stopped" not in card.locator(tid("nbp-output-stats")).inner_text()
    card.scroll_into_view_if_needed()
    shots(page, "stopped")

    # -- compare 3 mock targets ------------------------------------------------------------------------
    pg.locator(tid("nbp-target-max-tokens")).first.fill("40")
    pg.locator(tid("nbp-add-target")).click()
    pg.locator(tid("nbp-add-target")).click()
    targets = pg.locator(tid("nbp-target"))
    expect(targets).to_have_count(3, timeout=T)
    targets.nth(1).locator(tid("nbp-target-model")).fill("mock/echo")
    targets.nth(2).locator(tid("nbp-target-model")).fill("mock/json")
    # a markdown image in the answer (echoed) is shown as a link, labelled in text
    mood.locator(tid("nbp-variable-input")).fill("calm ![a chart](https://example.com/chart.png)")
    pg.locator(tid("nbp-clear-run")).click()
    cards = pg.locator(tid("nbp-output"))
    expect(cards).to_have_count(3, timeout=T)
    for i in range(3):
        expect(cards.nth(i)).to_have_attribute("data-status", "ok", timeout=T)
        expect_stats_without_status(cards.nth(i), "ok")
    expect(cards.nth(1).locator(tid("nbp-output-text"))).to_contain_text("lighthouses")
    expect(cards.nth(1).locator(".nbp-blocked a")).to_have_text("image: a chart")
    expect(cards.nth(2).locator(tid("nbp-output-text"))).to_contain_text('"text"')
    # JSON keeps its lines: a line wider than the card scrolls sideways, no word is broken
    json_card = cards.nth(2).locator("pre.nbp-json")
    lines = json_card.evaluate(PRE_LINES)
    assert lines["whiteSpace"] == "pre" and lines["boxes"] == lines["lines"], lines
    assert lines["scrolls"], lines  # (the echoed prompt is wider than a third of the page)
    cards.nth(0).scroll_into_view_if_needed()
    shots(page, "compare")

    # -- an image model in the same compare: a picture card with its parameters and revised prompt ----------
    targets.nth(2).locator(tid("nbp-target-model")).fill("mock/image")
    pg.locator(tid("nbp-clear-run")).click()
    expect(cards.nth(2)).to_have_attribute("data-status", "ok", timeout=T)
    image = cards.nth(2).locator("img")
    expect(image).to_have_count(1, timeout=T)
    image.scroll_into_view_if_needed()  # the card loads it lazily
    expect(image).to_be_visible(timeout=T)
    assert (image.get_attribute("src") or "").startswith("data:image/png;base64,")
    expect(cards.nth(2)).to_contain_text("A mock image of: Write about lighthouses")
    cards.nth(2).scroll_into_view_if_needed()
    shots(page, "image-card")

    # -- restore an earlier run from history ------------------------------------------------------------
    pg.locator(tid("nbp-history-toggle")).click()
    items = pg.locator(tid("nbp-history-item"))
    expect(items.first).to_be_visible(timeout=T)
    oldest = items.last
    oldest.locator(tid("nbp-history-restore")).click()
    expect(targets).to_have_count(1, timeout=T)
    expect(messages.nth(1).locator(tid("nbp-message-content"))).to_have_value(
        "Write about {{topic}} for {{reader.name}} and {{mood}}", timeout=T
    )
    shots(page, "restored")

    # -- save a version after a run: the prompt written; the conversation only when ticked --------------
    pg.locator(tid("nbp-run")).click()
    expect(pg.locator(f'{tid("nbp-message")}[data-role="assistant"]')).to_have_count(1, timeout=T)
    pg.locator(tid("nbp-save-name")).fill("demo/e2e")
    pg.locator(tid("nbp-save-labels")).fill("browser")
    pg.locator(tid("nbp-save")).click()
    ref = pg.locator(tid("nbp-prompt-ref"))
    expect(ref).to_have_text("demo/e2e@1", timeout=T)
    expect(pg.locator(tid("nbp-save-labels"))).to_have_value("browser")
    pg.locator(tid("nbp-save")).click()  # the same prompt (the answer is not part of it): the same version
    expect(pg.locator(".nbp-status")).to_have_text("Saved demo/e2e@1", timeout=T)
    pg.locator(tid("nbp-save-conversation")).check()
    pg.locator(tid("nbp-save")).click()  # with the answer: a new version
    expect(ref).to_have_text("demo/e2e@2", timeout=T)
    pg.locator(tid("nbp-save-conversation")).uncheck()
    expect(pg.locator(tid("nbp-error"))).to_be_hidden()
    pg.locator(tid("nbp-save-conversation")).scroll_into_view_if_needed()
    shots(page, "saved")

    # -- a manual tool call answered by typing ------------------------------------------------------------
    tools = widgets.nth(2)
    tools.scroll_into_view_if_needed()
    tools.locator(tid("nbp-run")).click()
    expect(tools.locator(tid("nbp-tool-card")).first).to_be_visible(timeout=T)
    tool_row = tools.locator(f'{tid("nbp-message")}[data-role="tool"]')
    expect(tool_row).to_have_count(1, timeout=T)
    tool_row.locator(tid("nbp-message-content")).fill("-3 C and snowing")
    shots(page, "tool-answer-typed")
    tools.locator(tid("nbp-message-content")).last.press("Control+Enter")  # the keyboard shortcut runs
    out = tools.locator(tid("nbp-output")).nth(0)
    expect(out.locator(tid("nbp-output-text"))).to_contain_text(
        "The get_weather tool returned: -3 C and snowing", timeout=T
    )
    assert re.search(r"ok", out.get_attribute("data-status") or "")
    out.scroll_into_view_if_needed()
    shots(page, "tool-answered")
    for i in range(4):  # every symbol the widgets show (tool chips, arrows, buttons) has a glyph
        assert glyphs_missing(widgets.nth(i)) == [], f"widget {i}"
    assert not [e for e in page.errors if "nbp" in e.lower() or "playground" in e.lower()], page.errors


def test_playground_follows_theme_and_stacks_targets_when_narrow(lab, page, shots):
    open_notebook(page, lab, "playground.ipynb")
    run_all_cells(page)
    compare = page.locator(tid("nbp-playground")).nth(1)
    targets = compare.locator(tid("nbp-target"))
    expect(targets).to_have_count(3, timeout=T)
    targets.first.scroll_into_view_if_needed()
    boxes = [targets.nth(i).bounding_box() for i in range(3)]
    assert len({round(b["y"]) for b in boxes}) == 1  # wide: side by side
    light = compare.evaluate("el => getComputedStyle(el).color")
    shots(page, "light-wide")
    page.evaluate(
        "() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})"
    )
    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=T)
    page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=T)  # the theme-change splash
    expect(compare).not_to_have_css("color", light, timeout=T)  # the widget follows the theme's variables
    page.evaluate("() => window.jupyterapp.commands.execute('application:toggle-left-area')")
    page.set_viewport_size({"width": 640, "height": 1000})
    page.wait_for_function(
        "([a, b]) => b.getBoundingClientRect().top > a.getBoundingClientRect().bottom - 1",
        arg=[targets.nth(0).element_handle(), targets.nth(1).element_handle()],
        timeout=T,
    )  # narrow: stacked
    targets.first.scroll_into_view_if_needed()
    shots(page, "dark-narrow")
    page.evaluate(
        "() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'})"
    )
