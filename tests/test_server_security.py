"""The REST API as a boundary, tried as an attacker would through a real Jupyter server.

- Per-call endpoints, headers and credentials are refused (400 naming the field) unless the server allows
  them; even then a key the server holds never reaches an address the caller chose. A local server posing
  as the attacker records every request it gets.
- A provider's error body (a 502 page with a password in it) never reaches a caller (run, SSE, compare,
  history) nor the server's log: callers get the error's type, HTTP status and a fixed message.
- Over-limit inputs (body size, JSON depth, prompt size, mock output, history offset) are 400s that state
  the limit, never 500s.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

import nbplayground as nbp
from nbplayground.core import errors as E
from nbplayground.core import providers
from nbplayground.server.validation import MAX_BODY_BYTES, MAX_JSON_DEPTH, MAX_MOCK_TOKENS, MAX_PROMPT_CHARS
from support.oai_server import OpenAIServer
from support.servers import JupyterServer, start_jupyter
from support.sse_client import sse_events

API = "/nbplayground/api/v1"
#: Keys the Jupyter server holds (env vars): none may ever reach the attacker.
SERVER_KEYS = {
    "OPENAI_API_KEY": "sk-server-openai-PLANTED-0123456789",
    "ANTHROPIC_API_KEY": "sk-ant-server-PLANTED-0123456789",
    "CORP_KEY": "corp-configured-PLANTED-0123456789",
}
#: What an internal service's error page leaks; no API response and no log line may contain it.
UPSTREAM_SECRET = "password=hunter2-SECRET"
ERROR_PAGE = (
    "<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1>"
    f"<pre>upstream db-internal-7:5432 refused; dsn=postgres://svc:{UPSTREAM_SECRET}@db-internal-7/prod</pre>"
    "</body></html>"
)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def raw(self) -> str:
        return (
            f"{self.method} {self.path}\n{json.dumps(self.headers)}\n{self.body.decode('utf-8', 'replace')}"
        )


@dataclass
class Recorder:
    """An HTTP server on 127.0.0.1 that records every request. Its answer depends on the path's first part:
    ``/fail`` a 502 HTML page holding :data:`UPSTREAM_SECRET`, ``/reject`` a 400, ``/nomodel`` a 404 about
    the model, ``/midstream`` a stream that breaks with an error chunk (all quoting the secret); anything
    else a short streamed chat answer."""

    requests: list[Seen] = field(default_factory=list)

    def __enter__(self) -> Recorder:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                recorder.requests.append(Seen("POST", self.path, headers, body))
                first = self.path.strip("/").split("/", 1)[0]
                if first == "fail":
                    self.answer(502, ERROR_PAGE.encode(), "text/html")
                elif first == "reject":
                    self.answer(
                        400, json.dumps({"error": {"message": f"bad input; {UPSTREAM_SECRET}"}}).encode()
                    )
                elif first == "nomodel":
                    msg = f"The model does not exist ({UPSTREAM_SECRET})"
                    self.answer(404, json.dumps({"error": {"message": msg}}).encode())
                elif first == "midstream":
                    chunk = {"error": {"message": f"overloaded; {UPSTREAM_SECRET}"}}
                    self.answer(200, f"data: {json.dumps(chunk)}\n\n".encode(), "text/event-stream")
                elif self.path.endswith("/chat/completions"):
                    chunks = [
                        {"choices": [{"index": 0, "delta": {"content": "owned"}, "finish_reason": None}]},
                        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                    ]
                    sse = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
                    self.answer(200, sse.encode(), "text/event-stream")
                else:  # another wire format (Anthropic's /v1/messages): refuse, without a retry
                    self.answer(400, json.dumps({"error": {"message": "not here"}}).encode())

            def answer(self, status: int, payload: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, prefix: str = "attack") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{prefix}/v1"

    def leaked(self) -> list[str]:
        """The server keys found anywhere in the recorded requests."""
        return [name for name, key in SERVER_KEYS.items() for seen in self.requests if key in seen.raw()]


@pytest.fixture(scope="module")
def attacker():
    with Recorder() as rec:
        yield rec


@pytest.fixture(scope="module")
def internal():
    """An internal service behind configured models: it fails, and its error pages hold a secret."""
    with Recorder() as rec:
        yield rec


@pytest.fixture(scope="module")
def legit():
    """The endpoint a configured model with a key really points at."""
    with OpenAIServer(tokens=3) as srv:
        yield srv


def _start(
    base: Path, internal: Recorder, legit: OpenAIServer, args: list[str] | None = None
) -> JupyterServer:
    (base / "home").mkdir(parents=True, mode=0o700)
    (base / "home" / "config.toml").touch(mode=0o600)
    (base / "home" / "config.toml").write_text(
        f"""
[models.corp]
model = "openai/gpt-4o-mini"
api_base = "{legit.url}"
api_key_env = "CORP_KEY"

[models.internal]
model = "openai/internal-model"
api_base = "{internal.url("fail")}"
api_key_env = "CORP_KEY"

[models.internal-claude]
model = "anthropic/claude-haiku-4-5"
api_base = "{internal.url("fail")}"
api_key_env = "CORP_KEY"

[models.reject]
model = "openai/internal-model"
api_base = "{internal.url("reject")}"

[models.nomodel]
model = "openai/internal-model"
api_base = "{internal.url("nomodel")}"

[models.midstream]
model = "openai/internal-model"
api_base = "{internal.url("midstream")}"

[aliases]
big = "mock/lorem"
"""
    )
    return start_jupyter(base, args=args, env=dict(SERVER_KEYS))


@pytest.fixture(scope="module")
def closed(tmp_path_factory, internal, legit):
    """A server with the default settings: connection options refused."""
    server = _start(tmp_path_factory.mktemp("closed"), internal, legit)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def opened(tmp_path_factory, internal, legit):
    """A server whose administrator allows per-call connection options."""
    server = _start(
        tmp_path_factory.mktemp("opened"), internal, legit, ["--NBPlayground.allow_connection_options=True"]
    )
    yield server
    server.stop()


def _client(server: JupyterServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=server.headers, timeout=120)


def _stream(client: httpx.Client, path: str, body: dict) -> tuple[str, list[tuple[str, object]]]:
    with client.stream("POST", API + path, json=body) as r:
        assert r.status_code == 200, r.read()
        text = "".join(r.iter_text())
    events = sse_events(httpx.Response(200, content=text.encode()))
    return text, events


# ---------------------------------------------------------------------------------------------------
# Connection options
# ---------------------------------------------------------------------------------------------------
#: Every listed option, and credentials or endpoints recognised by their shape.
OPTIONS = [
    *sorted(providers.CONNECTION_OPTIONS),
    "my_provider_api_key", "session_token", "watsonx_url", "aws_external_id", "gcp_credentials", "openai_key",
]  # fmt: skip


def _value(name: str, attacker: Recorder) -> object:
    if "header" in name:
        return {"Authorization": "Bearer x", "Host": "evil.example"}
    return attacker.url() if "base" in name or "url" in name or "endpoint" in name else "attacker-value"


def test_connection_option_shapes_never_catch_sampling_parameters():
    assert providers.connection_options({k: 1 for k in providers.KNOWN_PARAMS}) == []
    assert (
        providers.connection_options({"max_tokens": 5, "max_completion_tokens": 5, "budget_tokens": 9}) == []
    )
    assert providers.connection_options({"temperature": 1, "api_base": "u", "aws_region_name": "x"}) == [
        "api_base", "aws_region_name"]  # fmt: skip
    assert set(providers.connection_options(dict.fromkeys(OPTIONS, 1))) == set(OPTIONS)


def test_each_connection_option_is_refused_with_its_field_and_nothing_is_sent(closed, attacker):
    before = len(attacker.requests)
    with _client(closed) as c:
        runs = c.get(f"{API}/playground/history").json()["total"]
        for name in OPTIONS:
            params = {name: _value(name, attacker)}
            cases = [
                ("run", {"model": "openai/gpt-4o-mini", "prompt_text": "hi", "parameters": params},
                 f"parameters.{name}"),
                ("run", {"model": "mock/echo", "prompt_text": "hi", "stream": True,
                         "parameters": {"temperature": 0.5, **params}}, f"parameters.{name}"),
                ("compare", {"prompt_text": "hi", "parameters": params,
                             "targets": [{"model": "mock/echo"}, {"model": "corp"}]}, f"parameters.{name}"),
                ("compare", {"prompt_text": "hi", "targets": [{"model": "mock/echo"},
                             {"model": "openai/gpt-4o-mini", "parameters": params}]}, f"targets.1.parameters.{name}"),
            ]  # fmt: skip
            for route, body, where in cases:
                r = c.post(f"{API}/playground/{route}", json=body)
                assert r.status_code == 400, (name, route, r.text)
                err = r.json()["error"]
                assert err["field"] == where and err["type"] == "ConnectionOptionError", (name, err)
                assert "allow_connection_options" in err["message"]
            r = c.post(f"{API}/playground/save-version", json={"namespace": "evil", "slug": "p", "content": "x",
                                                               "parameters": params})  # fmt: skip
            assert r.status_code == 400 and r.json()["error"]["field"] == f"parameters.{name}", r.text
        assert c.get(f"{API}/playground/history").json()["total"] == runs  # nothing ran
        assert all(
            i["prompt_id"] != "evil/p" for i in c.get(f"{API}/prompts").json()["items"]
        )  # nor was saved
    assert len(attacker.requests) == before, "a refused request still reached the attacker"


def test_a_stored_prompt_cannot_smuggle_an_endpoint(closed, attacker, monkeypatch):
    # Saving strips connection options; a row written another way (an older version, by hand) is refused.
    monkeypatch.setenv("NBPLAYGROUND_HOME", str(closed.home))
    from nbplayground.storage import db, registry

    registry.save("evil/smuggle", content="hi {{x}}")
    with db.connect(write=True) as con:
        con.execute("UPDATE prompts SET params = ? WHERE name = 'evil/smuggle'",
                    [json.dumps({"api_base": attacker.url()})])  # fmt: skip
    before = len(attacker.requests)
    with _client(closed) as c:
        r = c.post(f"{API}/playground/run", json={"model": "openai/gpt-4o-mini", "prompt_id": "evil/smuggle",
                                                  "variables": {"x": "there"}})  # fmt: skip
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert (
        err["field"] == "prompt_id"
        and err["type"] == "ConnectionOptionError"
        and "api_base" in err["message"]
    )
    assert len(attacker.requests) == before


def test_allowed_endpoints_never_receive_a_key_the_server_holds(opened, attacker, legit):
    start = len(attacker.requests)
    evil = attacker.url()
    with _client(opened) as c:
        bodies = [
            {"model": "openai/gpt-4o-mini", "prompt_text": "hi", "parameters": {"api_base": evil}},  # native
            {"model": "openai/gpt-4o-mini", "prompt_text": "hi", "parameters": {"base_url": evil}},
            {"model": "corp", "prompt_text": "hi", "parameters": {"api_base": evil}},  # a configured model's key
            {"model": "anthropic/claude-haiku-4-5", "prompt_text": "hi", "parameters": {"api_base": evil}},  # litellm
            {"model": "openai/gpt-4o-mini", "prompt_text": "hi", "stream": True,
             "parameters": {"api_base": evil, "extra_headers": {"X-Trace": "1"}}},
        ]  # fmt: skip
        for body in bodies:
            r = c.post(f"{API}/playground/run", json=body)
            assert r.status_code == 200, r.text
        ok = c.post(f"{API}/playground/run", json=bodies[0]).json()
        assert ok["status"] == "ok" and ok["text"] == "owned"  # the caller's endpoint did answer
        _, events = _stream(c, "/playground/compare", {"prompt_text": "hi", "targets": [
            {"model": "corp", "parameters": {"api_base": evil}},
            {"model": "anthropic/claude-haiku-4-5", "parameters": {"base_url": evil}}]})  # fmt: skip
        assert sorted(d["target"] for n, d in events if n == "done") == [0, 1]
        # the caller's own key is the only one that may go there
        mine = c.post(f"{API}/playground/run", json={"model": "corp", "prompt_text": "hi",
                                                     "parameters": {"api_base": evil, "api_key": "caller-own-key"}})  # fmt: skip
        assert mine.json()["status"] == "ok"
        # endpoints of providers that sign with this machine's cloud identity are refused outright
        r = c.post(f"{API}/playground/run", json={"model": "bedrock/anthropic.claude-3-haiku-20240307-v1:0",
                                                  "prompt_text": "hi", "parameters": {"api_base": evil}})  # fmt: skip
        assert r.status_code == 400 and r.json()["error"]["field"] == "parameters.api_base", r.text
        r = c.post(f"{API}/playground/run", json={"model": "corp", "prompt_text": "hi",
                                                  "parameters": {"extra_headers": {"Host": "evil.example"}}})  # fmt: skip
        assert r.status_code == 400 and r.json()["error"]["field"] == "parameters.extra_headers", r.text
        # without a per-call endpoint, the configured model's key goes where it is configured
        assert (
            c.post(f"{API}/playground/run", json={"model": "corp", "prompt_text": "hi"}).json()["status"]
            == "ok"
        )
    seen = attacker.requests[start:]
    assert len(seen) >= 8 and any(s.path.endswith("/v1/messages") for s in seen)  # both transports came
    assert attacker.leaked() == []
    assert any(s.headers.get("authorization") == "Bearer caller-own-key" for s in seen)
    assert not any("authorization" in s.headers and "caller-own-key" not in s.headers["authorization"]
                   for s in seen if s.path.endswith("/chat/completions"))  # fmt: skip
    assert legit.headers[-1].get("authorization") == f"Bearer {SERVER_KEYS['CORP_KEY']}"


def test_a_notebook_per_call_endpoint_gets_no_key_either(attacker, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SERVER_KEYS["OPENAI_API_KEY"])
    start = len(attacker.requests)
    r = nbp.run("hi", model="openai/gpt-4o-mini", params={"api_base": attacker.url()})
    assert r.ok and r.text == "owned"
    assert len(attacker.requests) == start + 1 and attacker.leaked() == []
    assert "authorization" not in attacker.requests[-1].headers


# ---------------------------------------------------------------------------------------------------
# Provider errors
# ---------------------------------------------------------------------------------------------------
def test_error_status_is_stored_and_read_back(internal):
    nbp.configure(models={"reject": {"model": "openai/m", "api_base": internal.url("reject")}})
    r = nbp.run("hi", model="reject")
    assert r.status == "error" and r.error_type == "BadParameterError" and r.error_status == 400
    from nbplayground.storage import history

    assert history.flush()
    back = history.get_run(r.id)
    assert back.error_status == 400 and back.error_type == "BadParameterError"
    assert nbp.sql("select error_status from runs where id = ?", [r.id])["error_status"].tolist() == [400]


def test_upstream_error_bodies_never_reach_callers_or_the_log(closed, internal):
    texts, ids = [], []
    with _client(closed) as c:
        for model in ("internal", "internal-claude"):
            r = c.post(f"{API}/playground/run", json={"model": model, "prompt_text": "hi"})
            body = r.json()
            texts.append(r.text)
            ids.append(body["id"])
            assert (
                body["status"] == "error"
                and body["error_type"] == "ServerError"
                and body["error_status"] == 502
            )
            assert body["error"] == E.public_message("ServerError", 502) and "HTTP 502" in body["error"]
        for model, kind, status in (("reject", "BadParameterError", 400), ("nomodel", "UnknownModelError", 404),
                                    ("midstream", "ProviderError", None)):  # fmt: skip
            body = c.post(f"{API}/playground/run", json={"model": model, "prompt_text": "hi"}).json()
            texts.append(json.dumps(body))
            ids.append(body["id"])
            assert (body["error_type"], body["error_status"]) == (kind, status), body
            assert body["error"] == E.public_message(kind, status)
        text, events = _stream(
            c, "/playground/run", {"model": "internal", "prompt_text": "hi", "stream": True}
        )
        texts.append(text)
        err = next(d for n, d in events if n == "error")
        assert (
            err["error"] == err["result"]["error"] == E.public_message("ServerError", 502)
            and err["result"]["error_status"] == 502
        )
        ids.append(err["run_id"])
        text, events = _stream(c, "/playground/compare", {"prompt_text": "hi", "targets": [
            {"model": "internal"}, {"model": "mock/echo"}, {"model": "internal-claude"}]})  # fmt: skip
        texts.append(text)
        for n in (0, 2):
            err = next(d for name, d in events if name == "error" and d["target"] == n)
            assert err["error"] == E.public_message("ServerError", 502) and err["result"]["error_status"] == 502
            ids.append(err["run_id"])
        page = c.get(f"{API}/playground/history", params={"limit": 500})
        texts.append(page.text)
        failed = [i for i in page.json()["items"] if i["status"] == "error"]
        assert {i["id"] for i in failed} >= set(ids)
        assert all(i["error"] == E.public_message(i["error_type"], i["error_status"]) for i in failed)
        for run_id in ids:
            detail = c.get(f"{API}/playground/history/{run_id}")
            texts.append(detail.text)
            assert detail.json()["error"] == E.public_message(
                detail.json()["error_type"], detail.json()["error_status"]
            )
        # errors found before any call keep their own, more useful message
        r = c.post(f"{API}/playground/run", json={"model": "mock/echo", "prompt_text": "{{who}}"})
        assert r.status_code == 400 and "who" in r.json()["error"]["message"]
    assert sum(s.path.startswith("/fail/") for s in internal.requests) >= 8  # the pages were served
    for text in texts:
        assert "hunter2" not in text and "db-internal" not in text
    log = closed.log.read_text(errors="replace")
    assert "nbplayground" in log  # the log is the server's
    assert "hunter2" not in log and "db-internal" not in log


def test_public_message_covers_every_error_class():
    classes = {c for c in vars(E).values() if isinstance(c, type) and issubclass(c, E.NBPlaygroundError)}
    assert len(classes) >= 18
    assert {c.__name__ for c in classes} <= set(E.PUBLIC_MESSAGES), (
        "give the new error class a public message"
    )
    for cls in classes:
        for status in (None, 400, 502):
            message = E.public_message(cls.__name__, status)
            assert message and "\n" not in message and "{status}" not in message and len(message) < 200
    for name in ("ProviderError", "ServerError", "AuthError", "RateLimitError", "BadParameterError",
                 "UnknownModelError"):  # fmt: skip
        assert "HTTP 503" in E.public_message(name, 503)
    assert E.public_message("ServerError", None) != E.public_message("RateLimitError", None)
    assert "KeyError" in E.public_message("KeyError", None)
    assert "<script>" not in E.public_message("<script>", None)  # a type name is shown only if it is one
    # own errors keep their message when no provider sent them; with a status they came from one
    assert E.caller_message("MissingVariablesError", None, "Missing template variable: x.") == (
        "Missing template variable: x.")  # fmt: skip
    assert E.caller_message("BadParameterError", 400, f"x rejected: {UPSTREAM_SECRET}") == (
        E.public_message("BadParameterError", 400))  # fmt: skip
    assert E.caller_message("ProviderError", None, UPSTREAM_SECRET) == E.public_message("ProviderError", None)
    assert E.caller_message("ValueError", None, UPSTREAM_SECRET) == E.public_message("ValueError", None)


# ---------------------------------------------------------------------------------------------------
# Bounds
# ---------------------------------------------------------------------------------------------------
def _refused(r: httpx.Response, field: str | None, limit: str) -> dict:
    assert r.status_code == 400, r.text[:300]
    err = r.json()["error"]
    assert err["type"] == "LimitError" and err["field"] == field and limit in err["message"], err
    return err


def test_over_limit_inputs_are_400s_that_state_the_limit(closed):
    run, compare = f"{API}/playground/run", f"{API}/playground/compare"
    with _client(closed) as c:
        before = c.get(f"{API}/playground/history").json()["total"]
        big = json.dumps({"model": "mock/echo", "prompt_text": "x" * MAX_BODY_BYTES}).encode()
        _refused(c.post(run, content=big), None, f"{MAX_BODY_BYTES:,} bytes")
        _refused(c.post(f"{API}/playground/save-version", content=big), None, f"{MAX_BODY_BYTES:,} bytes")
        nested: object = "v"
        for _ in range(MAX_JSON_DEPTH):
            nested = {"a": nested}
        _refused(c.post(run, json={"model": "mock/echo", "prompt_text": "x", "variables": nested}), "variables",
                 str(MAX_JSON_DEPTH))  # fmt: skip
        ok = {"model": "mock/echo", "prompt_text": "x", "variables": nested["a"]}  # type: ignore[index]
        assert c.post(run, json=ok).status_code == 200  # exactly at the limit
        for deep in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 150_000 + b"1" + b"}" * 150_000):
            _refused(c.post(run, content=deep), None, str(MAX_JSON_DEPTH))  # was a 500 (RecursionError)
        _refused(c.post(compare, json={"prompt_text": "x", "targets": [{"model": "mock/echo"}] * 2,
                                       "parameters": {"extra_body": nested}}), "parameters", str(MAX_JSON_DEPTH))  # fmt: skip
        limit = f"{MAX_PROMPT_CHARS:,}"
        _refused(c.post(run, json={"model": "mock/echo", "prompt_text": "x" * (MAX_PROMPT_CHARS + 1)}),
                 "prompt_text", limit)  # fmt: skip
        _refused(c.post(run, json={"model": "mock/echo", "prompt_text": "{{v}}" * 10,
                                   "variables": {"v": "y" * (MAX_PROMPT_CHARS - 10)}}), "variables", limit)  # fmt: skip
        _refused(c.post(run, json={"model": "mock/echo", "messages": [
            {"role": "user", "content": [{"type": "text", "text": "z" * (MAX_PROMPT_CHARS // 2 + 1)}]},
            {"role": "user", "content": "z" * (MAX_PROMPT_CHARS // 2)}]}), "messages", limit)  # fmt: skip
        # a short template that repeats a long variable would render to gigabytes: refused before rendering
        amplified = {
            "model": "mock/echo",
            "prompt_text": "{{ x }}" * 20_000,
            "variables": {"x": "y" * 50_000},
        }
        err = _refused(c.post(run, json=amplified), "variables", limit)
        assert "render" in err["message"]
        tokens = f"{MAX_MOCK_TOKENS:,}"
        _refused(c.post(run, json={"model": "mock/lorem", "prompt_text": "x", "parameters": {"max_tokens": 1_000_000}}),
                 "parameters.max_tokens", tokens)  # fmt: skip
        _refused(c.post(run, json={"model": "big", "prompt_text": "x", "stream": True,
                                   "parameters": {"max_completion_tokens": MAX_MOCK_TOKENS + 1}}),
                 "parameters.max_completion_tokens", tokens)  # an alias of a mock model too  # fmt: skip
        _refused(c.post(compare, json={"prompt_text": "x", "targets": [
            {"model": "mock/echo"}, {"model": "mock/lorem", "parameters": {"max_tokens": 10**7}}]}),
            "targets.1.parameters.max_tokens", tokens)  # fmt: skip
        at_limit = c.post(run, json={"model": "mock/lorem", "prompt_text": "x",
                                     "parameters": {"max_tokens": MAX_MOCK_TOKENS}}).json()  # fmt: skip
        assert at_limit["status"] == "ok" and at_limit["tokens_out"] == MAX_MOCK_TOKENS
        for offset in ("100000000000000000000", str(10**9 + 1)):
            r = c.get(f"{API}/playground/history", params={"offset": offset})
            assert r.status_code == 400 and r.json()["error"]["field"] == "offset" and "1000000000" in r.text
        assert c.get(f"{API}/playground/history", params={"offset": 10**9}).json()["items"] == []
        assert (
            c.get(f"{API}/playground/history").json()["total"] == before + 2
        )  # only the two runs within bounds
    log = closed.log.read_text(errors="replace")
    assert "RecursionError" not in log and "Traceback" not in log
