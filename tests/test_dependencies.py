"""What the package imports is what it declares (and nothing it does not use)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Imported only inside a guard with a fallback (tokens.py counts ~4 characters per token without it).
OPTIONAL = {"tiktoken"}


def _declared() -> set[str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = set()
    for dep in deps:
        name = dep.split(";")[0].split("[")[0]
        for sep in "<>=!~ ":
            name = name.split(sep)[0]
        names.add(name.strip().lower().replace("_", "-"))
    return names


def _imported_top_level() -> set[str]:
    found = set()
    for path in (ROOT / "src" / "nbplayground").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"nbplayground", "__future__"}


def test_every_third_party_import_is_a_declared_dependency():
    dists = packages_distributions()
    declared = _declared()
    missing = []
    for module in sorted(_imported_top_level() - OPTIONAL):
        names = {d.lower().replace("_", "-") for d in dists.get(module, [module])}
        if not names & declared:
            missing.append(f"{module} (from {', '.join(sorted(names))})")
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_mcp_is_not_needed_for_tool_calls_through_litellm(tmp_path):
    """mcp was declared and never imported: a tool round trip through litellm works with mcp unimportable."""
    assert "mcp" not in _declared()
    code = textwrap.dedent(
        """
        import sys
        class NoMCP:
            def find_spec(self, name, path=None, target=None):
                if name == "mcp" or name.startswith("mcp."):
                    raise ImportError(f"mcp is not installed ({name})")
        sys.meta_path.insert(0, NoMCP())
        from support.fakes import Reply, WireFake
        import nbplayground as nbp

        def get_weather(city: str) -> str:
            \"\"\"Weather.\"\"\"
            return f"sunny in {city}"

        with WireFake("openai", Reply(tool_call=("get_weather", {"city": "Oslo"})), Reply()) as fake:
            nbp.configure(models={"t": {"model": "openai/m", "api_base": fake.spec.api_base, "transport": "litellm"}})
            r = nbp.run("Weather in Oslo?", model="t", tools=[get_weather], history=False)
        assert r.status == "ok", r.error
        assert r.text == "Tool said: sunny in Oslo", r.text
        assert not [m for m in sys.modules if m == "mcp" or m.startswith("mcp.")]
        print("ok")
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
           "NBPLAYGROUND_HOME": str(tmp_path / "home")}  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]
