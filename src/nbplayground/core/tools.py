"""Tools: Python functions become OpenAI-style tool schemas; tool calls are executed safely."""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from nbplayground.core.errors import BadParameterError
from nbplayground.core.types import ToolCall

_ARG_LINE = re.compile(r"^\s*(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.+)$")


def _doc_parts(fn: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    """Summary and per-argument descriptions from a Google/Sphinx/NumPy-ish docstring."""
    doc = inspect.getdoc(fn) or ""
    summary_lines: list[str] = []
    args: dict[str, str] = {}
    section = "summary"
    current: str | None = None
    for raw in doc.splitlines():
        line = raw.rstrip()
        lowered = line.strip().lower()
        if lowered in ("args:", "arguments:", "parameters:", "params:"):
            section, current = "args", None
            continue
        if lowered in ("returns:", "return:", "raises:", "yields:", "examples:", "example:", "notes:"):
            section, current = "other", None
            continue
        if lowered.startswith("----"):
            continue
        sphinx = re.match(r"^\s*:param\s+(\w+)\s*:\s*(.*)$", line)
        if sphinx:
            args[sphinx.group(1)] = sphinx.group(2).strip()
            continue
        if section == "summary":
            if line.strip():
                summary_lines.append(line.strip())
            elif summary_lines:
                section = "body"
        elif section == "args":
            m = _ARG_LINE.match(line)
            if m and (len(line) - len(line.lstrip())) <= 4:
                current = m.group(1).lstrip("*")
                args[current] = m.group(3).strip()
            elif current and line.strip():
                args[current] += " " + line.strip()
    return " ".join(summary_lines), args


def function_schema(fn: Callable[..., Any]) -> dict[str, Any]:
    """An OpenAI tool schema for a Python function, from its signature, type hints and docstring."""
    from pydantic import create_model

    name = getattr(fn, "__name__", None)
    if not name or name == "<lambda>":
        raise BadParameterError("Tools must be named functions (or JSON tool schemas); got a lambda.", field="tools")
    summary, arg_docs = _doc_parts(fn)
    sig = inspect.signature(fn)
    try:
        hints = inspect.get_annotations(fn, eval_str=True)
    except Exception:
        hints = getattr(fn, "__annotations__", {})
    fields: dict[str, Any] = {}
    for pname, param in sig.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(pname, Any)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[pname] = (annotation, default)
    model = create_model(f"{name}_args", **fields)
    schema = model.model_json_schema()
    schema.pop("title", None)
    for pname, prop in schema.get("properties", {}).items():
        prop.pop("title", None)
        if pname in arg_docs:
            prop["description"] = arg_docs[pname]
    schema.setdefault("properties", {})
    schema["type"] = "object"
    return {
        "type": "function",
        "function": {"name": name, "description": summary or name.replace("_", " "), "parameters": schema},
    }


def normalize_tools(
    tools: Iterable[Any] | None,
) -> tuple[list[dict[str, Any]] | None, dict[str, Callable[..., Any]]]:
    """Accept functions, ``{"type": "function", "function": {...}}`` dicts or bare function schemas."""
    if not tools:
        return None, {}
    schemas: list[dict[str, Any]] = []
    functions: dict[str, Callable[..., Any]] = {}
    for i, tool in enumerate(tools):
        if callable(tool) and not isinstance(tool, dict):
            schema = function_schema(tool)
            functions[schema["function"]["name"]] = tool
        elif isinstance(tool, dict):
            schema = tool if tool.get("type") == "function" else {"type": "function", "function": tool}
            if not schema.get("function", {}).get("name"):
                raise BadParameterError(
                    f"A tool schema needs function.name: {json.dumps(tool)[:200]}", field=f"tools[{i}].function.name"
                )
        else:
            raise BadParameterError(
                f"Tools must be functions or JSON schemas, got {type(tool).__name__}.", field=f"tools[{i}]"
            )
        schemas.append(schema)
    names = [s["function"]["name"] for s in schemas]
    if len(set(names)) != len(names):
        raise BadParameterError(f"Tool names must be unique: {names}", field="tools")
    return schemas, functions


def _stringify(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


async def execute(call: ToolCall, functions: dict[str, Callable[..., Any]]) -> str:
    """Run one tool call; an exception becomes an error result for the model, never a crash."""
    fn = functions.get(call.name)
    if fn is None:
        call.error = f"unknown tool {call.name!r}; available: {', '.join(functions) or 'none'}"
        return f"Error: {call.error}"
    try:
        args = call.parsed_arguments()
    except ValueError as exc:
        call.error = f"invalid arguments JSON: {exc}"
        return f"Error: {call.error}"
    try:
        if inspect.iscoroutinefunction(fn):
            value = await fn(**args)
        else:
            value = await asyncio.to_thread(fn, **args)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        call.error = f"{type(exc).__name__}: {exc}"
        return f"Error: {call.error}"
    call.result = value
    return _stringify(value)
