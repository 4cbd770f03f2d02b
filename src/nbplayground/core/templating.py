r"""Prompt templates: ``{{name}}`` placeholders with dot paths, and every other brace left alone.

Rules
-----
- A placeholder is ``{{ path }}`` (spaces optional). A path is a name (letters, including non-ASCII ones,
  digits, ``_`` and ``-``; not starting with a digit or ``-``) followed by ``.key``, ``.0``, ``[0]``,
  ``["key"]`` or ``['key']`` segments: ``{{user.name}}``, ``{{items.0}}``, ``{{items[0]}}``,
  ``{{row["first name"]}}``.
- Paths walk into mappings, into lists and tuples by index, into strings that hold a JSON object or array
  (``{{config.prompt}}`` where ``config = '{"prompt": "hi"}'``), into other objects with ``obj[key]``
  (a pandas row: ``{{row.question}}``), and last into public attributes. Attribute names starting with
  ``_`` are never followed, and attributes that are methods count as missing.
- A key that literally contains a dot wins over the nested path: with ``{"a.b": 1, "a": {"b": 2}}``,
  ``{{a.b}}`` is ``1``. This holds at every level, the longest literal key first
  (``{"cfg": {"x.y": 3}}`` gives ``{{cfg.x.y}}`` = ``3``); if the rest of the path is not found under the
  literal key, the nested path is tried. A variable named by the whole path wins over everything
  (``{"items[0]": "x"}`` fills ``{{items[0]}}``): a run stores its variables that way (see ``resolved``
  in :func:`render`), and they fill its template again. :func:`nest` turns them back into objects.
- Values are inserted verbatim and never rendered again: a value containing ``{{x}}`` stays literal.
  Strings go in as they are; dicts and lists as JSON (``json.dumps(value, ensure_ascii=False)``);
  everything else through ``str()`` (so ``3``, ``0.5``, ``True``, and ``None`` for ``None``).
- Everything that is not a valid placeholder stays exactly as written: single braces (JSON, f-strings,
  code, CSS), ``{%``, ``{#``, a lone ``}}``, ``{{`` around anything that is not a path (``{{ }}``,
  ``{{#each items}}``, ``{{x + 1}}``, ``{{ 'a' }}``).
- In a run of three or more ``{`` only the last two can open a placeholder, so a literal brace can sit
  right before a value: ``{{{x}}}`` is ``{``, x, ``}`` and LaTeX ``\{{{x}}\}`` is ``\{``, x, ``\}``.
  Code that means something else by ``{{name}}`` or ``{{{name}}}`` (f-strings, Handlebars) needs escapes.
- Escape: a backslash right before the two braces that open a placeholder, ``\{{name}}``, renders the
  literal ``{{name}}`` (the backslash is consumed). Backslashes count only there: ``2n`` of them render as
  ``n`` and leave the placeholder active (``\\{{name}}`` is one backslash and the value), ``2n + 1``
  render as ``n`` and make the braces literal. Backslashes anywhere else (Windows paths, regexes, LaTeX,
  ``\{{{x}}}`` where they precede a literal brace) stay as written. To make ``{{{name}}}`` literal, escape
  its last two braces: ``{\{{name}}}``.
- :func:`escape` applies these rules to any text, so ``render(escape(text), {}) == text`` always. Its
  result is meant to stand alone: text that goes right before a placeholder and ends in backslashes
  needs them doubled (``a\\{{x}}`` is ``a\`` and x), and if it ends in ``{{`` its last brace run is
  written raw (``{{{{x}}`` is ``{{`` and x).
- Missing variables are reported all at once, before anything is sent, with the available names. A path
  whose root exists but whose inner key or index does not is missing too (the full path is reported).
- :func:`render_messages` never renders ``assistant``, ``tool`` or ``function`` messages: they hold model
  or tool output, which must stay literal, not templates.

Why not Jinja2: its sandbox with ``StrictUndefined`` is the design's first choice, but Jinja treats
``{%`` and ``{#`` as syntax, raises on any ``{{`` that is not an expression, and resolves ``a.b`` as
attribute-then-item with no way to prefer a literal dotted key. Meeting the rules above would mean a
pre-parser that tokenizes exactly what this module's regular expressions do, so we keep only that: no
evaluation, no filters, nothing to sandbox.
"""

from __future__ import annotations

import datetime
import functools
import json
import numbers
import re
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from nbplayground.core.errors import MissingVariablesError, TemplateError

__all__ = ["escape", "is_plain", "lookup", "nest", "placeholders", "render", "render_messages", "root"]

_NAME = r"[^\W\d][\w\-]*"
_SEGMENT = r"""(?:\.[\w\-]+|\[\s*[0-9]+\s*\]|\[\s*"[^"\n]*"\s*\]|\[\s*'[^'\n]*'\s*\])"""
_PATH_RE: Final = re.compile(rf"{_NAME}{_SEGMENT}*")
# A run of two or more "{" with the backslashes before it. Only the run's last two braces can open a
# placeholder, and backslashes count (as escapes) only when they are right before those two.
_OPEN: Final = re.compile(r"(\\*)(\{\{+)")
# What must follow an active "{{" for it to be a placeholder.
_BODY: Final = re.compile(rf"\s*({_NAME}{_SEGMENT}*)\s*\}}\}}")
_NAME_RE: Final = re.compile(_NAME)
_SEG_RE: Final = re.compile(r"""\.([\w\-]+)|\[\s*([0-9]+)\s*\]|\[\s*"([^"\n]*)"\s*\]|\[\s*'([^'\n]*)'\s*\]""")

#: roles whose content is output (model, tool), never a template
_LITERAL_ROLES: Final = frozenset({"assistant", "tool", "function"})

_MISSING: Final = object()

# Token kinds of a parsed template.
_TEXT: Final = "text"
_VAR: Final = "var"


class _Segment(NamedTuple):
    """One step of a path: its text, the keys to try in order, and how it was written."""

    text: str
    keys: tuple[str | int, ...]
    #: written as a name or ``.name`` (may join neighbours into a literal dotted key)
    dotted: bool
    #: usable as a list index (``.0`` or ``[0]``); not named ``index``, which would shadow ``tuple.index``
    position: int | None


@functools.lru_cache(maxsize=512)
def _parse(template: str) -> tuple[tuple[str, str], ...]:
    """Split a template into ``("text", literal)`` and ``("var", path)`` tokens (cached)."""
    tokens: list[tuple[str, str]] = []
    buf: list[str] = []
    pos = 0
    while (m := _OPEN.search(template, pos)) is not None:
        buf.append(template[pos : m.start()])
        slashes, braces = m.group(1), m.group(2)
        end = m.end()
        if len(braces) == 2:  # backslashes right before "{{": pairs collapse, an odd one escapes
            buf.append("\\" * (len(slashes) // 2))
            if len(slashes) % 2:
                buf.append("{{")
                pos = end
                continue
        else:  # "{{{...": the backslashes and all but the last two braces are literal
            buf.append(slashes + braces[:-2])
        body = _BODY.match(template, end)
        if body is None:  # "{{" around something that is not a path: verbatim
            buf.append("{{")
            pos = end
            continue
        if literal := "".join(buf):
            tokens.append((_TEXT, literal))
        buf = []
        tokens.append((_VAR, body.group(1)))
        pos = body.end()
    if literal := "".join(buf) + template[pos:]:
        tokens.append((_TEXT, literal))
    return tuple(tokens)


@functools.lru_cache(maxsize=1024)
def _segments(path: str) -> tuple[_Segment, ...]:
    """Split a valid path into segments, the root name first."""
    root = _NAME_RE.match(path)
    assert root is not None
    segs = [_Segment(root.group(0), (root.group(0),), True, None)]
    for seg in _SEG_RE.finditer(path, root.end()):
        dotted, index, dq, sq = seg.groups()
        if dotted is not None:
            number = int(dotted) if dotted.isascii() and dotted.isdigit() else None
            keys: tuple[str | int, ...] = (dotted,) if number is None else (dotted, number)
            segs.append(_Segment(dotted, keys, True, number))
        elif index is not None:
            segs.append(_Segment(index, (int(index), index), False, int(index)))
        else:
            key = dq if dq is not None else sq
            segs.append(_Segment(key, (key,), False, None))
    return tuple(segs)


def _decode(value: Any) -> Any:
    """A string holding a JSON object or array becomes that object; anything else is returned as is."""
    if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            return value
    return value


def _item(container: Any, keys: tuple[str | int, ...]) -> Any:
    """``container[key]`` for the first key that exists, else ``_MISSING``."""
    for key in keys:
        if isinstance(container, Mapping):
            if key in container:
                return container[key]
            continue
        try:
            return container[key]
        except Exception:  # arbitrary objects: any failure means "not there"
            continue
    return _MISSING


def _walk(value: Any, segs: tuple[_Segment, ...], i: int) -> Any:
    """Follow ``segs[i:]`` from ``value``; ``_MISSING`` when any step is not there."""
    if i == len(segs):
        return value
    value = _decode(value)
    seg = segs[i]
    if isinstance(value, str | bytes | bytearray):
        return _MISSING
    if isinstance(value, list | tuple):
        if seg.position is not None and seg.position < len(value):
            return _walk(value[seg.position], segs, i + 1)
        return _MISSING
    if isinstance(value, Mapping) or hasattr(type(value), "__getitem__"):
        # A literal dotted key ("a.b") beats the nested path; the longest one first.
        run = 0
        while i + run < len(segs) and segs[i + run].dotted:
            run += 1
        for n in range(run, 1, -1):
            found = _item(value, (".".join(s.text for s in segs[i : i + n]),))
            if found is not _MISSING and (found := _walk(found, segs, i + n)) is not _MISSING:
                return found
        found = _item(value, seg.keys)
        if found is not _MISSING:
            return _walk(found, segs, i + 1)
        if isinstance(value, Mapping):
            return _MISSING
    if seg.dotted and seg.text.isidentifier() and not seg.text.startswith("_"):
        try:
            attr = getattr(value, seg.text)
        except Exception:
            return _MISSING
        if callable(attr):
            return _MISSING
        return _walk(attr, segs, i + 1)
    return _MISSING


def _resolve(variables: Mapping[str, Any], path: str) -> Any:
    if "." in path or "[" in path:  # a variable named by the whole path wins (what ``resolved`` records)
        try:
            if path in variables:
                return variables[path]
        except TypeError:
            pass
    return _walk(variables, _segments(path), 0)


def lookup(variables: Mapping[str, Any], path: str) -> Any:
    """Resolve one placeholder path (``"config.topic"``, ``"items[0]"``) against ``variables``.

    Raises ``KeyError(path)`` when it is missing and :class:`TemplateError` when ``path`` is not a path.
    """
    path = path.strip()
    if _PATH_RE.fullmatch(path) is None:
        raise TemplateError(f'{path!r} is not a template path (a name followed by .key, .0 or ["key"]).')
    value = _resolve(variables, path)
    if value is _MISSING:
        raise KeyError(path)
    return value


def _format(value: Any) -> str:
    """How a value is inserted: strings as they are, dicts and lists as JSON, the rest with ``str()``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        try:
            return json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError, RecursionError):
            return str(value)
    return str(value)


def placeholders(template: str) -> list[str]:
    """The distinct placeholder paths of a template, in order of first use (``["name", "config.topic"]``)."""
    seen: dict[str, None] = {}
    for kind, value in _parse(template):
        if kind == _VAR:
            seen.setdefault(value, None)
    return list(seen)


def root(path: str) -> str:
    """The variable a placeholder path starts from: ``"cfg"`` for ``"cfg.items[0]"``."""
    name = _NAME_RE.match(path)
    return name.group(0) if name else path


def _fill(
    template: str, variables: Mapping[str, Any], missing: list[str], resolved: dict[str, Any] | None = None
) -> str:
    if not isinstance(template, str):
        raise TypeError(f"a template must be a str, not {type(template).__name__}")
    out: list[str] = []
    for kind, value in _parse(template):
        if kind == _TEXT:
            out.append(value)
            continue
        found = _resolve(variables, value)
        if found is _MISSING:
            missing.append(value)
        else:
            out.append(_format(found))
            if resolved is not None:
                resolved[value] = found
    return "".join(out)


def render(template: str, variables: Mapping[str, Any], *, resolved: dict[str, Any] | None = None) -> str:
    """Fill the ``{{placeholders}}`` of ``template`` from ``variables``.

    ``resolved``, if given, receives the value of each placeholder by its path (``{"cfg.prompt": "…"}``):
    what the text was made of, and all of it that is worth keeping (``render(template, resolved)`` gives
    the same text: a variable named by the whole path wins). Raises :class:`MissingVariablesError` naming every
    missing path (and the available variables).
    """
    missing: list[str] = []
    text = _fill(template, variables, missing, resolved)
    if missing:
        raise MissingVariablesError(missing, variables.keys(), field=f"variables.{missing[0]}")
    return text


def render_messages(
    messages: list[dict[str, Any]], variables: Mapping[str, Any], *, resolved: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Render a thread of chat messages; returns new message dicts and leaves the input unchanged.

    A ``str`` content is rendered; in a list content (OpenAI parts) the ``text`` of ``"type": "text"``
    parts is rendered and other parts are kept as they are. Other keys (role, name, tool_calls,
    tool_call_id, ...) are copied unchanged. ``assistant``, ``tool`` and ``function`` messages are not
    rendered at all: their content is model or tool output. Missing variables across all messages raise
    one :class:`MissingVariablesError`. ``resolved`` receives each placeholder's value, as in :func:`render`.
    """
    missing: list[str] = []
    out: list[dict[str, Any]] = []
    for message in messages:
        new = dict(message)
        content = message.get("content")
        if message.get("role") not in _LITERAL_ROLES:
            if isinstance(content, str):
                new["content"] = _fill(content, variables, missing, resolved)
            elif isinstance(content, list):
                new["content"] = [
                    {**part, "text": _fill(part["text"], variables, missing, resolved)}
                    if isinstance(part, dict)
                    and part.get("type") == "text"
                    and isinstance(part.get("text"), str)
                    else part
                    for part in content
                ]
        out.append(new)
    if missing:
        raise MissingVariablesError(missing, variables.keys(), field=f"variables.{missing[0]}")
    return out


def nest(resolved: Mapping[str, Any]) -> dict[str, Any]:
    """Values by placeholder path back into objects by root name: ``{"cfg.prompt": "hi"}`` -> ``{"cfg": {"prompt": "hi"}}``.

    Indexes become dict keys (``{"items[0]": 1}`` -> ``{"items": {"0": 1}}``, which ``{{items[0]}}`` and
    ``{{items.0}}`` still find). When a root was stored whole too, the whole value is kept. Keys that are
    not paths stay as they are.
    """
    out: dict[str, Any] = {}
    for path, value in sorted(resolved.items(), key=lambda kv: len(kv[0])):  # roots before their parts
        if not isinstance(path, str) or _PATH_RE.fullmatch(path) is None:
            out.setdefault(path, value)
            continue
        *parents, last = _segments(path)
        node: Any = out
        for seg in parents:
            child = node.get(seg.text)
            if child is None:
                child = node[seg.text] = {}
            elif not isinstance(child, dict):
                break  # the whole value is stored already
            node = child
        else:
            node.setdefault(last.text, value)
    return out


_PLAIN_SCALARS: Final = (str, numbers.Number, type(None), datetime.date, datetime.time, datetime.timedelta)


def is_plain(value: Any, *, limit: int = 100_000) -> bool:
    """Whether ``value`` is plain data: text, numbers, booleans, None, dates and times, and lists, tuples
    and dicts (exactly those types) of plain data, with at most ``limit`` items in all.

    A template written by someone else (a registry prompt) may read only plain data from a notebook:
    never a module, a function or an object such as ``os.environ`` (a mapping, but not a dict).
    """
    budget = [limit]

    def walk(v: Any, depth: int) -> bool:
        budget[0] -= 1
        if budget[0] < 0 or depth > 100:
            return False
        if isinstance(v, _PLAIN_SCALARS):
            return True
        if type(v) in (list, tuple):
            return all(walk(x, depth + 1) for x in v)
        if type(v) is dict:
            return all(walk(k, depth + 1) and walk(x, depth + 1) for k, x in v.items())
        return False

    return walk(value, 0)


def escape(text: str) -> str:
    r"""Text that renders back to exactly ``text``: ``render(escape(text), {}) == text`` for any text.

    Every ``{{`` gets a backslash (``escape("{{x}}")`` is ``\{{x}}``), the backslashes right before it
    are doubled, and longer runs of ``{`` are escaped in pairs from their end (``{{{x}}}`` becomes
    ``{\{{x}}}``). The result is meant to stand alone; see the module docstring for text that goes right
    before a placeholder.
    """
    return _OPEN.sub(_escape_run, text)


def _escape_run(m: re.Match[str]) -> str:
    slashes, braces = m.group(1), m.group(2)
    pairs = "\\{{" * (len(braces) // 2)
    if len(braces) % 2:  # the backslashes and one brace stay literal as they are, then escaped pairs
        return slashes + "{" + pairs
    return slashes * 2 + pairs
