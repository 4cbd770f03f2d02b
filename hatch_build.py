"""Hatchling build hook: bundle the widget front end (``js/``) into ``src/nbplayground/static/``.

Runs for wheel and editable builds. ``npm ci`` (``npm install`` without a lock file) when
``js/node_modules`` is missing, then ``npm run build`` when a bundle (the Playground's and the experiment
view's ``.js`` and ``.css``) is missing or older than any front-end source. Set ``NBPLAYGROUND_SKIP_JS=1`` to skip (the widget then
shows a "front end not built" notice unless the bundle is already there).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

BUNDLES = ("playground.js", "playground.css", "experiment.js", "experiment.css")
SOURCES = ("*.ts", "lib/*.ts", "components/*.ts", "*.css", "package*.json")


#: Files outside js/ that the bundle imports (the sanitizer allow-list shared with the kernel).
SHARED = ("src/nbplayground/core/sanitize_profile.json",)


def _newest(js: Path) -> float:
    stamps = [p.stat().st_mtime for pattern in SOURCES for p in js.glob(pattern) if p.is_file()]
    stamps += [(js.parent / name).stat().st_mtime for name in SHARED if (js.parent / name).is_file()]
    return max(stamps, default=0.0)


def _missing(static: Path) -> list[str]:
    return [name for name in BUNDLES if not (static / name).is_file()]


def _stale(js: Path, static: Path) -> bool:
    if _missing(static):
        return True
    return min((static / name).stat().st_mtime for name in BUNDLES) < _newest(js)


class JSBuildHook(BuildHookInterface):
    """Build the anywidget bundle before the wheel (or the editable wheel) is assembled."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        if os.environ.get("NBPLAYGROUND_SKIP_JS", "").strip().lower() in ("1", "true", "yes"):
            self.app.display_info(
                "nbplayground: NBPLAYGROUND_SKIP_JS is set, not building the widget front end"
            )
            return
        root = Path(self.root)
        js = root / "js"
        static = root / "src" / "nbplayground" / "static"
        if not (js / "package.json").is_file():
            # e.g. a wheel built from an sdist that already carries the bundle
            if not _missing(static):
                return
            raise RuntimeError(
                "nbplayground: js/package.json is missing and so is the built widget front end "
                f"({static}); build from a full source checkout."
            )
        if not _stale(js, static):
            return
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError(
                "nbplayground: npm was not found on PATH, and it is needed to build the widget front end "
                "(js/ -> src/nbplayground/static/). Install Node.js 20+ with npm, or set "
                "NBPLAYGROUND_SKIP_JS=1 to install without the widget front end."
            )
        if not (js / "node_modules").is_dir():
            cmd = "ci" if (js / "package-lock.json").is_file() else "install"
            self._npm(npm, [cmd, "--no-audit", "--no-fund"], js)
        self._npm(npm, ["run", "build"], js)
        if missing := _missing(static):
            raise RuntimeError(
                f"nbplayground: `npm run build` did not produce {', '.join(missing)} in {static}"
            )

    def _npm(self, npm: str, args: list[str], cwd: Path) -> None:
        self.app.display_info(f"nbplayground: npm {' '.join(args)} (in {cwd})")
        try:
            subprocess.run([npm, *args], cwd=cwd, check=True)
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(
                f"nbplayground: `npm {' '.join(args)}` failed in {cwd} (exit {exc.returncode}); "
                "see the npm output above."
            ) from exc
