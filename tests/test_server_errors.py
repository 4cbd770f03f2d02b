"""Refused requests through a real Jupyter server: the status comes from the error class's ``http_status``
and the JSON body names the ``field`` (as a path into the request) the error is about."""

from __future__ import annotations

import httpx
import pytest
from jsonschema import Draft202012Validator

from nbplayground.core.types import RunResult
from nbplayground.server.handlers import api_field
from nbplayground.server.validation import document
from support.servers import start_jupyter

API = "/nbplayground/api/v1"
AMBIGUOUS = "abcdef"


@pytest.fixture(scope="module")
def jp(tmp_path_factory):
    """A Jupyter server with the extension (mock models only) and two stored runs sharing an id prefix."""
    from nbplayground import config
    from nbplayground.storage import history

    base = tmp_path_factory.mktemp("jp-errors")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NBPLAYGROUND_HOME", str(base / "home"))
        config.configure(reset=True)
        for n in (1, 2):
            history.record(RunResult(id=f"{AMBIGUOUS}0{n}" + "0" * 24, model="mock/echo", text="t",
                                     surface="python", provider="mock", messages=[]))  # fmt: skip
        history.reset_for_tests()  # written and closed before the server opens the store
    config.configure(reset=True)
    server = start_jupyter(base)
    yield server
    server.stop()


@pytest.fixture
def client(jp):
    with httpx.Client(base_url=jp.url, headers=jp.headers, timeout=60) as c:
        yield c


def _error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    Draft202012Validator({**document()["components"]["schemas"]["Error"]}).validate(body)
    assert "Traceback" not in r.text
    return body["error"]


@pytest.mark.parametrize(
    ("body", "kind", "field"),
    [
        ({"model": "mock/ech", "prompt_text": "x"}, "UnknownModelError", "model"),
        ({"model": "mock/echo", "prompt_text": "Hi {{who}} in {{where.city}}"}, "MissingVariablesError",
         "variables.who"),
        ({"model": "mock/echo", "prompt_text": "x", "parameters": {"temperature": 5}}, "BadParameterError",
         "parameters.temperature"),
        ({"model": "mock/echo", "prompt_text": "x", "parameters": {"temprature": 1}}, "BadParameterError",
         "parameters.temprature"),
        ({"model": "mock/echo", "prompt_id": "no/such"}, "PromptNotFoundError", "prompt_id"),
    ],
)  # fmt: skip
def test_a_refused_run_names_its_field(client, body, kind, field):
    err = _error(client.post(f"{API}/playground/run", json=body), 400)
    assert err["type"] == kind and err["field"] == field, err
    assert err["message"] and "\n" not in err["message"]


def test_an_unknown_run_id_is_a_404_about_run_id(client):
    err = _error(client.get(f"{API}/playground/history/doesnotexist"), 404)
    assert err["field"] == "run_id" and "doesnotexist" in err["message"]


def test_an_ambiguous_run_prefix_is_a_400_listing_the_candidates(client):
    err = _error(client.get(f"{API}/playground/history/{AMBIGUOUS}"), 400)
    assert err["type"] == "StoreQueryError" and err["field"] == "run_id"
    assert "ambiguous" in err["message"] and f"{AMBIGUOUS}01" in err["message"]


def test_an_unknown_prompt_in_the_url_is_a_404(client):
    err = _error(client.get(f"{API}/prompts/no/such"), 404)
    assert err["type"] == "PromptNotFoundError" and err["field"] == "prompt_id"


def test_a_broken_server_configuration_is_a_500_with_the_fixed_handling(client, jp):
    config = jp.home / "config.toml"
    config.write_text("[models.x]\ntransport = 3\n")
    try:
        err = _error(client.get(f"{API}/playground/providers"), 500)
    finally:
        config.unlink()
    assert err["type"] == "ConfigError" and err["field"] is None and "Model 'x'" in err["message"]
    assert client.get(f"{API}/playground/providers").status_code == 200  # the config is re-read


@pytest.mark.parametrize(
    ("field", "api"),
    [
        ("params.temperature", "parameters.temperature"),
        ("messages[2].role", "messages.2.role"),
        ("tools[0].function.name", "tools.0.function.name"),
        ("prompt", "prompt_id"),
        ("text", "prompt_text"),
        ("models[1].params.top_p", "targets.1.parameters.top_p"),
        ("variables.params", "variables.params"),  # a variable may be called anything
        ("variables.where.city", "variables.where.city"),
        ("targets.1.parameters.top_p", "targets.1.parameters.top_p"),  # the API's own paths pass through
        ("prompt_id", "prompt_id"),
        ("model", "model"),
        (None, None),
    ],
)
def test_engine_fields_become_request_paths(field, api):
    assert api_field(field) == api
