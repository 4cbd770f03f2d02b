"""Small JupyterLab page helpers for browser tests (JupyterLab 4, app exposed as ``window.jupyterapp``)."""

from __future__ import annotations

from typing import Any

KERNEL_IDLE = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const ctx = w && w.sessionContext;
  const k = ctx && ctx.session && ctx.session.kernel;
  return !!k && k.connectionStatus === 'connected' && k.status === 'idle' && !ctx.pendingInput;
}"""

ALL_RUN = """() => {
  const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')];
  return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent || ''));
}"""


def open_notebook(page: Any, lab: Any, name: str, timeout: float = 90_000) -> None:
    """Open a notebook and wait until its kernel is connected and idle."""
    page.goto(f"{lab.url}/lab/tree/{name}?token={lab.token}&reset")
    page.wait_for_function(
        "() => window.jupyterapp && document.querySelector('.jp-NotebookPanel .jp-Notebook .jp-Cell')",
        timeout=timeout,
    )
    page.wait_for_function(KERNEL_IDLE, timeout=timeout)


def run_all_cells(page: Any, timeout: float = 120_000) -> None:
    """Run every cell (Run ▸ Run All Cells) and wait until each has an execution count and the kernel is idle."""
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(ALL_RUN, timeout=timeout)
    page.wait_for_function(KERNEL_IDLE, timeout=timeout)


def error_outputs(page: Any) -> list[str]:
    """Texts of error outputs (tracebacks) in the open notebook."""
    return page.locator(
        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
    ).all_inner_texts()


#: Scrolls each code cell of the open notebook into view (JupyterLab renders only the cells near the
#: viewport) and reads its outputs' rendered text, in order.
_ALL_OUTPUT_TEXTS = """async (selector) => {
  const nb = window.jupyterapp.shell.currentWidget.content;
  const texts = [];
  for (let i = 0; i < nb.widgets.length; i++) {
    const cell = nb.widgets[i];
    if (cell.model.type !== 'code') continue;
    await nb.scrollToItem(i, 'auto');
    await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 30)));
    for (const out of cell.node.querySelectorAll(selector)) texts.push(out.innerText);
  }
  return texts;
}"""


def output_texts(page: Any, selector: str = ".jp-OutputArea-output") -> str:
    """The rendered text of every output in the open notebook (or of what ``selector`` finds in its code
    cells), also of cells scrolled out of view."""
    return "\n".join(page.evaluate(_ALL_OUTPUT_TEXTS, selector))


def count_in_outputs(page: Any, selector: str) -> int:
    """How many elements matching ``selector`` the code cells of the open notebook hold, every cell rendered."""
    return len(page.evaluate(_ALL_OUTPUT_TEXTS, selector))
