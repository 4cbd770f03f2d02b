"""The widget front end's own checks: TypeScript types, and placeholders found exactly as the kernel finds them."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbplayground.core.templating import placeholders

JS = Path(__file__).resolve().parents[1] / "js"
pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is needed to build the widget")


def test_typescript_typechecks():
    proc = subprocess.run(
        ["npm", "run", "--silent", "typecheck"], cwd=JS, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def js_placeholders(tmp_path_factory):
    """``placeholders(template)`` from js/lib/placeholders.ts, bundled by esbuild and run in one node process."""
    out = tmp_path_factory.mktemp("js") / "placeholders.mjs"
    esbuild = JS / "node_modules" / ".bin" / "esbuild"
    subprocess.run([str(esbuild), str(JS / "lib" / "placeholders.ts"), "--bundle", "--format=esm",
                    f"--outfile={out}"], check=True, capture_output=True, timeout=120)  # fmt: skip
    runner = out.with_name("run.mjs")
    runner.write_text(
        "import { placeholders } from './placeholders.mjs';\n"
        "import { readFileSync } from 'node:fs';\n"
        "const inputs = JSON.parse(readFileSync(0, 'utf8'));\n"
        "process.stdout.write(JSON.stringify(inputs.map(placeholders)));\n"
    )

    def run(templates: list[str]) -> list[list[str]]:
        proc = subprocess.run(["node", str(runner)], input=json.dumps(templates), capture_output=True, text=True,
                              timeout=60, check=True)  # fmt: skip
        return json.loads(proc.stdout)

    return run


CASES = [
    "Hello {{name}}",
    "{{ a.b }} and {{items[0]}} and {{items.0}} {{ d['k'] }} {{d[\"k\"]}}",
    'Keep {"a": 1} and {{}} and {{ }} and {x}',
    "\\{{escaped}} \\\\{{not_escaped}}",
    "{{{triple}}} {{{{four}}}}",
    "{{ spaced.path }}",
    "{{a}}{{b}}{{a}}",
    "{{ not a path }}",
    "{{a-b}} {{_x}} {{é}} {{1bad}}",
    "{{a.}} {{a..b}}",
]


def test_front_end_and_kernel_find_the_same_placeholders(js_placeholders):
    assert js_placeholders(CASES) == [placeholders(t) for t in CASES]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.text(alphabet=st.sampled_from(list("{}ab.[]0'\"\\ _-é")), max_size=30), min_size=1, max_size=60
    )
)
def test_front_end_and_kernel_agree_on_random_templates(js_placeholders, templates):
    assert js_placeholders(templates) == [placeholders(t) for t in templates]
