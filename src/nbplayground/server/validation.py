"""Request validation against the OpenAPI document that ships with the extension (one source of truth),
and the API's bounds: body size, JSON depth, prompt size, mock output size, history offset.

The defaults below are the server settings' defaults (``c.NBPlayground.*``, see ``extension.py``);
:data:`MAX_HISTORY_OFFSET` is fixed (the store's offsets are 64-bit) and stated in the OpenAPI document.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from nbplayground.core.errors import BadParameterError, TemplateError

OPENAPI = Path(__file__).with_name("openapi.json")

#: Largest request body, in bytes.
MAX_BODY_BYTES = 1_048_576
#: Deepest nesting of objects and arrays in a request body (``{}`` is depth 1).
MAX_JSON_DEPTH = 32
#: Most characters of prompt text, message contents and variables together, and of the rendered prompt.
MAX_PROMPT_CHARS = 200_000
#: Largest ``max_tokens`` / ``max_completion_tokens`` for ``mock/`` models (they make text locally).
MAX_MOCK_TOKENS = 4096
#: Largest history ``offset``.
MAX_HISTORY_OFFSET = 10**9


@functools.cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the routes."""
    return cast("dict[str, Any]", json.loads(OPENAPI.read_text(encoding="utf-8")))


class RequestError(BadParameterError):
    """A request body or query that does not match the API; ``field`` names the culprit."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message, field=field)


class LimitError(RequestError):
    """A request over one of the API's bounds; the message states the limit."""


class ConnectionOptionError(RequestError):
    """A per-call endpoint, header or credential the server does not accept from API callers."""


@functools.cache
def _validator(schema_name: str) -> Any:
    from jsonschema import Draft202012Validator

    doc = document()
    schema = {**doc["components"]["schemas"][schema_name], "components": doc["components"]}
    return Draft202012Validator(schema)


def _path(error: Any) -> str:
    return ".".join(str(p) for p in error.absolute_path)


def _describe(error: Any) -> tuple[str, str | None]:
    field = _path(error) or None
    v = error.validator
    if v == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        name = ".".join(filter(None, [field, extra[0] if extra else ""]))
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        return f"Unknown field {name!r}. Allowed here: {allowed}.", name
    if v == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        name = ".".join(filter(None, [field, missing]))
        return f"Missing field {name!r}.", name
    if v == "oneOf":
        options = [next(iter(s.get("required", ["?"]))) for s in error.schema["oneOf"]]
        given = [o for o in options if isinstance(error.instance, dict) and o in error.instance]
        what = "none" if not given else " and ".join(given)
        return f"Give exactly one of {', '.join(options)} (got {what}).", (
            given[-1] if len(given) > 1 else options[0]
        )
    if v == "type":
        return f"Field {field!r} must be {error.validator_value}, got {type(error.instance).__name__}.", field
    if v in ("minItems", "maxItems") and field == "targets":
        return f"Compare 2 to 4 targets, got {len(error.instance)}.", field
    if v in ("maxLength", "maximum", "maxItems"):  # state the limit, never echo a huge value back
        size = error.instance if v == "maximum" else len(error.instance)
        return f"Field {field!r} is {size:,}; the limit is {error.validator_value:,}.", field
    message = error.message if len(error.message) <= 200 else error.message[:200] + "..."
    return f"Field {field!r}: {message}.", field


def validate(schema_name: str, body: Any) -> dict[str, Any]:
    """Check ``body`` against a request schema; raise :class:`RequestError` naming the first bad field."""
    if not isinstance(body, dict):
        raise RequestError("The request body must be a JSON object.")
    errors = sorted(
        _validator(schema_name).iter_errors(body),
        key=lambda e: (len(e.absolute_path), e.validator != "oneOf"),
    )
    if errors:
        # Prefer the most specific problem: a named unknown/missing field over the oneOf summary.
        specific = [e for e in errors if e.validator != "oneOf"]
        message, field = _describe((specific or errors)[0])
        raise RequestError(message, field)
    return body


# ---------------------------------------------------------------------------------------------------
# Bounds
# ---------------------------------------------------------------------------------------------------
def parse_body(raw: bytes, max_bytes: int = MAX_BODY_BYTES, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The JSON of a request body, refused (``LimitError``) when too large or too deeply nested."""
    if len(raw) > max_bytes:
        raise LimitError(
            f"The request body is {len(raw):,} bytes; the limit is {max_bytes:,} bytes. Send less text "
            "(or ask the server's administrator to raise c.NBPlayground.max_body_bytes)."
        )
    try:
        data = json.loads(raw or b"null")
    except RecursionError:  # the parser recurses per level: only absurd nesting gets here
        raise _too_deep(max_depth, None) from None
    except ValueError as exc:
        raise RequestError(f"The request body is not valid JSON: {exc}") from None
    check_depth(data, max_depth)
    return data


def _too_deep(limit: int, field: str | None) -> LimitError:
    return LimitError(
        f"The request body nests objects and arrays more than {limit} levels deep; flatten it.", field
    )


def check_depth(data: Any, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise ``LimitError`` (naming the top-level field) when ``data`` nests deeper than ``limit``.

    Iterative, so that any depth is measured without recursion.
    """
    stack: list[tuple[Any, int, str | None]] = [(data, 1, None)]
    while stack:
        value, depth, top = stack.pop()
        if isinstance(value, dict):
            children: Any = value.items()
        elif isinstance(value, list):
            children = enumerate(value)
        else:
            continue
        if depth > limit:
            raise _too_deep(limit, top)
        stack.extend((child, depth + 1, top if top is not None else str(key)) for key, child in children)


def _strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value, keys included (iterative)."""
    stack: list[Any] = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            yield v
        elif isinstance(v, dict):
            yield from (k for k in v if isinstance(k, str))
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)


def check_prompt_size(body: dict[str, Any], limit: int = MAX_PROMPT_CHARS) -> None:
    """Refuse a request whose prompt text, message contents and variables exceed ``limit`` characters."""
    sizes = {
        name: sum(map(len, _strings(body.get(name)))) for name in ("prompt_text", "messages", "variables")
    }
    total = sum(sizes.values())
    if total > limit:
        field = max(sizes, key=lambda k: sizes[k])
        raise LimitError(
            f"The prompt is {total:,} characters (prompt_text, messages and variables together); the limit is "
            f"{limit:,}. Send less text.",
            field,
        )


def _rendered_len(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict | list):
        try:
            return len(json.dumps(value, ensure_ascii=False, default=str))
        except (TypeError, ValueError, RecursionError):
            return len(str(value))
    return len(str(value))


def check_rendered_size(
    templates: list[dict[str, Any]], variables: dict[str, Any], limit: int = MAX_PROMPT_CHARS
) -> None:
    """Refuse templates that would render to more than ``limit`` characters, before rendering them.

    A short template can repeat a long variable many times (``{{x}}{{x}}...``): the bound counts every
    placeholder as often as it is written, so nothing large is ever built.
    """
    from nbplayground.core import templating

    total, seen = 0, dict[str, int]()
    for message in templates:
        content = message.get("content")
        if isinstance(content, list):  # OpenAI parts: only text parts are templates
            parts = [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
        else:
            parts = [content] if isinstance(content, str) else []
        for text in parts:
            total += len(text)
            for path in templating.placeholders(text):
                if path not in seen:
                    try:
                        seen[path] = _rendered_len(templating.lookup(variables, path))
                    except (KeyError, TemplateError):
                        seen[path] = 0  # missing: reported by the run's own check
                uses = len(re.findall(r"\{\{\s*" + re.escape(path) + r"\s*\}\}", text))
                total += uses * seen[path]
    if total > limit:
        raise LimitError(
            f"The prompt would render to {total:,} characters; the limit is {limit:,}. Use each long variable "
            "fewer times, or send less text.",
            "variables",
        )


def refuse_connection_options(body: dict[str, Any]) -> None:
    """Raise ``ConnectionOptionError`` naming the first per-call endpoint, header or credential in
    ``parameters`` or ``targets.N.parameters``."""
    from nbplayground.core.providers import connection_options

    spots = [("parameters", body.get("parameters"))]
    spots += [
        (f"targets.{i}.parameters", t.get("parameters")) for i, t in enumerate(body.get("targets") or [])
    ]
    for prefix, params in spots:
        names = connection_options(params if isinstance(params, dict) else None)
        if names:
            raise ConnectionOptionError(
                f"Parameter {names[0]!r} sets where a request goes or which credentials it carries, and this "
                "server does not accept that from API callers. Use a model configured on the server, or ask "
                "its administrator to set c.NBPlayground.allow_connection_options = True.",
                f"{prefix}.{names[0]}",
            )
