"""What may import what (docs/architecture.md): every import in the source, top level or lazy, checked."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "nbplayground"
JUPYTER = ("IPython", "ipywidgets", "anywidget", "jupyter_server", "tornado", "traitlets")
SURFACES = ("nbplayground.magic", "nbplayground.widgets", "nbplayground.server", "nbplayground.dataframe",
            "nbplayground.api", "nbplayground.frames", "nbplayground.batchrun",
            "nbplayground.experimenting")  # fmt: skip
#: package (relative to src/nbplayground) -> imports it must never make
RULES: dict[str, tuple[str, ...]] = {
    "core": (*JUPYTER, "nbplayground.storage", *SURFACES),
    "core/transports": ("nbplayground.core.engine", "nbplayground.core.runner", "nbplayground.core.batch",
                        "nbplayground.core.retry"),
    "core/transports/http.py": ("nbplayground.core.errormap", "nbplayground.core.providers",
                                "nbplayground.core.transports.native", "nbplayground.core.transports.litellm"),
    "storage": (*JUPYTER, *SURFACES, "nbplayground.core.engine", "nbplayground.core.runner", "litellm"),
    "server": ("IPython", "ipywidgets", "anywidget", "nbplayground.magic", "nbplayground.widgets"),
    "magic.py": ("jupyter_server", "tornado", "nbplayground.server", "nbplayground.widgets"),
    "widgets": ("jupyter_server", "tornado", "nbplayground.server", "nbplayground.magic"),
    "dataframe.py": (*JUPYTER[:-1], "nbplayground.server", "nbplayground.magic", "nbplayground.widgets"),
    # experiments run a prompt over a frame as DataFrame runs do: the one surface built on another
    "experimenting.py": (*JUPYTER[:-1], "nbplayground.server", "nbplayground.magic"),
    "batchrun.py": (*JUPYTER, "nbplayground.server", "nbplayground.magic", "nbplayground.widgets",
                    "nbplayground.dataframe", "pandas"),  # rows by position and key: the frame is dataframe.py's
}


def _imports(path: Path) -> set[str]:
    out = set()
    package = ".".join(("nbplayground", *path.relative_to(SRC).with_suffix("").parts[:-1]))
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the package
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            out.add(base)
            out |= {f"{base}.{a.name}" for a in node.names}
    return out


def test_every_package_imports_only_what_its_layer_may():
    broken = []
    for scope, banned in RULES.items():
        target = SRC / scope
        files = [target] if target.suffix == ".py" else sorted(target.rglob("*.py"))
        assert files, f"no source under {scope}"
        for path in files:
            for name in _imports(path):
                if any(name == b or name.startswith(b + ".") for b in banned):
                    broken.append(f"{path.relative_to(SRC)} imports {name} ({scope} may not)")
    assert not broken, "\n".join(broken)
