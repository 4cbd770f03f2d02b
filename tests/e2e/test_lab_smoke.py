"""JupyterLab itself: the quickstart and the DataFrame notebook run in the browser and show the truth."""

from __future__ import annotations

import re

import pytest
from lab_helpers import count_in_outputs, error_outputs, open_notebook, output_texts, run_all_cells

pytestmark = pytest.mark.e2e

#: What MathJax leaves in a page when it typesets (v2 and v3): none of it may appear in nbplayground's outputs.
MATH = ".jp-OutputArea-output mjx-container, .jp-OutputArea-output .MathJax, .jp-OutputArea-output .MathJax_Display"


def test_quickstart_runs_in_jupyterlab(lab, page, shots):
    open_notebook(page, lab, "quickstart.ipynb")
    shots(page, "opened")
    run_all_cells(page)
    text = output_texts(page)
    assert "Hello Ada!" in text
    # the offline demos read as a model would answer them
    assert "21 C and sunny in Paris" in text and "What's the weather" not in text.split("21 C and sunny in")[1][:40]
    assert "name='Ada Lovelace'" in text and "age=36" in text
    assert not [e for e in error_outputs(page) if "Traceback" in e]
    # two dollar amounts in one output (a compare's costs) never turn into LaTeX
    assert re.search(r"\$\d+\.\d+.*\$\d+\.\d+", text, re.S)
    assert count_in_outputs(page, MATH) == 0
    for section in ("Compare up to four models", "Tools: plain Python functions", "Images, speech"):
        heading = page.locator(".jp-MarkdownCell", has_text=section).first
        heading.scroll_into_view_if_needed()
        heading.evaluate("el => el.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(500)  # the notebook renders the cells that scrolled into view
        shots(page, section.split(":")[0].split(",")[0].lower().replace(" ", "-"))
    shots(page, "ran")


def test_dataframe_progress_bars_end_full(lab, page, shots):
    open_notebook(page, lab, "dataframe.ipynb")
    run_all_cells(page, timeout=240_000)
    shots(page, "ran")
    bars = page.evaluate("""() => [...document.querySelectorAll('.jp-OutputArea-output .widget-hbox')]
        .filter(box => box.querySelector('.progress-bar'))
        .map(box => ({text: box.textContent, danger: !!box.querySelector('.progress-bar-danger')}))""")
    assert bars, "the DataFrame notebook shows no progress bar"
    for bar in bars:
        found = re.search(r"(\d+)/(\d+)", bar["text"])
        assert found, bars
        done, total = map(int, found.groups())
        # a bar is full unless rows were left (a budget): then, and only then, it is red
        assert (done == total) != bar["danger"], bar
    assert sum(1 for b in bars if not b["danger"]) >= len(bars) - 1
    assert count_in_outputs(page, MATH) == 0
