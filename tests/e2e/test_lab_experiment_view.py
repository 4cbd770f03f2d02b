"""``exp.show()`` in a real JupyterLab, driven by headless Chromium: the matrix, a filter, a page, a click.

An offline experiment on the ``mock/`` models (echo answers with the prompt, lorem with filler) is run by a
notebook written into the lab's root; every step saves a screenshot under ``test-artifacts/e2e/``.
"""

from __future__ import annotations

import json

import pytest
from lab_helpers import error_outputs, open_notebook, run_all_cells
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

T = 30_000  # ms: generous waits for a loaded 2-core CI machine; nothing here sleeps blindly
XSS = '<img src=x onerror="window.__nbpXss = 1">'

CELLS = [
    f"XSS = {XSS!r}",
    """import pandas as pd
import nbplayground as nbp
from nbplayground import evals

questions = ["How long is the warranty?", "Can I return a gift?", "Do you ship abroad?",
             "How do I reset my password?", "Where is my order?", XSS]
expected = ["warranty", "gift", "ship", "password", "tracking", "img"]
df = pd.DataFrame({"question": questions, "expected": expected},
                  index=["warranty", "gift", "shipping", "password", "order", "hostile"])""",
    """exp = nbp.experiment(
    data=df,
    variants={"echo": {"prompt": "Q: {{question}}", "model": "mock/echo"},
              "lorem": {"prompt": "Answer briefly: {{question}}", "model": "mock/lorem", "params": {"max_tokens": 8}}},
    evaluators=[evals.icontains("{{expected}}")],
    name="e2e-view", progress=False,
)
exp.show(limit=4)""",
]


def tid(name: str) -> str:
    return f'[data-testid="{name}"]'


def notebook() -> str:
    cells = [{"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
              "source": src} for src in CELLS]  # fmt: skip
    return json.dumps({"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                       "language": "python"}}, "nbformat": 4, "nbformat_minor": 5})  # fmt: skip


def test_experiment_matrix_filters_pages_and_opens_a_run_in_a_playground(lab, page, shots):
    (lab.root / "experiment_view.ipynb").write_text(notebook(), encoding="utf-8")
    open_notebook(page, lab, "experiment_view.ipynb")
    run_all_cells(page)
    assert error_outputs(page) == []
    view = page.locator(tid("nbp-experiment"))
    expect(view).to_have_count(1, timeout=T)
    view.scroll_into_view_if_needed()

    # -- the matrix: a page of 4 rows, an answer of each variant in each, scores coloured ----------------------
    rows = view.locator(tid("nbp-exp-row"))
    expect(rows).to_have_count(4, timeout=T)
    expect(view.locator(tid("nbp-exp-counts"))).to_have_text("rows 1–4 of 6")
    expect(view.locator("thead th")).to_have_text(["row", "echo", "lorem"])
    for i in range(4):
        for variant in ("echo", "lorem"):
            expect(rows.nth(i).locator(f'td[data-variant="{variant}"] {tid("nbp-exp-cell")}')).to_have_count(1)
    first = rows.nth(0)
    expect(first.locator(f'td[data-variant="echo"] {tid("nbp-exp-output")}')).to_have_text(
        "Q: How long is the warranty?"
    )
    passed = first.locator(f'td[data-variant="echo"] {tid("nbp-exp-score")}')
    failed = first.locator(f'td[data-variant="lorem"] {tid("nbp-exp-score")}')
    expect(passed).to_have_attribute("data-outcome", "pass")
    expect(failed).to_have_attribute("data-outcome", "fail")
    colour = passed.evaluate("el => getComputedStyle(el).backgroundColor")
    assert colour != failed.evaluate("el => getComputedStyle(el).backgroundColor")
    assert colour not in ("rgba(0, 0, 0, 0)", "transparent")
    expect(failed).to_have_attribute("title", "does not contain 'warranty'", timeout=T)
    # the static copy of the first page is in the output but hidden where the widget renders
    expect(page.locator(".nbp-fallback").first).to_be_attached(timeout=T)
    expect(page.locator(".nbp-fallback").first).to_be_hidden()
    shots(page, "matrix")

    # -- the next page: the kernel sends the last 2 rows; a model's markup shows as text -------------------------
    view.locator(tid("nbp-exp-next")).click()
    expect(view.locator(tid("nbp-exp-counts"))).to_have_text("rows 5–6 of 6", timeout=T)
    expect(rows).to_have_count(2)
    hostile = view.locator(f'{tid("nbp-exp-row")}[data-row="hostile"] td[data-variant="echo"] {tid("nbp-exp-output")}')
    expect(hostile).to_have_text(f"Q: {XSS}")
    assert view.locator("img").count() == 0 and page.evaluate("() => window.__nbpXss") is None
    shots(page, "page-2")

    # -- a filter: the rows echo failed on icontains (only "order": its answer lacks "tracking") -------------
    view.locator(tid("nbp-exp-filter-variant")).select_option("echo")
    view.locator(tid("nbp-exp-filter-evaluator")).select_option("icontains")
    view.locator(tid("nbp-exp-filter-outcome")).select_option("fail")
    expect(view.locator(tid("nbp-exp-counts"))).to_have_text("rows 1–1 of 1 matching (6 in all)", timeout=T)
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-row", "order")
    shots(page, "filtered")

    # -- a click on an answer opens that run in a Playground below the matrix ---------------------------------
    target = rows.first.locator(f'td[data-variant="echo"] {tid("nbp-exp-cell")}')
    target.click()
    pg = page.locator(tid("nbp-playground"))
    expect(pg).to_have_count(1, timeout=T)
    pg.scroll_into_view_if_needed()
    user = pg.locator(f'{tid("nbp-message")}[data-role="user"] {tid("nbp-message-content")}').first
    expect(user).to_have_value("Q: {{question}}", timeout=T)
    question = pg.locator(f'{tid("nbp-variable")}[data-name="question"] {tid("nbp-variable-input")}')
    expect(question).to_have_value("Where is my order?", timeout=T)
    expect(pg.locator(tid("nbp-target-model"))).to_have_count(1, timeout=T)  # that run, not its batch
    expect(pg.locator(tid("nbp-target-model"))).to_have_value("mock/echo", timeout=T)
    expect(pg.locator(tid("nbp-output-text"))).to_have_text("Q: Where is my order?", timeout=T)
    expect(target).to_have_class("nbp-x-cell nbp-x-opened", timeout=T)
    shots(page, "opened-in-playground")

    # -- Clear: every row again; sorted by a score, the worst row first ----------------------------------------
    view.scroll_into_view_if_needed()
    view.locator(tid("nbp-exp-clear")).click()
    expect(view.locator(tid("nbp-exp-counts"))).to_have_text("rows 1–4 of 6", timeout=T)
    expect(rows.first).to_have_attribute("data-row", "warranty", timeout=T)
    view.locator(tid("nbp-exp-sort")).select_option("icontains:asc")
    expect(rows.first).to_have_attribute("data-row", "order", timeout=T)  # both variants fail there
    shots(page, "sorted")
    view.locator(tid("nbp-exp-clear")).click()
    expect(rows.first).to_have_attribute("data-row", "warranty", timeout=T)

    # -- a text search ------------------------------------------------------------------------------------
    view.locator(tid("nbp-exp-filter-text")).fill("GIFT")
    expect(view.locator(tid("nbp-exp-counts"))).to_have_text("rows 1–1 of 1 matching (6 in all)", timeout=T)
    expect(rows.first).to_have_attribute("data-row", "gift")
    shots(page, "searched")
    assert not [e for e in page.errors if "nbp" in e.lower() or "experiment" in e.lower()], page.errors
