"""Request validation against the OpenAPI document that ships with the extension (one source of truth)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from nbplayground.core.errors import BadParameterError

OPENAPI = Path(__file__).with_name("openapi.json")


@functools.cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the routes."""
    return json.loads(OPENAPI.read_text(encoding="utf-8"))


class RequestError(BadParameterError):
    """A request body or query that does not match the API; ``field`` names the culprit."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


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
    return f"Field {field!r}: {error.message}.", field


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
