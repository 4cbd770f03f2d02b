"""The REST + SSE API through a real Jupyter server (a subprocess) and a real HTTP client (httpx)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from jsonschema import Draft202012Validator

from nbplayground.core.types import EVENT_TYPES
from nbplayground.server.handlers import ROUTES
from nbplayground.server.validation import document
from support.oai_server import Behaviour, OpenAIServer
from support.servers import start_jupyter
from support.sse_client import sse_events

API = "/nbplayground/api/v1"


@pytest.fixture(scope="module")
def upstream():
    """A paced OpenAI-compatible server that records when each client connection closed."""
    with OpenAIServer(tokens=300, delay=0.01) as srv:
        yield srv


@pytest.fixture(scope="module")
def jp(tmp_path_factory, llmock_server, upstream):
    """A Jupyter server with the extension, models 'local' (paced server) and 'flaky' (llmock)."""
    from llmock.pytest_plugin import LLMock

    base = tmp_path_factory.mktemp("jp")
    (base / "home").mkdir()
    (base / "home" / "config.toml").write_text(
        f"""
[models.local]
model = "openai/local-model"
api_base = "{upstream.url}"

[models.flaky]
model = "openai/gpt-4o-mini"
api_base = "{LLMock(llmock_server).base_url("openai")}"
api_key_env = "FLAKY_KEY"
"""
    )
    server = start_jupyter(
        base, env={"NBPLAYGROUND_SSE_HEARTBEAT_S": "0.3", "FLAKY_KEY": "sk-flaky-SECRET-0123456789"}
    )
    yield server
    server.stop()


@pytest.fixture
def client(jp):
    with httpx.Client(base_url=jp.url, headers=jp.headers, timeout=60) as c:
        yield c


def stream(client, path: str, body: dict, headers: dict | None = None) -> list[tuple[str, object]]:
    with client.stream("POST", API + path, json=body) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        if headers is not None:
            headers.update(r.headers)
        return sse_events(r)


def test_run_json_returns_the_result_and_lands_in_history(client):
    r = client.post(f"{API}/playground/run", json={"model": "mock/echo", "prompt_text": "Hello {{name}}",
                                                   "variables": {"name": "Ada"}})  # fmt: skip
    assert r.status_code == 200
    body = r.json()
    assert body["text"] == "Hello Ada" and body["status"] == "ok"
    assert body["tokens_out"] == 2 and body["latency_ms"] is not None and "error_detail" not in body
    run = client.get(f"{API}/playground/history/{body['id']}").json()
    assert run["surface"] == "server" and run["text"] == "Hello Ada" and run["variables"] == {"name": "Ada"}
    # one result shape: the JSON answer and the stored run have the same fields
    assert set(run) == set(body)


def test_run_sse_streams_chunks_then_done(client):
    events = stream(client, "/playground/run", {"model": "mock/lorem", "prompt_text": "x", "stream": True,
                                                "parameters": {"max_tokens": 20}})  # fmt: skip
    names = [n for n, _ in events if n != "comment"]
    assert names[0] == "start" and names[-1] == "done"
    # every SSE message is named by its Event type, and carries that Event.to_dict()
    assert all(n == d["type"] for n, d in events if n != "comment")
    chunks = [d["text"] for n, d in events if n == "delta"]
    start, done = events[0][1], events[-1][1]["result"]
    assert "".join(chunks) == done["text"] and len(done["text"].split()) == 20
    assert start["model"] == "mock/lorem" and start["run_id"] == done["id"]
    assert done["status"] == "ok" and done["tokens_out"] == 20
    assert {n for n, _ in events} <= {*EVENT_TYPES, "comment"}


def test_messages_prompt_id_tools_and_structured_output(client):
    client.post(
        f"{API}/playground/save-version", json={"namespace": "t", "slug": "greet", "content": "Hi {{n}}"}
    )
    r = client.post(
        f"{API}/playground/run", json={"model": "mock/echo", "prompt_id": "t/greet", "variables": {"n": "Bo"}}
    )
    assert r.json()["text"] == "Hi Bo"
    r = client.post(f"{API}/playground/run", json={"model": "mock/echo", "messages": [
        {"role": "system", "content": "terse"}, {"role": "user", "content": "two"}]})  # fmt: skip
    assert r.json()["text"] == "two"
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}  # fmt: skip
    r = client.post(
        f"{API}/playground/run", json={"model": "mock/tools", "prompt_text": "Paris?", "tools": [tool]}
    )
    calls = r.json()["tool_calls"]
    assert calls[0]["name"] == "get_weather" and calls[0]["result"] is None  # manual: the client answers
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    r = client.post(
        f"{API}/playground/run", json={"model": "mock/json", "prompt_text": "ok?", "response_format": schema}
    )
    assert isinstance(r.json()["data"]["ok"], bool)


def test_compare_interleaves_targets_and_a_failing_one_ends_alone(client, llmock):
    llmock.fail(400)
    stream_headers: dict[str, str] = {}
    events = stream(client, "/playground/compare", {"prompt_text": "Compare", "targets": [
        {"model": "mock/lorem", "parameters": {"max_tokens": 30, "mock_delay_ms": 10}},
        {"model": "flaky"},
        {"model": "local", "parameters": {"max_tokens": 30}},
    ]}, stream_headers)  # fmt: skip
    named = [(n, d) for n, d in events if n != "comment"]
    # the same vocabulary as /run: names are exactly Event types, each event carries its target
    assert {n for n, _ in named} <= set(EVENT_TYPES) and all(n == d["type"] for n, d in named)
    starts = {d["target"]: d for n, d in named if n == "start"}
    assert {i: s["model"] for i, s in starts.items()} == {0: "mock/lorem", 1: "flaky", 2: "local"}
    done_at = {d["target"]: k for k, (n, d) in enumerate(named) if n == "done"}
    error_at = next(k for k, (n, d) in enumerate(named) if n == "error")
    assert named[error_at][1]["target"] == 1 and sorted(done_at) == [0, 1, 2]  # exactly one done per target
    # the failure arrives early and the others keep streaming after it
    assert error_at < done_at[0] and error_at < done_at[2]
    delta_targets = [d["target"] for n, d in named if n == "delta"]
    switches = sum(a != b for a, b in itertools.pairwise(delta_targets))
    assert set(delta_targets) == {0, 2} and switches >= 4  # interleaved, not one after the other
    results = {d["target"]: d["result"] for n, d in named if n == "done"}
    for i in (0, 2):
        text = "".join(d["text"] for n, d in named if n == "delta" and d["target"] == i)
        assert results[i]["text"] == text and results[i]["target_index"] == i and results[i]["status"] == "ok"
        assert results[i]["id"] == starts[i]["run_id"]
    err = named[error_at][1]
    assert err["error"] and err["result"]["id"] == starts[1]["run_id"] and results[1]["status"] == "error"
    assert "error_detail" not in err["result"]
    group = stream_headers["x-nbplayground-group-id"]
    assert group and all(r["group_id"] == group for r in results.values())


def test_retried_provider_error_is_announced_then_succeeds(client, llmock):
    llmock.rate_limit(times=1, retry_after=0.2)
    events = stream(client, "/playground/run", {"model": "flaky", "prompt_text": "hi", "stream": True})
    names = [n for n, _ in events if n != "comment"]
    assert "retry" in names and names[-1] == "done"
    retry = next(d for n, d in events if n == "retry")
    assert retry["attempt"] == 2 and retry["reason"] == "RateLimitError" and retry["wait"] >= 0.2
    assert events[-1][1]["result"]["attempts"] == 2


def test_client_disconnect_cancels_upstream_and_stores_stopped(client, upstream):
    # A 60 s answer: only the hang-up can end it early, however loaded the machine is (no race with its end).
    upstream.script = [Behaviour(tokens=6000)]
    with client.stream("POST", f"{API}/playground/run", json={"model": "local", "prompt_text": "long",
                                                              "stream": True}) as r:  # fmt: skip
        start, chunks = None, 0
        for line in r.iter_lines():
            if line.startswith("data:") and start is None:
                start = json.loads(line[5:])
            elif line.startswith("data:"):
                chunks += 1
                if chunks >= 5:
                    break
        t_gone = time.monotonic()
    # the client is gone: the server hangs up on the model (the upstream sees its connection close)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(c.closed_at is not None and c.closed_at >= t_gone for c in upstream.connections):
            break
        time.sleep(0.02)
    closed = [c.closed_at - t_gone for c in upstream.connections if c.closed_at and c.closed_at >= t_gone]
    assert closed, "the model connection was left open after the client disconnected"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        run = client.get(f"{API}/playground/history/{start['run_id']}")
        if run.status_code == 200:
            break
        time.sleep(0.05)
    run = run.json()
    assert run["status"] == "stopped" and 5 <= len(run["text"].split()) < 6000


def test_heartbeats_during_silence(client, upstream):
    upstream.latency = 1.0
    try:
        events = stream(client, "/playground/run", {"model": "local", "prompt_text": "slow", "stream": True,
                                                    "parameters": {"max_tokens": 3}})  # fmt: skip
    finally:
        upstream.latency = 0.0
    names = [n for n, _ in events]
    first_data = names.index("delta")
    assert names[:first_data].count("comment") >= 2 and names[-1] == "done"


def test_validation_errors_name_the_field(client):
    cases = [
        ({"model": "mock/echo", "prompt_text": "x", "bogus": 1}, "bogus"),
        ({"prompt_text": "x"}, "model"),
        ({"model": "mock/echo"}, "prompt_text"),
        (
            {"model": "mock/echo", "prompt_text": "x", "messages": [{"role": "user", "content": "y"}]},
            "messages",
        ),
        ({"model": "mock/echo", "prompt_text": 3}, "prompt_text"),
        ({"model": "mock/echo", "prompt_text": "x", "stream": "yes"}, "stream"),
        ({"model": "mock/echo", "messages": [{"role": "robot", "content": "y"}]}, "messages.0.role"),
        ({"model": "mock/echo", "prompt_text": "{{who}} and {{where.city}}"}, "variables.who"),
        ({"model": "mock/ech", "prompt_text": "x"}, "model"),
        (
            {"model": "mock/echo", "prompt_text": "x", "parameters": {"temperature": "hot"}},
            "parameters.temperature",
        ),
        ({"model": "mock/echo", "prompt_id": "nope/missing"}, "prompt_id"),
    ]
    for body, field in cases:
        r = client.post(f"{API}/playground/run", json=body)
        assert r.status_code == 400, (body, r.text)
        err = r.json()["error"]
        assert err["field"] == field, (body, err)
        assert "Traceback" not in r.text
    r = client.post(
        f"{API}/playground/run", json={"model": "mock/echo", "prompt_text": "{{who}} {{where.city}}"}
    )
    assert "who" in r.json()["error"]["message"] and "where.city" in r.json()["error"]["message"]
    assert (
        "mock/echo"
        in client.post(f"{API}/playground/run", json={"model": "mock/ech", "prompt_text": "x"}).text
    )
    for n in (1, 5):
        r = client.post(
            f"{API}/playground/compare", json={"prompt_text": "x", "targets": [{"model": "mock/echo"}] * n}
        )
        assert r.status_code == 400 and r.json()["error"]["field"] == "targets" and f"got {n}" in r.text
    r = client.post(f"{API}/playground/run", content=b"{not json")
    assert r.status_code == 400 and "not valid JSON" in r.text
    r = client.post(f"{API}/playground/save-version", json={"namespace": "a", "slug": "b"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "content"
    for query, field in (
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("offset=-1", "offset"),
        ("status=meh", "status"),
    ):
        r = client.get(f"{API}/playground/history?{query}")
        assert r.status_code == 400 and r.json()["error"]["field"] == field


def test_history_pagination_filters_and_detail(client):
    for i in range(7):
        client.post(f"{API}/playground/run", json={"model": "mock/echo", "prompt_text": f"page test {i}"})
    client.post(
        f"{API}/playground/run", json={"model": "flaky", "prompt_text": "x", "parameters": {"max_tokens": 0}}
    )
    page = client.get(f"{API}/playground/history", params={"limit": 3, "model": "mock/echo"}).json()
    assert page["limit"] == 3 and page["offset"] == 0 and len(page["items"]) == 3 and page["total"] >= 7
    assert [i["prompt"] for i in page["items"]] == ["page test 6", "page test 5", "page test 4"]
    assert page["items"][0]["text"] == "page test 6"
    nxt = client.get(
        f"{API}/playground/history", params={"limit": 3, "offset": 3, "model": "mock/echo"}
    ).json()
    assert [i["prompt"] for i in nxt["items"]] == ["page test 3", "page test 2", "page test 1"]
    everything = client.get(f"{API}/playground/history", params={"limit": 500}).json()
    assert everything["total"] == len(everything["items"])
    stamps = [i["created_at"] for i in everything["items"]]
    assert stamps == sorted(stamps, reverse=True)
    ok = client.get(f"{API}/playground/history", params={"status": "ok", "limit": 500}).json()
    assert {i["status"] for i in ok["items"]} == {"ok"}
    detail = client.get(f"{API}/playground/history/{page['items'][0]['id']}").json()
    assert detail["messages"] == [{"role": "user", "content": "page test 6"}] and "tokens_out" in detail
    assert client.get(f"{API}/playground/history/doesnotexist").status_code == 404


def test_save_version_and_prompt_routes(client):
    r = client.post(f"{API}/playground/save-version", json={"namespace": "demo", "slug": "hello",
                    "messages": [{"role": "user", "content": "Hello {{name}}"}], "model": "mock/echo",
                    "parameters": {"temperature": 0.1}, "labels": ["prod"]})  # fmt: skip
    assert r.json() == {"prompt_id": "demo/hello", "version": 1, "ref": "demo/hello@1"}
    r = client.post(
        f"{API}/playground/save-version",
        json={"namespace": "demo", "slug": "hello", "content": "Hi {{name}}"},
    )
    assert r.json()["version"] == 2
    assert client.get(f"{API}/prompts/demo/hello@prod").json()["messages"][0]["content"] == "Hello {{name}}"
    latest = client.get(f"{API}/prompts/demo/hello").json()
    assert latest["version"] == 2 and latest["labels"] == []
    listing = client.get(f"{API}/prompts").json()["items"]
    assert next(i for i in listing if i["prompt_id"] == "demo/hello")["latest_version"] == 2
    assert client.get(f"{API}/prompts/demo/nothing").status_code == 404
    run = client.post(f"{API}/playground/run", json={"model": "mock/echo", "prompt_id": "demo/hello@prod",
                                                     "variables": {"name": "Ada"}}).json()  # fmt: skip
    assert run["text"] == "Hello Ada"


def test_providers_show_key_status_never_key_values(client):
    r = client.get(f"{API}/playground/providers")
    items = r.json()["items"]
    mock = next(i for i in items if i["provider"] == "mock")
    assert "mock/echo" in mock["models"] and mock["key_status"] == "not needed"
    flaky = next(i for i in items if "flaky" in i["provider"])
    assert flaky["key_status"] == "set" and flaky["key_env"] == "FLAKY_KEY"
    assert "SECRET" not in r.text
    everything = client.get(f"{API}/playground/history", params={"limit": 500}).text
    assert "SECRET" not in everything


def test_requests_without_a_token_are_refused(jp):
    with httpx.Client(base_url=jp.url, timeout=30) as anon:
        for method, route in [("POST", "/playground/run"), ("POST", "/playground/compare"),
                              ("GET", "/playground/history"), ("GET", "/playground/history/x"),
                              ("POST", "/playground/save-version"), ("GET", "/prompts"),
                              ("GET", "/prompts/a/b"), ("GET", "/playground/providers")]:  # fmt: skip
            r = anon.request(method, API + route, json={"model": "mock/echo", "prompt_text": "x"})
            assert r.status_code in (401, 403), (route, r.status_code)
            r = anon.request(method, API + route, headers={"Authorization": "token wrong"},
                             json={"model": "mock/echo", "prompt_text": "x"})  # fmt: skip
            assert r.status_code in (401, 403), (route, r.status_code)


def test_a_custom_authorizer_can_make_the_api_read_only(tmp_path):
    log = tmp_path / "authz.jsonl"
    tests = str(Path(__file__).resolve().parent)
    server = start_jupyter(tmp_path, args=["--ServerApp.authorizer_class=support.authz.ReadOnlyPlayground"],
                           env={"PYTHONPATH": tests, "NBP_AUTHZ_LOG": str(log)})  # fmt: skip
    try:
        with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as c:
            expect = {
                ("GET", "/playground/history"): 200, ("GET", "/playground/providers"): 200, ("GET", "/prompts"): 200,
                ("POST", "/playground/run"): 403, ("POST", "/playground/compare"): 403,
                ("POST", "/playground/save-version"): 403,
            }  # fmt: skip
            for (method, route), status in expect.items():
                r = c.request(method, API + route, json={"model": "mock/echo", "prompt_text": "x"})
                assert r.status_code == status, (route, r.status_code, r.text)
            assert c.get(f"{API}/playground/history").json()["total"] == 0  # nothing ran
    finally:
        server.stop()
    decisions = [json.loads(line) for line in log.read_text().splitlines()]
    actions = {(d["path"].removeprefix(API), d["action"]) for d in decisions}
    assert {("/playground/run", "execute"), ("/playground/compare", "execute"),
            ("/playground/save-version", "write"), ("/playground/history", "read"),
            ("/playground/providers", "read"), ("/prompts", "read")} <= actions  # fmt: skip


def _schema(doc: dict, node: dict) -> Draft202012Validator:
    return Draft202012Validator({**node, "components": doc["components"]})


def _stored_experiment(jp) -> str:
    """An experiment with a scored run, stored in the server's home by another process (nbplayground's own
    API: the run through the engine, the experiment and score through the store)."""
    code = """
import dataclasses
from nbplayground import api
from nbplayground.core.plan import plan
from nbplayground.storage import experiments as ex, history
e = ex.upsert_experiment("openapi-demo", rows=1, repeats=1, status="done",
                         config={"evaluators": [{"name": "ok", "fingerprint": "f1", "kind": "code"}]})
v = ex.variant(e.id, "v1", "fp", {"prompt": "Hi", "model": "mock/echo"})
spec = api.build_spec("Hi", model="mock/echo", group_id=v.group_id(0))
spec = dataclasses.replace(spec, origin=dataclasses.replace(spec.origin, row_key="0"))
run = api.start(plan(spec)).result()
history.flush()
ex.record_scores([ex.ScoreRow(e.id, run.id, "ok", "f1", v.id, "0", 0, 1.0, True)])
print(e.id)
"""
    out = subprocess.run([sys.executable, "-c", code], env={**__import__("os").environ, "NBPLAYGROUND_HOME": str(jp.home)},
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[-1]


def test_handlers_match_the_openapi_document(client, jp):
    doc = document()
    documented = {path for path in doc["paths"]}
    served = {"/" + route.replace("(?P<run_id>[^/]+)", "{id}").replace("(?P<namespace>[^/]+)", "{namespace}")
              .replace("(?P<slug>[^/]+)", "{slug}").replace("(?P<experiment>[^/]+)", "{experiment}")
              for route, _ in ROUTES}  # fmt: skip
    assert served == documented
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            url = (path.replace("{id}", "x").replace("{namespace}", "demo").replace("{slug}", "hello")
                   .replace("{experiment}", "x"))  # fmt: skip
            handler = next(h for route, h in ROUTES if ("/" + route.split("(")[0]).rstrip("/") in url)
            assert method in {m.lower() for m in ("GET", "POST") if m.lower() in handler.__dict__}, (
                path,
                method,
            )
            assert op["x-action"] in ("read", "execute", "write")
    # documented examples produce responses that match the documented schemas
    client.post(
        f"{API}/playground/save-version", json=doc["components"]["schemas"]["SaveVersionRequest"]["example"]
    )
    run = client.post(f"{API}/playground/run", json=doc["components"]["schemas"]["RunRequest"]["example"])
    calls = {
        ("/nbplayground/api/v1/playground/run", "post"): run,
        ("/nbplayground/api/v1/playground/history", "get"): client.get(f"{API}/playground/history?limit=5"),
        ("/nbplayground/api/v1/playground/history/{id}", "get"): client.get(f"{API}/playground/history/{run.json()['id']}"),
        ("/nbplayground/api/v1/playground/save-version", "post"): client.post(
            f"{API}/playground/save-version", json={"namespace": "demo", "slug": "other", "content": "x"}),
        ("/nbplayground/api/v1/prompts", "get"): client.get(f"{API}/prompts"),
        ("/nbplayground/api/v1/prompts/{namespace}/{slug}", "get"): client.get(f"{API}/prompts/demo/greeting@prod"),
        ("/nbplayground/api/v1/playground/providers", "get"): client.get(f"{API}/playground/providers"),
        ("/nbplayground/api/v1/openapi.json", "get"): client.get(f"{API}/openapi.json"),
        ("/nbplayground/api/v1/experiments", "get"): client.get(f"{API}/experiments"),
        ("/nbplayground/api/v1/experiments/{experiment}", "get"): client.get(
            f"{API}/experiments/{_stored_experiment(jp)}?limit=2"),
    }  # fmt: skip
    for (path, method), response in calls.items():
        assert response.status_code == 200, (path, response.text)
        schema = doc["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]
        errors = list(_schema(doc, schema).iter_errors(response.json()))
        assert not errors, (path, errors[0].message)
    bad = client.post(f"{API}/playground/run", json={"model": "mock/echo"})
    assert not list(_schema(doc, {"$ref": "#/components/schemas/Error"}).iter_errors(bad.json()))
    compare = stream(client, "/playground/compare", doc["components"]["schemas"]["CompareRequest"]["example"])
    event_schema = _schema(doc, {"$ref": "#/components/schemas/Event"})
    named = [(n, d) for n, d in compare if n != "comment"]
    assert named and all(not list(event_schema.iter_errors(d)) and d["type"] == n for n, d in named)
    assert [n for n, _ in named][-1] == "done"


def test_history_reads_are_safe_while_another_process_writes(client, jp):
    code = ("import nbplayground as nbp\n"
            "for i in range(150): nbp.run(f'writer {i}', model='mock/echo')\n")  # fmt: skip
    writer = subprocess.Popen(
        [sys.executable, "-c", code], env={**__import__("os").environ, "NBPLAYGROUND_HOME": str(jp.home)}
    )
    statuses = []
    while writer.poll() is None:
        statuses.append(client.get(f"{API}/playground/history", params={"limit": 20}).status_code)
    assert writer.wait() == 0
    assert statuses and set(statuses) == {200}
    page = client.get(f"{API}/playground/history", params={"limit": 500}).json()
    assert sum(i["prompt"].startswith("writer ") for i in page["items"]) == 150


def test_loading_the_extension_imports_no_litellm():
    code = ("import sys; import nbplayground.server as s; from nbplayground.server import handlers; "
            "print([m for m in ('litellm', 'pandas', 'duckdb', 'openai') if m in sys.modules])")  # fmt: skip
    assert subprocess.check_output([sys.executable, "-c", code], text=True).strip() == "[]"


def test_readme_curl_examples_work_as_written(jp):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("<!-- curl-examples -->")[1].split("<!-- /curl-examples -->")[0]
    script = block.split("```bash")[1].split("```")[0]
    port = jp.url.rsplit(":", 1)[1]
    script = script.replace("127.0.0.1:8888", f"127.0.0.1:{port}")
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "TOKEN": jp.token})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert '"text": "Hello Ada"' in out and "event: done" in out and '"target":1' in out
    assert (
        '"prompt_id": "demo/greeting"' in out
        and '"content": "Hello Ada!"' in out
        and '"provider": "mock"' in out
    )
