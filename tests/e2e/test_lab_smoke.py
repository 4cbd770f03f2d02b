"""JupyterLab itself: the quickstart notebook runs in the browser and shows its outputs."""

from __future__ import annotations

import pytest
from lab_helpers import error_outputs, open_notebook, output_texts, run_all_cells

pytestmark = pytest.mark.e2e


def test_quickstart_runs_in_jupyterlab(lab, page, shots):
    open_notebook(page, lab, "quickstart.ipynb")
    shots(page, "opened")
    run_all_cells(page)
    text = output_texts(page)
    assert "Hello Ada!" in text and "21 C and sunny in" in text
    assert not [e for e in error_outputs(page) if "Traceback" in e]
    shots(page, "ran")
