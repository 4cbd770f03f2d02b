"""Error classes: the one table from error to HTTP status, ``field`` set where bad input is raised, and no
error class a ``KeyError`` (``except LookupError`` around a dict lookup must not swallow ours)."""

from __future__ import annotations

import pytest

import nbplayground as nbp
from nbplayground.core import errors as E
from nbplayground.core.types import RunResult
from nbplayground.storage import history, registry

#: The whole table, written out: a new error class must be given a status on purpose.
HTTP_STATUS = {
    "NBPlaygroundError": 500, "TemplateError": 400, "MissingVariablesError": 400, "MissingColumnsError": 400,
    "ConfigError": 500, "UnknownModelError": 400, "BadParameterError": 400, "MissingKeyError": 500,
    "AuthError": 502, "ContextTooLongError": 400, "RateLimitError": 429, "ProviderError": 502,
    "ServerError": 502, "ProviderTimeoutError": 504, "ConnectionLostError": 502, "StreamError": 502,
    "EmptyAnswerError": 502, "UnreachableError": 502, "SetupError": 500, "StructuredOutputError": 502,
    "RunStopped": 499, "StoreError": 503, "StoreQueryError": 400, "StoreCorruptError": 500,
    "StoreReadOnlyError": 500, "RunNotFoundError": 404, "PromptNotFoundError": 404,
    "ExperimentNotFoundError": 404,
}  # fmt: skip

CLASSES = {c.__name__: c for c in vars(E).values() if isinstance(c, type) and issubclass(c, E.NBPlaygroundError)}


def test_every_error_class_has_its_http_status():
    assert {name: cls.http_status for name, cls in CLASSES.items()} == HTTP_STATUS


@pytest.mark.parametrize("name", sorted(HTTP_STATUS))
def test_no_error_class_is_a_lookup_error(name):
    assert not issubclass(CLASSES[name], LookupError)


def test_field_is_a_keyword_of_every_error():
    assert E.NBPlaygroundError("x").field is None
    assert E.BadParameterError("x", field="params.top_p").field == "params.top_p"
    assert E.ProviderTimeoutError("slow", first_byte=False, field="params.timeout").field == "params.timeout"
    assert E.MissingVariablesError(["b", "a"], [], field="variables.b").field == "variables.b"
    assert E.MissingColumnsError(["q"], ["x"], field="q").field == "q"
    assert E.UnknownModelError("nope/x").field == "model"  # a model name is the only thing it can be about
    assert E.MissingKeyError("openai", "OPENAI_API_KEY").field is None  # the machine's setup, not an input


@pytest.mark.parametrize(
    ("text", "kw", "error", "field"),
    [
        ("Hi {{who}} from {{where.city}}", {}, E.MissingVariablesError, "variables.who"),
        ("{{b}} {{a}}", {"variables": {}}, E.MissingVariablesError, "variables.b"),  # the first one written
        ("x", {"model": "mock/ech"}, E.UnknownModelError, "model"),
        ("x", {"model": "nosuchprovider-model-xyz"}, E.UnknownModelError, "model"),
        ("x", {"params": {"temperature": 5}}, E.BadParameterError, "params.temperature"),
        ("x", {"params": {"max_tokens": 0}}, E.BadParameterError, "params.max_tokens"),
        ("x", {"params": {"temprature": 1}}, E.BadParameterError, "params.temprature"),
        ("x", {"params": {"stop": 3}}, E.BadParameterError, "params.stop"),
        ("x", {"params": {"timeout": -1}}, E.BadParameterError, "params.timeout"),
        ("x", {"params": {"extra_headers": {"Host": "evil"}}}, E.BadParameterError, "params.extra_headers"),
        (None, {"messages": [{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}]},
         E.BadParameterError, "messages[1].role"),
        ("x", {"tools": [lambda city: city]}, E.BadParameterError, "tools"),
        ("x", {"tools": [{"type": "function", "function": {"description": "no name"}}]}, E.BadParameterError,
         "tools[0].function.name"),
        ("x", {"tools": [{"name": "a"}, 3]}, E.BadParameterError, "tools[1]"),
        (None, {"prompt": "demo/none"}, E.PromptNotFoundError, "prompt"),
        ("x", {"response_format": 42}, E.BadParameterError, "response_format"),
    ],
)  # fmt: skip
def test_run_names_the_bad_input(text, kw, error, field):
    with pytest.raises(error) as info:
        nbp.run(text, **{"model": "mock/echo", **kw})
    err = info.value
    assert type(err) is error and err.field == field, (err.field, str(err))
    assert err.http_status == HTTP_STATUS[error.__name__]
    assert "\n" not in str(err) and not isinstance(err, KeyError)


def test_lookup_error_no_longer_catches_a_missing_run_or_prompt():
    """The old bases made ``except LookupError: default`` hide these; now they reach the caller."""

    def first_or_default(fetch, key):
        try:
            return fetch(key)
        except LookupError:  # meant for a dict or a list, as usual
            return "default"

    with pytest.raises(E.RunNotFoundError) as run:
        first_or_default(nbp.get_run, "feedfacecafe")
    assert run.value.field == "run_id" and run.value.http_status == 404
    assert "nbp.history()" in str(run.value)
    registry.save("demo/hello", content="Hi")
    with pytest.raises(E.PromptNotFoundError) as prompt:
        first_or_default(registry.get, "demo/hello@prod")
    assert prompt.value.field == "prompt" and "Versions: 1" in str(prompt.value)
    with pytest.raises(E.MissingVariablesError):
        first_or_default(lambda v: nbp.run("{{x}}", model="mock/echo", variables=v), {})


def _stored(run_id: str) -> RunResult:
    return RunResult(id=run_id, model="mock/echo", text="t", surface="python", provider="mock",
                     messages=[{"role": "user", "content": "q"}])  # fmt: skip


def test_an_ambiguous_run_prefix_is_bad_input_not_a_store_failure():
    history.record(_stored("abcdef01" + "0" * 24))
    history.record(_stored("abcdef02" + "0" * 24))
    with pytest.raises(E.StoreQueryError, match="ambiguous") as info:
        nbp.get_run("abcdef")
    assert isinstance(info.value, E.StoreError)  # still caught by ``except StoreError``
    assert info.value.field == "run_id" and info.value.http_status == 400


def test_every_error_class_has_a_public_message():
    assert set(CLASSES) <= set(E.PUBLIC_MESSAGES)
    assert "ambiguous" in E.public_message("StoreQueryError", None)
