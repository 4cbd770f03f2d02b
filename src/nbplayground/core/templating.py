"""Prompt templates: ``{{name}}`` placeholders with dot paths, and every other brace left alone.

Rules
-----
- A placeholder is ``{{ path }}`` (spaces optional). A path is a name followed by ``.key``, ``.0``,
  ``[0]``, ``["key"]`` or ``['key']`` segments: ``{{user.name}}``, ``{{items.0}}``, ``{{items[0]}}``,
  ``{{row["first name"]}}``.
- Paths walk into mappings, into lists by index, into strings that hold JSON objects or arrays
  (``{{config.prompt}}`` where ``config = '{"prompt": "hi"}'``), and finally into public attributes.
- A key that literally contains a dot wins over the nested path: with ``{"a.b": 1, "a": {"b": 2}}``,
  ``{{a.b}}`` is ``1``. This holds at every level (the longest literal key is tried first).
- Values are inserted verbatim and never rendered again: a value containing ``{{x}}`` stays literal.
  Strings go in as they are; dicts and lists as JSON; everything else through ``str()``.
- Everything that is not a valid placeholder stays exactly as written: single braces (JSON, f-strings,
  code, CSS), ``{%``, ``{#``, a lone ``}}``, and ``{{`` around anything that is not a path
  (``{{ }}``, ``{{#each}}``, ``{{x + 1}}``), and triple braces such as ``{{{x}}}`` (Handlebars, or an
  f-string's escaped braces around a field), which are code, not placeholders.
- Escape: a backslash before the braces, ``\\{{name}}``, renders the literal ``{{name}}`` (the backslash
  is consumed; ``\\\\{{`` renders one backslash followed by a placeholder). :func:`escape` does this for you.
- Missing variables are reported all at once, before anything is sent, with the available names.
- ``assistant`` and ``tool`` messages are never rendered: they hold model or tool output, not templates.

Why not Jinja2: its sandbox with ``StrictUndefined`` is the design's first choice, but Jinja treats
``{%`` and ``{#`` as syntax, raises on any ``{{`` that is not an expression, and resolves ``a.b`` as
attribute-then-item with no way to prefer a literal dotted key. Meeting the rules above would mean a
pre-parser that tokenizes exactly what this module's one regular expression does, so we keep only that
(it is a regular language: no evaluation, no filters, nothing to sandbox).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from typing import Any

from nbplayground.core.errors import MissingVariablesError

_NAME = r"[^\W\d][\w\-]*"
_SEGMENT = r"""(?:\.[\w\-]+|\[\s*\d+\s*\]|\[\s*"[^"\]]*"\s*\]|\[\s*'[^'\]]*'\s*\])"""
_PATH = rf"{_NAME}{_SEGMENT}*"
# Group 1: the backslashes before "{{" (escapes); group 2: the path (None for a bare "{{" run).
_TOKEN = re.compile(rf"(\\*)\{{\{{(?:\s*({_PATH})\s*\}}\}})?")
_SEG = re.compile(r"""\.([\w\-]+)|\[\s*(\d+)\s*\]|\[\s*"([^"\]]*)"\s*\]|\[\s*'([^'\]]*)'\s*\]""")

_MISSING = object()


@functools.lru_cache(maxsize=512)
def _parse(template: str) -> tuple[tuple[str, str], ...]:
    """Split a template into ("text", s) and ("var", path) tokens."""
    out: list[tuple[str, str]] = []
    pos = 0
    buf: list[str] = []
    for m in _TOKEN.finditer(template):
        slashes, path = m.group(1), m.group(2)
        buf.append(template[pos : m.start()])
        pos = m.end()
        n = len(slashes)
        buf.append("\\" * (n // 2))
        if n % 2 == 1:  # escaped: the braces (and whatever followed) are literal
            buf.append(m.group(0)[n:])
        elif path is None:
            buf.append("{{")
        else:
            if buf:
                out.append(("text", "".join(buf)))
                buf = []
            out.append(("var", path))
    buf.append(template[pos:])
    text = "".join(buf)
    if text:
        out.append(("text", text))
    return tuple(out)


def _segments(path: str) -> tuple[str, list[str | int]]:
    m = re.match(_NAME, path)
    assert m is not None
    root = m.group(0)
    parts: list[str | int] = []
    for seg in _SEG.finditer(path, m.end()):
        dotted, index, dq, sq = seg.groups()
        if index is not None:
            parts.append(int(index))
        elif dotted is not None:
            parts.append(int(dotted) if dotted.isdigit() else dotted)
        else:
            parts.append(dq if dq is not None else sq)
    return root, parts


def _step(value: Any, key: str | int) -> Any:
    if isinstance(value, str):
        stripped = value.lstrip()
        if stripped[:1] in ("{", "["):
            try:
                value = json.loads(value)
            except ValueError:
                return _MISSING
        else:
            return _MISSING
    if isinstance(value, Mapping):
        if key in value:
            return value[key]
        if isinstance(key, int) and str(key) in value:
            return value[str(key)]
        return _MISSING
    if isinstance(value, list | tuple):
        if isinstance(key, int) and 0 <= key < len(value):
            return value[key]
        return _MISSING
    getitem = getattr(value, "__getitem__", None)
    if getitem is not None and not isinstance(value, bytes | bytearray):
        try:
            return getitem(key)
        except (KeyError, IndexError, TypeError, ValueError):
            pass
    if isinstance(key, str) and not key.startswith("_"):
        return getattr(value, key, _MISSING)
    return _MISSING


def _walk(value: Any, parts: list[str | int]) -> Any:
    """Follow ``parts``; at each level a literal dotted key ("a.b") beats the nested path."""
    if not parts:
        return value
    if isinstance(value, Mapping) and len(parts) > 1:
        for n in range(len(parts), 1, -1):
            if not all(isinstance(p, str | int) for p in parts[:n]):
                continue
            key = ".".join(str(p) for p in parts[:n])
            if key in value:
                found = _walk(value[key], parts[n:])
                if found is not _MISSING:
                    return found
    nxt = _step(value, parts[0])
    if nxt is _MISSING:
        return _MISSING
    return _walk(nxt, parts[1:])


def _resolve(variables: Mapping[str, Any], path: str) -> Any:
    if path in variables:  # the whole path is a literal key ("a.b", "row[0]")
        return variables[path]
    root, parts = _segments(path)
    if not parts:
        return variables.get(root, _MISSING) if root in variables else _MISSING
    # dotted root keys: {"a.b": {...}} with "{{a.b.c}}"
    flat = path.split(".")
    for n in range(len(flat) - 1, 1, -1):
        key = ".".join(flat[:n])
        if key in variables:
            found = _walk(variables[key], _segments("x." + ".".join(flat[n:]))[1])
            if found is not _MISSING:
                return found
    if root not in variables:
        return _MISSING
    return _walk(variables[root], parts)


def lookup(variables: Mapping[str, Any], path: str) -> Any:
    """Resolve one placeholder path against ``variables``; ``KeyError(path)`` when it is missing."""
    value = _resolve(variables, path)
    if value is _MISSING:
        raise KeyError(path)
    return value


def _format(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        try:
            return json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            return str(value)
    return str(value)


def placeholders(template: str) -> list[str]:
    """The distinct placeholder paths of a template, in order of first use."""
    seen: dict[str, None] = {}
    for kind, value in _parse(template):
        if kind == "var":
            seen.setdefault(value, None)
    return list(seen)


def _render_tokens(
    tokens: tuple[tuple[str, str], ...], variables: Mapping[str, Any], missing: list[str]
) -> str:
    out: list[str] = []
    for kind, value in tokens:
        if kind == "text":
            out.append(value)
            continue
        found = _resolve(variables, value)
        if found is _MISSING:
            missing.append(value)
        else:
            out.append(_format(found))
    return "".join(out)


def render(template: str, variables: Mapping[str, Any]) -> str:
    """Fill ``{{placeholders}}``; raise :class:`MissingVariablesError` naming every missing one."""
    missing: list[str] = []
    text = _render_tokens(_parse(template), variables, missing)
    if missing:
        raise MissingVariablesError(missing, variables.keys())
    return text


def render_messages(messages: list[dict[str, Any]], variables: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Render the system/user/developer messages of a thread (new dicts; the input is not changed).

    String contents are rendered, and so are the ``text`` parts of list contents; assistant and tool
    messages are copied as they are. All missing variables across all messages raise one error.
    """
    missing: list[str] = []
    out: list[dict[str, Any]] = []
    for msg in messages:
        new = dict(msg)
        if msg.get("role") not in ("assistant", "tool"):
            content = msg.get("content")
            if isinstance(content, str):
                new["content"] = _render_tokens(_parse(content), variables, missing)
            elif isinstance(content, list):
                parts = []
                for part in content:
                    if (
                        isinstance(part, dict)
                        and part.get("type") == "text"
                        and isinstance(part.get("text"), str)
                    ):
                        part = {**part, "text": _render_tokens(_parse(part["text"]), variables, missing)}
                    parts.append(part)
                new["content"] = parts
        out.append(new)
    if missing:
        raise MissingVariablesError(missing, variables.keys())
    return out


_ESCAPE = re.compile(r"(\\*)\{\{")


def escape(text: str, before_placeholder: bool = False) -> str:
    """Text that renders back to exactly ``text``: every ``{{`` becomes literal.

    When the escaped text will be followed directly by a placeholder, pass ``before_placeholder=True``
    so that trailing backslashes are doubled too (otherwise they would escape that placeholder).
    """
    out = _ESCAPE.sub(lambda m: m.group(1) * 2 + "\\{{", text)
    if before_placeholder:
        stripped = out.rstrip("\\")
        out = stripped + (len(out) - len(stripped)) * 2 * "\\"
    return out
