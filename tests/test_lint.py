"""The code stays ruff-clean and mypy --strict clean (rules and their justified exceptions: pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "src", "tests", "benchmarks", "hatch_build.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict_finds_nothing():
    # [tool.mypy] in pyproject.toml: strict, the files to check, and the few third-party relaxations.
    # Incremental (its cache in .mypy_cache, which mypy keeps out of git): ~35 s cold, ~2 s warm.
    proc = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.startswith("Success"), proc.stdout + proc.stderr
