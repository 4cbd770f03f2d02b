"""What nbplayground's widgets share: their bundles, and a display with a static copy for saved notebooks.

A widget's own output is never updated: JupyterLab re-creates a widget view whenever its output changes
(losing focus and scroll). What a saved notebook should still show goes to outputs displayed after the
widget (:meth:`StaticCopyWidget.display_after`): static copies that the widget's CSS hides wherever the
live widget renders, and that GitHub, nbviewer and a kernel-less reload show.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget

STATIC = Path(__file__).resolve().parents[1] / "static"


def bundle(name: str, what: str) -> Any:
    """A built front-end file (``static/<name>``), or for a ``.js`` a module saying how to build it."""
    path = STATIC / name
    if path.exists():
        return path
    if not name.endswith(".js"):
        return ""
    return (
        "export default { render({ el }) {\n"
        f'  el.textContent = "nbplayground: the {what} front end is not built. Reinstall with "\n'
        '    + "`pip install -e .` (needs npm) or run `npm run build` in js/.";\n'
        "} };\n"
    )


class StaticCopyWidget(anywidget.AnyWidget):
    """A widget whose plain text is its ``repr``, displayed with :meth:`display_after` after it."""

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        shown = super()._repr_mimebundle_(**kwargs)
        if shown is None:
            return None
        data, meta = shown if isinstance(shown, tuple) else (shown, {})
        return {**data, "text/plain": repr(self)}, meta

    def _ipython_display_(self) -> None:
        from IPython.display import display as ipy_display

        shown = self._repr_mimebundle_()
        if shown is None:
            return
        ipy_display(shown[0], metadata=shown[1], raw=True)
        self.display_after()

    def display_after(self) -> None:
        """Display what follows the widget (its static copy); nothing by default."""
