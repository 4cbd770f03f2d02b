"""Thin tornado handlers: validate, call the engine or the store, stream or return JSON.

Every handler is authenticated by Jupyter Server and authorized on resource ``nbplayground`` with
action ``read`` (history, providers, prompts), ``execute`` (run, compare) or ``write`` (save-version).
Blocking store reads run in a thread, runs on the engine's own loop: the server's loop never waits.

The API is a boundary: requests are bounded (body, depth, prompt size, mock output, offsets), per-call
endpoints and credentials are refused unless the server allows them, and a run's error reaches the
caller as its type, HTTP status and a fixed message (``errors.caller_message``), never a provider's text.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import re
from datetime import datetime
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.iostream import StreamClosedError

from nbplayground.core import errors as E
from nbplayground.server import sse
from nbplayground.server.extension import NBPlayground
from nbplayground.server.validation import (
    MAX_HISTORY_OFFSET,
    ConnectionOptionError,
    LimitError,
    RequestError,
    check_prompt_size,
    check_rendered_size,
    document,
    parse_body,
    refuse_connection_options,
    validate,
)

RESOURCE = "nbplayground"
API = "nbplayground/api/v1"


class NotFoundError(E.RunNotFoundError):
    """No run with the id in the URL (404); its ``field`` is the path parameter ``run_id``."""

    def __init__(self, message: str, *, field: str | None = "run_id") -> None:
        super().__init__(message, field=field)


#: The first segment of an engine error's ``field`` under the name the API's request body gives it.
_API_NAMES = {"params": "parameters", "prompt": "prompt_id", "text": "prompt_text", "models": "targets"}


def api_field(field: str | None) -> str | None:
    """An engine error's ``field`` as a path into the API request (``params.top_p`` -> ``parameters.top_p``,
    ``messages[2].role`` -> ``messages.2.role``); the API's own names pass through unchanged."""
    if not field:
        return None
    head = re.split(r"[.\[]", field, maxsplit=1)[0]
    path = re.sub(r"\[(\d+)\]", r".\1", _API_NAMES.get(head, head) + field[len(head) :])
    return re.sub(r"^targets\.(\d+)\.params\b", r"targets.\1.parameters", path)


def http_status(exc: BaseException) -> int:
    """The HTTP status of a refused request: the error class's ``http_status`` (one table, in
    ``core/errors.py``), 500 for anything else (a bug)."""
    return exc.http_status if isinstance(exc, E.NBPlaygroundError) else 500


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


class BaseHandler(APIHandler):
    """JSON errors in one shape (``{"error": {"message", "field", "type"}}``), never a traceback."""

    auth_resource = RESOURCE

    def fail(self, exc: Exception) -> None:
        """Answer with ``exc``'s HTTP status and the JSON error body (``field`` when one input is to blame).

        Our own 4xx messages are shown as raised; a provider's text (an error with its HTTP ``status``) and
        5xx errors get the fixed :func:`errors.caller_message`; anything not ours is a logged internal error.
        """
        status = http_status(exc)
        if status == 404 and self.request.method == "POST":
            status = 400  # a prompt_id in a request body that names nothing is a bad field, not a bad URL
        if not isinstance(exc, E.NBPlaygroundError):
            self.log.exception("nbplayground: unexpected error")
            message, field = f"Internal error ({type(exc).__name__}); see the server log.", None
        else:
            if status >= 500:
                self.log.warning("nbplayground: %s: %s", type(exc).__name__, exc)
            own = exc.status is None and status < 500
            message = str(exc) if own else E.caller_message(type(exc).__name__, exc.status, str(exc))
            field = api_field(exc.field)
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": {"message": message, "field": field, "type": type(exc).__name__}}))

    @property
    def nbp(self) -> NBPlayground:
        """The extension's settings (``c.NBPlayground.*``)."""
        cfg = self.settings.get("nbplayground_config")
        return cfg if isinstance(cfg, NBPlayground) else NBPlayground()

    def body(self, schema: str) -> dict[str, Any]:
        """The request's JSON, within the size and depth bounds and valid for ``schema``."""
        cfg = self.nbp
        data = parse_body(self.request.body or b"", cfg.max_body_bytes, cfg.max_json_depth)
        return validate(schema, data)

    async def in_thread(self, fn: Any, *args: Any, **kw: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args, **kw))


def _model(spec: dict[str, Any]) -> str:
    model, provider = spec["model"], spec.get("provider")
    return f"{provider}/{model}" if provider and not model.startswith(f"{provider}/") else model


def _prepare(body: dict[str, Any], cfg: NBPlayground, **kw: Any) -> list[Any]:
    """Check a run or compare request against the server's bounds and rules, then prepare its runs.

    Runs in a thread (a registry prompt is read from the store). Nothing is sent before it returns.
    """
    from nbplayground import api
    from nbplayground.core import providers
    from nbplayground.core.plan import plan

    if not cfg.allow_connection_options:
        refuse_connection_options(body)
    check_prompt_size(body, cfg.max_prompt_chars)
    spec = api.build_spec(body.get("prompt_text"), params=body.get("parameters") or {}, **kw,
                          **_prepare_kwargs(body))  # fmt: skip
    check_rendered_size(spec.template(), body.get("variables") or {}, cfg.max_prompt_chars)
    requests = plan(spec)
    targets = body.get("targets") or []
    for req in requests:
        given = (targets[req.target_index].get("parameters") or {}) if targets else {}
        prefix = f"targets.{req.target_index}.parameters" if targets else "parameters"
        from_prompt = [] if cfg.allow_connection_options else providers.connection_options(req.params)
        if from_prompt:  # only a registry prompt's saved parameters can still hold one here
            raise ConnectionOptionError(
                f"The prompt {body.get('prompt_id')!r} sets {from_prompt[0]!r}, which this server does not "
                "accept from API callers; save a version without it.",
                "prompt_id",
            )
        rm = req.resolved or providers.resolve(req.model)
        if rm.provider != "mock":
            continue
        merged = {**rm.default_params, **req.params}
        for key in ("max_tokens", "max_completion_tokens"):
            value = merged.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool) and value > cfg.max_mock_tokens:
                raise LimitError(
                    f"Parameter {key} is {value:,} for {req.model}; mock models make at most "
                    f"{cfg.max_mock_tokens:,} tokens here. Ask for fewer.",
                    f"{prefix}.{key}" if key in given or not targets else f"parameters.{key}",
                )
    return requests


def _prepare_kwargs(body: dict[str, Any]) -> dict[str, Any]:
    kw: dict[str, Any] = {"variables": body.get("variables") or {}, "surface": "server"}
    if "messages" in body:
        kw["messages"] = body["messages"]
    if "prompt_id" in body:
        kw["prompt"] = body["prompt_id"]
    if body.get("tools"):
        kw["tools"], kw["tool_mode"] = body["tools"], "manual"  # no functions travel over HTTP
    if body.get("response_format") is not None:
        kw["response_format"] = body["response_format"]
    return kw


class _Streaming(BaseHandler):
    """Shared by run and compare: follow a RunHandle, write SSE, stop the run if the client goes away."""

    handle: Any = None
    gone = False

    def on_connection_close(self) -> None:
        self.gone = True
        if self.handle is not None:
            self.handle.stop()  # the upstream request is cancelled; the run is stored as stopped

    async def start_stream(self) -> bool:
        """Send the event stream's headers now (a client sees the 200 before the first event)."""
        self.set_status(200)
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        return await self.send(b"")

    async def send(self, chunk: bytes) -> bool:
        if self.gone:
            return False
        try:
            self.write(chunk)
            await self.flush()
        except StreamClosedError:
            self.on_connection_close()
            return False
        return True

    async def follow(self, stream: bool = True) -> None:
        """Follow the run to its end; with ``stream``, write its events as SSE and ping on silence."""
        index, finished = 0, False
        while not finished and not self.gone:
            events, finished = await self.handle.apoll(index, sse.HEARTBEAT_S)
            index += len(events)
            if not stream:
                continue
            if not events and not finished:
                if not await self.send(sse.PING):
                    return
                continue
            if events and not await self.send(sse.frames(events)):
                return


class RunHandler(_Streaming):
    @web.authenticated
    @authorized(action="execute", resource=RESOURCE)
    async def post(self) -> None:
        from nbplayground import api

        try:
            body = self.body("RunRequest")
            requests = await self.in_thread(_prepare, body, self.nbp, model=_model(body))
        except Exception as exc:
            return self.fail(exc)
        self.handle = api.start(requests)
        if not body.get("stream"):
            await self.follow(stream=False)
            if not self.gone:
                self.finish(json.dumps(sse.result_dict(self.handle.result()), default=str))
            return
        if await self.start_stream():
            await self.follow()
        if not self.gone:
            self.finish()


class CompareHandler(_Streaming):
    @web.authenticated
    @authorized(action="execute", resource=RESOURCE)
    async def post(self) -> None:
        from nbplayground import api

        try:
            body = self.body("CompareRequest")
            models = [{"model": _model(t), "params": t.get("parameters") or {}} for t in body["targets"]]
            requests = await self.in_thread(_prepare, body, self.nbp, models=models)
        except Exception as exc:
            return self.fail(exc)
        self.handle = api.start(requests)
        if self.handle.group_id:
            self.set_header("X-NBPlayground-Group-Id", self.handle.group_id)
        if await self.start_stream():
            await self.follow()
        if not self.gone:
            self.finish()


class HistoryHandler(BaseHandler):
    @web.authenticated
    @authorized(action="read", resource=RESOURCE)
    async def get(self) -> None:
        from nbplayground.storage import history

        try:
            limit = self._int("limit", 50, 1, 500)
            offset = self._int("offset", 0, 0, MAX_HISTORY_OFFSET)
            status = self.get_query_argument("status", None)
            if status is not None and status not in ("ok", "error", "stopped"):
                raise RequestError(f"Query 'status' must be ok, error or stopped, got {status!r}.", "status")
            rows, total = await self.in_thread(history.page, limit, offset, self.get_query_argument("model", None),
                                               status)  # fmt: skip
        except Exception as exc:
            return self.fail(exc)
        items = []
        for row in rows:
            # a listing row: a subset of the Result's fields, named as in a Result (plus the prompt's start)
            item = {f.name: _jsonable(getattr(row, f.name)) for f in dataclasses.fields(row)}
            item["text"] = row.text or ""
            if row.error is not None:
                item["error"] = E.caller_message(row.error_type, row.error_status, row.error)
            items.append(item)
        self.finish(json.dumps({"items": items, "total": total, "limit": limit, "offset": offset}))

    def _int(self, name: str, default: int, low: int, high: int | None) -> int:
        raw = self.get_query_argument(name, None)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise RequestError(f"Query {name!r} must be an integer, got {raw!r}.", name) from None
        if value < low or (high is not None and value > high):
            bound = f"{low} to {high}" if high is not None else f">= {low}"
            raise RequestError(f"Query {name!r} must be {bound}, got {value}.", name)
        return value


class RunDetailHandler(BaseHandler):
    @web.authenticated
    @authorized(action="read", resource=RESOURCE)
    async def get(self, run_id: str) -> None:
        from nbplayground.storage import history

        try:
            run = await self.in_thread(history.get_run, run_id)
            if run is None:
                raise NotFoundError(f"No run with id {run_id!r} in history.")
        except Exception as exc:
            return self.fail(exc)
        self.finish(json.dumps(sse.result_dict(run), default=str))


class SaveVersionHandler(BaseHandler):
    @web.authenticated
    @authorized(action="write", resource=RESOURCE)
    async def post(self) -> None:
        from nbplayground.core.providers import connection_options
        from nbplayground.storage import registry

        try:
            body = self.body("SaveVersionRequest")
            options = connection_options(body.get("parameters"))
            if options:
                raise ConnectionOptionError(
                    f"Parameter {options[0]!r} is a per-call connection option; prompts never store one. "
                    "Save the prompt without it.",
                    f"parameters.{options[0]}",
                )
            saved = await self.in_thread(
                registry.save, f"{body['namespace']}/{body['slug']}", messages=body.get("messages"),
                content=body.get("content"), model=body.get("model"), params=body.get("parameters") or {},
                labels=body.get("labels") or [], description=body.get("description", ""),
            )  # fmt: skip
        except Exception as exc:
            return self.fail(exc)
        self.finish(json.dumps({"prompt_id": saved.name, "version": saved.version, "ref": saved.ref}))


class PromptsHandler(BaseHandler):
    @web.authenticated
    @authorized(action="read", resource=RESOURCE)
    async def get(self, namespace: str | None = None, slug: str | None = None) -> None:
        from nbplayground.storage import registry

        try:
            if namespace is None:
                listed = await self.in_thread(registry.list)
                items = [{"prompt_id": p.name, "latest_version": p.latest_version, "labels": p.labels_text,
                          "model": p.model} for p in listed]  # fmt: skip
                self.finish(json.dumps({"items": items}))
                return
            p = await self.in_thread(registry.get, f"{namespace}/{slug}")
        except Exception as exc:
            return self.fail(exc)
        self.finish(json.dumps({"prompt_id": p.name, "version": p.version, "messages": p.messages, "model": p.model,
                                "parameters": p.params, "labels": p.labels, "created_at": _jsonable(p.created_at)},
                               default=str))  # fmt: skip


class ProvidersHandler(BaseHandler):
    @web.authenticated
    @authorized(action="read", resource=RESOURCE)
    async def get(self) -> None:
        from nbplayground.core import catalog

        try:
            found = await self.in_thread(catalog.providers)
        except Exception as exc:
            return self.fail(exc)
        # key_env "none" for a provider without a key variable: what the API has always sent
        items = [{"provider": p.provider, "key_status": p.key_status, "key_env": p.key_env or "none",
                  "transport": p.transport, "models": list(p.models)} for p in found]  # fmt: skip
        self.finish(json.dumps({"items": items}))


class ExperimentsHandler(BaseHandler):
    @web.authenticated
    @authorized(action="read", resource=RESOURCE)
    async def get(self) -> None:
        from nbplayground.storage import experiments

        try:
            listed = await self.in_thread(experiments.list_experiments)
        except Exception as exc:
            return self.fail(exc)
        items = [{**{f.name: _jsonable(getattr(e, f.name)) for f in dataclasses.fields(e)}, "variants": list(e.variants)}
                 for e in listed]  # fmt: skip
        self.finish(json.dumps({"items": items}))


class ExperimentDetailHandler(BaseHandler):
    @web.authenticated
    @authorized(action="read", resource=RESOURCE)
    async def get(self, experiment: str) -> None:
        try:
            limit = _query_int(self, "limit", 100, 1, 500)
            offset = _query_int(self, "offset", 0, 0, MAX_HISTORY_OFFSET)
            chosen = self.get_query_arguments("variant")
            detail = await self.in_thread(experiment_detail, experiment, chosen, limit, offset)
        except Exception as exc:
            return self.fail(exc)
        self.finish(json.dumps(detail))


def _query_int(handler: BaseHandler, name: str, default: int, low: int, high: int) -> int:
    raw = handler.get_query_argument(name, None)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise RequestError(f"Query {name!r} must be an integer, got {raw!r}.", name) from None
    if not low <= value <= high:
        raise RequestError(f"Query {name!r} must be {low} to {high}, got {value}.", name)
    return value


def experiment_detail(name_or_id: str, chosen: list[str], limit: int, offset: int) -> dict[str, Any]:
    """An experiment as ``GET experiments/{experiment}`` answers: its variants (every version), the summary of
    its latest versions and one page of cells (of the ``chosen`` variants, ``name`` or ``name@version``)."""
    from nbplayground.storage import experiment_summary, experiments

    exp = experiments.get_experiment(name_or_id)
    if exp is None:
        raise E.ExperimentNotFoundError(f"No experiment named {name_or_id!r}; GET experiments lists them.",
                                        field="experiment")  # fmt: skip
    found = experiments.variants(exp.id)
    latest = experiments.latest(found)
    by_ref = {v.name: v for v in latest} | {f"{v.name}@{v.version}": v for v in found}
    unknown = [c for c in chosen if c not in by_ref]
    if unknown:
        raise RequestError(f"Experiment {exp.name!r} has no variant {unknown[0]!r}; its variants: "
                           f"{', '.join(v.name for v in latest) or 'none'} (name or name@version).", "variant")  # fmt: skip
    ids = list(dict.fromkeys(by_ref[c].id for c in chosen)) or [v.id for v in latest]
    cells, total = experiments.cells(exp.id, ids, limit, offset)
    judges = {e.get("name") for e in exp.config.get("evaluators") or [] if isinstance(e, dict) and e.get("kind") == "judge"}
    latest_ids = {v.id for v in latest}
    return {
        **{f.name: _jsonable(getattr(exp, f.name)) for f in dataclasses.fields(exp)},
        "variants": [{**{f.name: _jsonable(getattr(v, f.name)) for f in dataclasses.fields(v)},
                      "latest": v.id in latest_ids} for v in found],
        "summary": [s.to_dict() for s in experiment_summary.summary(exp.id)],
        "cells": {"items": [_cell(c, judges) for c in cells], "total": total, "limit": limit, "offset": offset},
    }  # fmt: skip


def _cell(cell: Any, judges: set[Any]) -> dict[str, Any]:
    """A cell as the API shows it: a run's error (and a judge's) as a fixed message, never a provider's text."""
    out = {f.name: _jsonable(getattr(cell, f.name)) for f in dataclasses.fields(cell)}
    if cell.error is not None:
        out["error"] = E.caller_message(cell.error_type, cell.error_status, cell.error)
    out["scores"] = {name: {**score, "error": _score_error(score["error"], name in judges)}
                     for name, score in cell.scores.items()}  # fmt: skip
    return out


def _score_error(error: str | None, judge: bool) -> str | None:
    """A judge's error may quote its provider: the caller gets its type and a fixed sentence (a code
    evaluator's error is the evaluator's own text, scrubbed of secrets when stored)."""
    if error is None or not judge:
        return error
    kind = error.split(":", 1)[0].strip()
    kind = kind if kind.isidentifier() else "JudgeError"
    return f"{kind}: the judge failed on this answer; the full error is kept in the run history on the server."


class OpenAPIHandler(BaseHandler):
    @web.authenticated
    @authorized(action="read", resource=RESOURCE)
    async def get(self) -> None:
        self.finish(json.dumps(document()))


#: (route under the base URL, handler); the OpenAPI document lists the same paths.
ROUTES: list[tuple[str, type[BaseHandler]]] = [
    (f"{API}/playground/run", RunHandler),
    (f"{API}/playground/compare", CompareHandler),
    (f"{API}/playground/history", HistoryHandler),
    (f"{API}/playground/history/(?P<run_id>[^/]+)", RunDetailHandler),
    (f"{API}/playground/save-version", SaveVersionHandler),
    (f"{API}/playground/providers", ProvidersHandler),
    (f"{API}/prompts", PromptsHandler),
    (f"{API}/prompts/(?P<namespace>[^/]+)/(?P<slug>[^/]+)", PromptsHandler),
    (f"{API}/experiments", ExperimentsHandler),
    (f"{API}/experiments/(?P<experiment>[^/]+)", ExperimentDetailHandler),
    (f"{API}/openapi.json", OpenAPIHandler),
]


def setup_handlers(web_app: Any, config: NBPlayground | None = None) -> None:
    """Register the routes on a Jupyter Server web application, with the extension's settings."""
    web_app.settings["nbplayground_config"] = config if config is not None else NBPlayground()
    base = web_app.settings["base_url"]
    web_app.add_handlers(".*$", [(url_path_join(base, route), handler) for route, handler in ROUTES])
