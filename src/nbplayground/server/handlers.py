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
import json
import math
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


class NotFoundError(E.NBPlaygroundError, LookupError):
    """No such run or prompt (404)."""


def _field_of(exc: Exception) -> str | None:
    """Which request field an engine error is about (validation errors name it themselves)."""
    field = getattr(exc, "field", None)
    if field:
        return str(field)
    if isinstance(exc, E.MissingVariablesError):
        return "variables"
    if isinstance(exc, E.UnknownModelError | E.MissingKeyError):
        return "model"
    if isinstance(exc, E.PromptNotFoundError):
        return "prompt_id"
    if isinstance(exc, E.BadParameterError) and str(exc).startswith("Parameter "):
        return "parameters." + str(exc).split()[1]
    return None


def _status_of(exc: Exception) -> int:
    if isinstance(exc, E.PromptNotFoundError | LookupError) and not isinstance(exc, E.MissingVariablesError):
        return 404
    if isinstance(exc, E.NBPlaygroundError):
        return 400
    return 500


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
        status = _status_of(exc)
        if status == 404 and self.request.method == "POST":
            status = 400  # a prompt_id in a request body that names nothing is a bad field, not a bad URL
        message = str(exc) if status != 500 else f"Internal error ({type(exc).__name__}); see the server log."
        if status == 500:
            self.log.exception("nbplayground: unexpected error")
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": {"message": message, "field": _field_of(exc) if status != 500 else None,
                                          "type": type(exc).__name__}}))  # fmt: skip

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

    if not cfg.allow_connection_options:
        refuse_connection_options(body)
    check_prompt_size(body, cfg.max_prompt_chars)
    template, _ = api.build_messages(body.get("prompt_text"), system=None, messages=body.get("messages"),
                                     prompt=body.get("prompt_id"))  # fmt: skip
    check_rendered_size(template, body.get("variables") or {}, cfg.max_prompt_chars)
    requests = api.prepare(body.get("prompt_text"), params=body.get("parameters") or {}, **kw,
                           **_prepare_kwargs(body))  # fmt: skip
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

    def start_stream(self) -> None:
        self.set_status(200)
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")

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

    async def follow(self, on_event: Any) -> None:
        """Write each engine event through ``on_event`` (which returns SSE bytes); ping on silence."""
        index, finished = 0, False
        while not finished and not self.gone:
            events, finished = await self.handle.apoll(index, sse.HEARTBEAT_S)
            index += len(events)
            if not events and not finished:
                if not await self.send(sse.PING):
                    return
                continue
            out = b"".join(filter(None, (on_event(ev) for ev in events)))
            if out and not await self.send(out):
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
            await self.follow(lambda ev: None)
            if self.gone:
                return
            result = self.handle.result()
            self.finish(json.dumps(sse.summary(result), default=str))
            return
        self.start_stream()
        req = requests[0]
        if not await self.send(sse.frame({"id": req.run_id, "model": req.model}, "start")):
            return

        def on_event(ev: Any) -> bytes | None:
            if ev.type == "delta":
                return sse.frame({"content": ev.text})
            if ev.type in ("tool_call", "tool_result") and ev.tool_call is not None:
                return sse.frame({"tool_call": ev.tool_call.to_dict()}, ev.type)
            if ev.type == "start" and ev.text.startswith("retry"):
                return sse.frame({"retry": ev.text}, "retry")
            if ev.type == "done" and ev.result is not None:
                r = ev.result
                if r.status == "error":
                    return sse.frame({**sse.summary(r), "message": sse.error_message(r)}, "error")
                return sse.frame(sse.summary(r), "done")
            return None

        await self.follow(on_event)
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
        self.start_stream()
        targets = [{"index": r.target_index, "id": r.run_id, "model": r.model} for r in requests]
        if not await self.send(sse.frame({"group_id": self.handle.group_id, "targets": targets}, "start")):
            return

        def on_event(ev: Any) -> bytes | None:
            n = ev.target
            if ev.type == "delta":
                return sse.frame({"index": n, "content": ev.text}, f"chunk:{n}")
            if ev.type == "done" and ev.result is not None:
                r = ev.result
                if r.status == "error":
                    return sse.frame({"index": n, "id": r.id, "message": sse.error_message(r),
                                      "error_type": r.error_type, "error_status": r.error_status,
                                      "stats": sse.stats(r)}, f"error:{n}")  # fmt: skip
                return sse.frame({"index": n, "done": True, **sse.summary(r)}, f"done:{n}")
            return None

        await self.follow(on_event)
        if not self.gone:
            await self.send(sse.frame({"group_id": self.handle.group_id}, "end"))
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
        items = [
            {**{k: _jsonable(v) for k, v in row.items()}, "response": row.get("text") or ""} for row in rows
        ]
        for item in items:
            item.pop("text", None)
            if item.get("error") is not None:
                item["error"] = E.caller_message(
                    item.get("error_type"), item.get("error_status"), item["error"]
                )
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
        detail = {**run.to_dict(), "stats": sse.stats(run)}
        detail.pop("error_detail", None)  # a provider's bytes: kept in the history, never sent to API callers
        if run.error is not None:
            detail["error"] = sse.error_message(run)
        self.finish(json.dumps(detail, default=str))


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
                df = await self.in_thread(registry.list)
                items = [{"prompt_id": r["name"], "latest_version": int(r["latest_version"]), "labels": r["labels"],
                          "model": r["model"] if isinstance(r["model"], str) else None}
                         for r in df.to_dict("records")]  # fmt: skip
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
        from nbplayground import api

        try:
            df = await self.in_thread(api.providers)
        except Exception as exc:
            return self.fail(exc)
        items = [{"provider": r["provider"], "key_status": r["key_status"],
                  "key_env": r["key_env"] if isinstance(r["key_env"], str) else None,
                  "transport": r["transport"], "models": list(r["models"])} for r in df.to_dict("records")]  # fmt: skip
        self.finish(json.dumps({"items": items}))


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
    (f"{API}/openapi.json", OpenAPIHandler),
]


def setup_handlers(web_app: Any, config: NBPlayground | None = None) -> None:
    """Register the routes on a Jupyter Server web application, with the extension's settings."""
    web_app.settings["nbplayground_config"] = config if config is not None else NBPlayground()
    base = web_app.settings["base_url"]
    web_app.add_handlers(".*$", [(url_path_join(base, route), handler) for route, handler in ROUTES])
