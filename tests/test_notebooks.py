"""Every notebook in notebooks/ runs end to end in a real kernel, offline, in a throwaway home."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_offline(path, tmp_path, monkeypatch):
    monkeypatch.setenv("NBPLAYGROUND_HOME", str(tmp_path / "home"))
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "\n".join(str(o.get("data", {}).get("text/plain", "")) + str(o.get("text", "")) for o in outputs)
    if path.stem == "quickstart":
        assert "Say hi to Ada" in text
        assert "21 C and sunny in" in text
        assert "Hello Ada!" in text
        assert "Write a haiku about the sea" in text  # the Playground section
        assert "Hello from a thread, Ada!" in text and "== mock/lorem ==" in text  # the %%prompt section
        assert any("image/png" in o.get("data", {}) for o in outputs)
    if path.stem == "quickstart":
        assert "starts_with: framed − plain = +1" in text  # the experiment section's paired comparison
    if path.stem == "experiments":
        assert "Experiment('faq-demo', 2 variants, 6 rows, 4 evaluators)" in text
        assert "new runs: 0" in text and "exact sign test, n=6" in text
        assert not [o for o in outputs if o.get("name") == "stderr" and "Traceback" in o.get("text", "")]
    if path.stem == "magic":
        assert 'Keep this JSON as is: {"a": 1, "b": [1, 2]}' in text and "Literal: {{not_a_variable}}" in text
        assert "The get_weather tool returned: -3 C and snowing" in text
        assert "saved as demo/summary@1" in text and "== mock/lorem ==" in text
        mimes = {m for o in outputs for m in o.get("data", {})}
        assert {"image/png", "audio/wav", "application/json", "text/html"} <= mimes
        stderr = "".join(o.get("text", "") for o in outputs if o.get("name") == "stderr")
        assert "Missing template variables: nobody, nowhere.city" in stderr
        finals = [o for o in outputs if "nbplayground" in o.get("metadata", {})]
        assert len(finals) >= 20 and not any("▌" in str(o["data"].get("text/plain")) for o in finals)
    if path.stem == "playground":
        assert "Explain tides in one line." in text and "lorem ipsum" in text
        assert "Summarise lighthouses" in text and "demo/explain@1" in text
        views = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
        assert len(views) == 4
        fallbacks = [
            o for o in outputs if 'class="nbp-fallback"' in str(o.get("data", {}).get("text/html", ""))
        ]
        assert len(fallbacks) == 4 and "Explain tides in one line." in str(fallbacks[1]["data"]["text/html"])
