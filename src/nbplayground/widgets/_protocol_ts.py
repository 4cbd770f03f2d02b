"""TypeScript types from the protocol's JSON Schema: ``js/lib/protocol.ts`` is this module's output.

The schema is small and ours (objects, literals, unions, arrays, maps), so a direct translation is shorter
than a generator with its own toolchain, and its output is stable: the tests compare it with the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

from nbplayground.core.plan import MAX_TARGETS
from nbplayground.widgets import protocol

OUT = Path(__file__).resolve().parents[3] / "js" / "lib" / "protocol.ts"
HEADER = (
    "// Generated from src/nbplayground/widgets/protocol.py by `python -m nbplayground.widgets.protocol --ts`:\n"
    "// do not edit (tests/test_protocol.py fails when this file and the schema differ).\n"
)


class _Renderer:
    def __init__(self, schema: dict[str, Any]) -> None:
        self.defs: dict[str, Any] = schema["$defs"]
        self.aliases = {tuple(get_args(tp)): name for name, tp in protocol.ALIASES.items()}
        self.unions: dict[str, str] = {
            json.dumps(d["oneOf"]): n for n, d in self.defs.items() if "oneOf" in d and "$ref" not in d
        }

    def type(self, s: dict[str, Any], top: str | None = None) -> str:
        if "$ref" in s:
            return str(s["$ref"]).rsplit("/", 1)[-1]
        for key in ("oneOf", "anyOf"):
            if key in s:
                named = self.unions.get(json.dumps(s[key])) if key == "oneOf" else None
                if named is not None and named != top:
                    return named
                parts = [self.type(x) for x in s[key]]
                return " | ".join(dict.fromkeys(parts))
        if "const" in s:
            return json.dumps(s["const"])
        if "enum" in s:
            return self.aliases.get(tuple(s["enum"])) or " | ".join(json.dumps(v) for v in s["enum"])
        kind = s.get("type")
        if kind == "array":
            item = self.type(s["items"]) if "items" in s else "unknown"
            return f"({item})[]" if "|" in item else f"{item}[]"
        if kind == "object":
            if "properties" in s:
                return "{ " + " ".join(f for _, f in self.fields(s)) + " }"
            extra = s.get("additionalProperties", True)
            return f"Record<string, {self.type(extra) if isinstance(extra, dict) else 'unknown'}>"
        simple = {"string": "string", "integer": "number", "number": "number", "boolean": "boolean", "null": "null"}
        return simple.get(str(kind), "unknown")

    def fields(self, s: dict[str, Any]) -> list[tuple[str, str]]:
        """(doc, declaration) per property; an open object (extra keys allowed) ends with an index signature."""
        required = set(s.get("required", []))
        out = [
            (str(prop.get("description") or ""), f"{name}{'' if name in required else '?'}: {self.type(prop)};")
            for name, prop in s.get("properties", {}).items()
        ]
        if s.get("additionalProperties") is True:
            out.append(("", "[key: string]: unknown;"))
        return out

    def declaration(self, name: str) -> str:
        s = self.defs[name]
        doc = f"{_doc(s['description'])}\n" if s.get("description") else ""
        if s.get("type") == "object" and "properties" in s:
            body = "\n".join(f"{_doc(d, '  ')}\n  {f}" if d else f"  {f}" for d, f in self.fields(s))
            return f"{doc}export interface {name} {{\n{body}\n}}"
        return f"{doc}export type {name} = {self.type(s, top=name)};"


def _doc(text: str, indent: str = "") -> str:
    text = " ".join(text.replace("``", "`").split())
    return f"{indent}/** {text} */"


def render() -> str:
    """The TypeScript source of ``js/lib/protocol.ts``."""
    schema = protocol.json_schema("serialization")  # the front end receives values, defaults filled in
    r = _Renderer(schema)
    parts = [HEADER]
    for name, tp in protocol.ALIASES.items():
        parts.append(f"export type {name} = {' | '.join(json.dumps(v) for v in get_args(tp))};")
    parts.append("")
    parts.append(f"export const MAX_TARGETS = {MAX_TARGETS};")
    parts.append(f"export const ROLES: readonly Role[] = {json.dumps(list(protocol.ROLES))};")
    parts.append(f"export const EVENT_TYPES: readonly EventType[] = {json.dumps(list(protocol.EVENT_TYPES))};")
    named = list(protocol.TYPES)
    order = [n for n in r.defs if n not in named]  # helpers (FunctionCall, StartEvent...): alphabetical
    for name in [*sorted(order), *named]:
        parts.append("")
        parts.append(r.declaration(name))
    return "\n".join(parts) + "\n"


def write(out: str | Path | None = None) -> Path:
    """Write :func:`render` to ``out`` (default ``js/lib/protocol.ts`` of this checkout); returns the path."""
    path = Path(out) if out else OUT
    path.write_text(render(), encoding="utf-8")
    return path
