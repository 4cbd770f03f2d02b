"""nbplayground: the LLM prompt playground that lives inside Jupyter.

The public API is re-exported lazily (module ``__getattr__``) so that ``import nbplayground`` and
``%load_ext nbplayground`` stay fast: litellm, pandas, duckdb and pydantic load on first use only.

>>> import nbplayground as nbp
>>> r = nbp.run("Say hi to {{name}}", model="mock/echo", variables={"name": "Ada"})
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "run": "nbplayground.api",
    "stream": "nbplayground.api",
    "compare": "nbplayground.api",
    "replay": "nbplayground.api",
    "history": "nbplayground.api",
    "get_run": "nbplayground.api",
    "sql": "nbplayground.api",
    "store_status": "nbplayground.api",
    "store_recover": "nbplayground.api",
    "providers": "nbplayground.api",
    "prompts": "nbplayground.api",
    "Comparison": "nbplayground.api",
    "configure": "nbplayground.config",
    "settings": "nbplayground.config",
    "RunHandle": "nbplayground.core.engine",
    "RunResult": "nbplayground.core.types",
    "RunRequest": "nbplayground.core.types",
    "Event": "nbplayground.core.types",
    "ToolCall": "nbplayground.core.types",
    "Media": "nbplayground.core.types",
    "run_prompt": "nbplayground.dataframe",
    "experiment": "nbplayground.experimenting",
    "experiments": "nbplayground.experimenting",
    "get_experiment": "nbplayground.experimenting",
    "Experiment": "nbplayground.experimenting",
    "render": "nbplayground.core.templating",
    "escape": "nbplayground.core.templating",
    "errors": "nbplayground.core.errors",
    "evals": "nbplayground.evals",
    "Playground": "nbplayground.widgets",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from nbplayground import evals  # noqa: F401
    from nbplayground.api import (  # noqa: F401
        Comparison,
        compare,
        get_run,
        history,
        prompts,
        providers,
        replay,
        run,
        sql,
        store_recover,
        store_status,
        stream,
    )
    from nbplayground.config import configure, settings  # noqa: F401
    from nbplayground.core import errors  # noqa: F401
    from nbplayground.core.engine import RunHandle  # noqa: F401
    from nbplayground.core.templating import escape, render  # noqa: F401
    from nbplayground.core.types import Event, Media, RunRequest, RunResult, ToolCall  # noqa: F401
    from nbplayground.experimenting import Experiment, experiment, experiments, get_experiment  # noqa: F401
    from nbplayground.widgets import Playground  # noqa: F401


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The Jupyter server extension (the playground REST + SSE API)."""
    return [{"module": "nbplayground.server"}]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbplayground``: register ``%%prompt`` and its line magics (litellm stays unloaded)."""
    from nbplayground.magic import load

    load(ipython)
    _register_accessor()


def _register_accessor() -> None:
    """``df.prompt`` exists as soon as pandas is loaded, whichever is imported first; never imports pandas."""
    import sys

    if "pandas" in sys.modules:
        importlib.import_module("nbplayground.dataframe")
    elif not any(isinstance(f, _PandasHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _PandasHook())


class _PandasHook:
    """A one-shot import hook: when pandas finishes loading, register the ``df.prompt`` accessor."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "pandas":
            return None
        import importlib.util
        import sys

        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        original = loader.exec_module

        def exec_module(module: Any) -> None:
            original(module)
            importlib.import_module("nbplayground.dataframe")

        loader.exec_module = exec_module
        return spec


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nbplayground' has no attribute {name!r}")
    mod = importlib.import_module(module)
    value = mod if name in ("errors", "evals") else getattr(mod, name)
    globals()[name] = value
    return value


_register_accessor()


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
