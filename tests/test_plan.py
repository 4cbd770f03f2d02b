"""RunSpec -> plan() -> RunRequests: one way into the engine, for every surface.

Counts are taken by wrapping the real functions (templating, providers, the registry), and every request a
surface starts is compared with what plan() returned for it: nothing may change a request after planning.
"""

from __future__ import annotations

import copy
import dataclasses
import types

import pytest
from pydantic import BaseModel

import nbplayground as nbp
from nbplayground import api
from nbplayground.core import errors as E
from nbplayground.core import plan as P
from nbplayground.core import providers, templating
from nbplayground.core.plan import Origin, Provenance, RunSpec, TargetSpec, plan
from support.oai_server import OpenAIServer

#: What a request is: payload and provenance (a snapshot at plan time is compared with what ran).
FIELDS = ("model", "messages", "params", "variables", "template_messages", "prompt_ref", "target_index",
          "group_id", "thread_id", "parent_id", "surface", "kind", "input", "run_id", "tools", "tool_mode",
          "response_format", "row_key")  # fmt: skip


def _snapshot(req):
    return {f: copy.deepcopy(getattr(req, f)) for f in FIELDS}


class Recorder:
    """Wraps plan() wherever a surface calls it and api.start(); keeps what was planned and what started."""

    def __init__(self, monkeypatch):
        self.planned: list[tuple[object, dict]] = []
        self.started: list[object] = []
        real_plan, real_start = P.plan, api.start

        def recording_plan(spec):
            requests = real_plan(spec)
            self.planned += [(r, _snapshot(r)) for r in requests]
            return requests

        def recording_start(requests, **kw):
            self.started += requests
            return real_start(requests, **kw)

        import nbplayground.magic as magic
        import nbplayground.widgets.playground as playground

        for module in (P, api, magic, playground):
            monkeypatch.setattr(module, "plan", recording_plan)
        monkeypatch.setattr(api, "start", recording_start)

    def check_unchanged(self):
        """Every started request is one plan() returned, exactly as it returned it."""
        assert self.started, "nothing was started"
        snapshots = {id(r): snap for r, snap in self.planned}
        for req in self.started:
            assert id(req) in snapshots, "a request reached the engine without plan()"
            assert _snapshot(req) == snapshots[id(req)], f"request {req.target_index} changed after plan()"


@pytest.fixture
def recorder(monkeypatch):
    return Recorder(monkeypatch)


@pytest.fixture
def counts(monkeypatch):
    """Calls of templating.render_messages, providers.resolve (by model) and providers.split_params."""
    seen: dict[str, list] = {"render": [], "resolve": [], "split": []}
    render, resolve, split = templating.render_messages, providers.resolve, providers.split_params

    def counting_render(*a, **kw):
        seen["render"].append(a[0])
        return render(*a, **kw)

    def counting_resolve(model):
        seen["resolve"].append(model)
        return resolve(model)

    def counting_split(rm, params):
        seen["split"].append(rm.name)
        return split(rm, params)

    monkeypatch.setattr(templating, "render_messages", counting_render)
    monkeypatch.setattr(providers, "resolve", counting_resolve)
    monkeypatch.setattr(providers, "split_params", counting_split)
    return seen


@pytest.fixture
def registry_gets(monkeypatch):
    from nbplayground.storage import registry

    calls: list[str] = []
    real = registry.get

    def counting_get(ref):
        calls.append(ref)
        return real(ref)

    monkeypatch.setattr(registry, "get", counting_get)
    return calls


# --------------------------------------------------------------------------------------------------
# The spec
# --------------------------------------------------------------------------------------------------
def test_a_spec_is_frozen_and_owns_a_read_only_copy_of_its_messages_and_params():
    messages = [{"role": "user", "content": [{"type": "text", "text": "Hi {{name}}"}]}]
    params = {"temperature": 0.2, "stop": ["x"]}
    variables = {"name": "Ada"}
    spec = RunSpec(messages=messages, variables=variables, targets=[TargetSpec("mock/echo", params)])
    messages[0]["content"][0]["text"] = "changed"  # the caller's objects change; the spec does not
    params["temperature"] = 2.0
    variables["name"] = "Bob"
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.messages = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.messages[0]["content"] = "patched"  # type: ignore[index]
    with pytest.raises(TypeError):
        spec.targets[0].params["temperature"] = 1.0  # type: ignore[index]
    with pytest.raises(TypeError):
        spec.variables["name"] = "Eve"  # type: ignore[index]
    assert isinstance(spec.targets, tuple) and isinstance(spec.messages, tuple)
    template = spec.template()
    template[0]["content"][0]["text"] = "a copy"  # plain dicts for whoever needs them, never the spec's own
    (req,) = plan(spec)
    assert req.messages == [{"role": "user", "content": [{"type": "text", "text": "Hi Ada"}]}]
    assert req.params == {"temperature": 0.2, "stop": ["x"]} and req.variables == {"name": "Ada"}
    assert req.template_messages == [{"role": "user", "content": [{"type": "text", "text": "Hi {{name}}"}]}]


def test_a_spec_refuses_what_is_no_message_list_when_it_is_built():
    with pytest.raises(E.BadParameterError, match="messages must be a list") as info:
        RunSpec(messages=["hi"])  # type: ignore[list-item]
    assert info.value.field == "messages"
    with pytest.raises(E.BadParameterError, match="params must be a dict"):
        TargetSpec("mock/echo", ["temperature"])  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# Once
# --------------------------------------------------------------------------------------------------
def test_a_compare_renders_once_resolves_and_checks_each_model_once(counts):
    results = nbp.compare("Hi {{name}}", models=["mock/echo", "mock/lorem", {"model": "mock/json"}],
                          variables={"name": "Ada"}, history=False)  # fmt: skip
    assert [r.status for r in results] == ["ok", "ok", "ok"]
    assert results[0].text == "Hi Ada"
    assert len(counts["render"]) == 1  # one rendering shared by every target
    assert counts["resolve"] == ["mock/echo", "mock/lorem", "mock/json"]  # the engine resolves nothing again
    assert counts["split"] == ["mock/echo", "mock/lorem", "mock/json"]
    assert len({r.group_id for r in results}) == 1 and results[0].group_id


def test_the_widget_renders_once_and_resolves_each_model_once_with_auto_kinds(counts):
    from nbplayground.widgets.playground import Playground

    pg = Playground("a lighthouse at {{time}}", variables={"time": "dusk"}, models=["mock/image", "mock/echo"])
    counts["render"].clear()
    counts["resolve"].clear()
    pg.run()
    assert pg.wait(10)
    image, text = pg.results
    assert image.kind == "image" and image.image is not None and text.text == "a lighthouse at dusk"
    assert len(counts["render"]) == 1
    assert counts["resolve"] == ["mock/image", "mock/echo"]  # the kind "auto" comes from the same resolution


def test_prompt_magic_looks_a_saved_prompt_up_once(registry_gets, recorder, monkeypatch):
    from nbplayground.magic import Prompt

    saved = nbp.prompts.save("demo/trip", messages=[{"role": "user", "content": "Plan {{city}}"}], model="mock/echo")
    monkeypatch.setattr(Prompt, "_show", lambda self, handle, args: handle.results(timeout=10))
    magic = Prompt(shell=None)
    magic.shell = types.SimpleNamespace(user_ns={"city": "Oslo"})
    registry_gets.clear()  # saving reads the new version back
    magic.prompt("--prompt demo/trip -o out", "")
    assert magic.ns["out"] == "Plan Oslo"
    assert registry_gets == ["demo/trip"]
    recorder.check_unchanged()
    (req,) = recorder.started
    assert req.prompt_ref == saved.ref and req.variables == {"city": "Oslo"} and req.surface == "magic"
    assert req.template_messages == [{"role": "user", "content": "Plan {{city}}"}]


def test_the_server_looks_a_saved_prompt_up_once_and_bounds_the_template_it_plans(registry_gets, recorder):
    from nbplayground.server.extension import NBPlayground
    from nbplayground.server.handlers import _prepare

    nbp.prompts.save("demo/greet", messages=[{"role": "user", "content": "Hello {{who}}"}], model="mock/echo")
    registry_gets.clear()  # saving reads the new version back
    body = {"prompt_id": "demo/greet", "variables": {"who": "API"}}
    (req,) = _prepare(body, NBPlayground(), model="mock/echo")
    assert registry_gets == ["demo/greet"]
    assert req.messages == [{"role": "user", "content": "Hello API"}] and req.surface == "server"
    assert req.resolved is not None and req.resolved.name == "mock/echo" and req.split is not None
    assert recorder.planned[0][0] is req
    from nbplayground.server.validation import LimitError

    nbp.prompts.save("demo/echo10", messages=[{"role": "user", "content": "{{who}} " * 10}])
    small = {"prompt_id": "demo/echo10", "variables": {"who": "x" * 10}}  # the body is short; its template is not
    with pytest.raises(LimitError, match="would render to 180 characters"):
        _prepare(small, NBPlayground(max_prompt_chars=100), model="mock/echo")


# --------------------------------------------------------------------------------------------------
# Nothing patched after plan()
# --------------------------------------------------------------------------------------------------
def test_python_runs_and_compares_start_the_requests_plan_returned(recorder):
    nbp.run("Hi {{x}}", model="mock/echo", variables={"x": 1}, history=False)
    nbp.compare("Hi", models=["mock/echo", "mock/lorem"], history=False)
    recorder.check_unchanged()
    assert [r.target_index for r in recorder.started] == [0, 0, 1]


def test_the_widget_run_comes_from_plan_with_its_provenance(recorder):
    from nbplayground.widgets.playground import Playground

    saved = nbp.prompts.save("demo/plan", messages=[{"role": "user", "content": "Plan {{city}}"}])
    pg = Playground(models=["mock/echo", "mock/lorem"], prompt="demo/plan", variables={"city": "Oslo"})
    pg.messages = [*pg.messages, {"role": "user", "content": ""}]  # an empty slot still to be written
    pg.run()
    assert pg.wait(10)
    recorder.check_unchanged()
    first, second = recorder.started
    assert [first.target_index, second.target_index] == [0, 1]
    assert first.group_id == second.group_id is not None
    for req in (first, second):
        assert req.variables == {"city": "Oslo"} and req.prompt_ref == saved.ref
        assert req.template_messages == [{"role": "user", "content": "Plan {{city}}"}]
        assert req.messages == [{"role": "user", "content": "Plan Oslo"}]
        assert req.surface == "widget" and req.thread_id == pg.id


def test_replay_keeps_the_stored_variables_template_and_version_and_renders_nothing_again(recorder):
    nbp.prompts.save("demo/say", messages=[{"role": "user", "content": "Say {{what}}"}])
    first = nbp.run(prompt="demo/say", model="mock/echo", variables={"what": "{{not a template}}"})
    speech = nbp.run(model="mock/tts", kind="speech", input="read {{who}}", variables={"who": "{{literally}}"})
    again = nbp.replay(first.id, model="mock/lorem")
    heard = nbp.replay(speech.id)  # its stored input holds braces: taken as it is, not as a template
    recorder.check_unchanged()
    assert again.status == "ok" and heard.status == "ok"
    stored = nbp.get_run(again.id)
    assert stored.variables == {"what": "{{not a template}}"} and stored.prompt_ref == first.prompt_ref
    assert stored.template["messages"] == [{"role": "user", "content": "Say {{what}}"}]
    assert stored.messages == [{"role": "user", "content": "Say {{not a template}}"}]
    assert stored.parent_id == first.id and stored.model == "mock/lorem"
    assert heard.text == "read {{literally}}" and nbp.get_run(heard.id).variables == {"who": "{{literally}}"}


# --------------------------------------------------------------------------------------------------
# Errors first
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kw", "error", "field"),
    [({"models": ["live", "nope/unknown-model"]}, E.UnknownModelError, "model"),
     ({"models": ["live", {"model": "live", "params": {"temperature": 7}}]}, E.BadParameterError,
      "params.temperature"),
     ({"models": ["live"], "response_format": 42}, E.BadParameterError, "response_format"),
     ({"models": ["live"] * 5}, E.BadParameterError, "models"),
     ({"models": ["live"], "variables": {}}, E.MissingVariablesError, "variables.name"),
     ({"models": ["live"], "tool_mode": "sometimes"}, E.BadParameterError, "tool_mode")],
)  # fmt: skip
def test_every_input_error_is_raised_before_anything_is_sent(kw, error, field):
    with OpenAIServer() as srv:
        nbp.configure(models={"live": {"model": "openai/m", "api_base": srv.url}})
        with pytest.raises(error) as info:
            nbp.compare("Hi {{name}}", **{"variables": {"name": "Ada"}, **kw})
        assert srv.bodies == [] and srv.connections == []
    assert info.value.field == field
    assert len(nbp.history()) == 0


# --------------------------------------------------------------------------------------------------
# The shared rules
# --------------------------------------------------------------------------------------------------
def test_media_targets_read_the_last_user_message_and_auto_kinds_come_from_the_model():
    spec = RunSpec(
        messages=[{"role": "user", "content": "first"}, {"role": "assistant", "content": "ok"},
                  {"role": "user", "content": [{"type": "text", "text": "a {{thing}}"}]}],
        variables={"thing": "lighthouse"},
        targets=[TargetSpec("mock/image", kind="image"), TargetSpec("mock/tts", kind="auto"),
                 TargetSpec("mock/echo", kind="auto")],
        tools=[lambda_free_tool], origin=Origin(surface="test", group_id="g1"),
    )  # fmt: skip
    image, speech, chat = plan(spec)
    assert (image.kind, speech.kind, chat.kind) == ("image", "speech", "chat")
    assert image.input == speech.input == "a lighthouse" and chat.input is None
    assert image.tools is None and chat.tools is not None  # tools reach chat targets only
    assert {r.group_id for r in (image, speech, chat)} == {"g1"}
    assert P.media_input([{"role": "user", "content": "only"}, {"role": "system", "content": "s"}]) == "only"
    assert P.media_input([]) == ""


def lambda_free_tool(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def test_one_list_of_roles_one_target_limit_and_one_schema_function():
    assert set(P.ROLES) == {"system", "user", "assistant", "tool", "developer"} and P.MAX_TARGETS == 4
    with pytest.raises(E.BadParameterError, match="Message role must be") as info:
        nbp.run(messages=[{"role": "user", "content": "hi"}, {"role": "robot", "content": "x"}], model="mock/echo")
    assert info.value.field == "messages[1].role"
    with pytest.raises(E.BadParameterError, match="role"):
        nbp.prompts.save("demo/bad", messages=[{"role": "robot", "content": "x"}])

    class City(BaseModel):
        name: str

    assert P.schema_of(City)["properties"]["name"]["type"] == "string"
    assert P.schema_of(P.freeze({"type": "object"})) == {"type": "object"}
    assert P.schema_of(None) is None
    from nbplayground.core import engine

    assert not hasattr(engine, "_schema_of")  # the engine uses the one public function


def test_a_provenance_spec_sends_its_thread_as_stored():
    spec = RunSpec(thread=[{"role": "user", "content": "{{kept}}"}], targets=[TargetSpec("mock/echo")],
                   provenance=Provenance(variables={"kept": "v"}, template=[{"role": "user", "content": "{{kept}}"}]))  # fmt: skip
    (req,) = plan(spec)
    assert req.messages == [{"role": "user", "content": "{{kept}}"}] and req.variables == {"kept": "v"}
    with pytest.raises(E.BadParameterError, match="thread, not messages"):
        plan(dataclasses.replace(spec, messages=[{"role": "user", "content": "x"}]))


# --------------------------------------------------------------------------------------------------
# One spec, many rows (DataFrame batches)
# --------------------------------------------------------------------------------------------------
def test_a_planner_plans_once_and_gives_each_row_what_plan_gives_for_its_variables(counts):
    spec = RunSpec(
        messages=[{"role": "system", "content": "Be {{tone}}"}, {"role": "user", "content": "Q: {{q.text}}"}],
        targets=[TargetSpec("mock/echo", {"temperature": 0.1, "stop": ["x"]}, {"type": "object", "properties": {}})],
        tools=[lambda_free_tool], origin=Origin(surface="dataframe", group_id="batch-1"),
        policy=P.Policy(max_attempts=6, stream=False),
    )  # fmt: skip
    rows = [{"tone": "brief", "q": {"text": f"question {i}"}} for i in range(3)]
    planner = P.Planner(spec)
    made = [planner.requests(planner.render(row), row_key=str(i))[0] for i, row in enumerate(rows)]
    assert counts["resolve"] == ["mock/echo"] and counts["split"] == ["mock/echo"]  # once, not per row
    assert len(counts["render"]) == 3
    for i, (row, req) in enumerate(zip(rows, made, strict=True)):
        (expected,) = plan(dataclasses.replace(spec, variables=row))
        got, want = _snapshot(req), _snapshot(expected)
        assert (got.pop("row_key"), want.pop("row_key")) == (str(i), None)
        assert got.pop("run_id") != want.pop("run_id")
        assert got == want
        assert req.split == expected.split and req.resolved is made[0].resolved and req.stream is False
    assert req.variables == {"tone": "brief", "q.text": "question 2"} and req.max_attempts == 6
    assert made[0].messages is not made[1].messages and made[0].params is not made[1].params

    counts["resolve"].clear()
    again = planner.regrouped("batch-2")
    (other,) = again.requests(again.render(rows[0]))
    assert other.group_id == "batch-2" and again.spec.origin.group_id == "batch-2"
    assert planner.group_id == "batch-1" and counts["resolve"] == []  # nothing resolved again


def test_a_planner_raises_spec_errors_once_and_row_errors_per_row():
    with pytest.raises(E.UnknownModelError) as info:
        P.Planner(RunSpec(messages=[{"role": "user", "content": "{{x}}"}], targets=[TargetSpec("nope/unknown")]))
    assert info.value.field == "model"
    with pytest.raises(E.BadParameterError) as bad:
        P.Planner(RunSpec(messages=[{"role": "user", "content": "x"}], targets=[TargetSpec("mock/echo")],
                          tool_mode="sometimes"))  # fmt: skip
    assert bad.value.field == "tool_mode"
    with pytest.raises(E.BadParameterError, match="plan\\(\\)") as replay:
        P.Planner(RunSpec(thread=[{"role": "user", "content": "x"}], provenance=Provenance()))
    assert replay.value.field == "provenance"
    planner = P.Planner(RunSpec(messages=[{"role": "user", "content": "{{x}}"}], targets=[TargetSpec("mock/echo")]))
    with pytest.raises(E.MissingVariablesError) as row:
        planner.render({"y": 1})
    assert row.value.field == "variables.x"
    with pytest.raises(E.BadParameterError, match="empty after filling"):
        planner.requests(planner.render({"x": "  "}))


def test_a_dataframe_batch_resolves_and_splits_once_and_renders_each_row_once(counts):
    import pandas as pd

    df = pd.DataFrame({"q": [f"question {i}" for i in range(30)]})
    out = df.prompt.run("a", prompt="{{q}}", model="mock/echo", params={"temperature": 0.5}, progress=False)
    assert out["a"].tolist() == df["q"].tolist()
    assert counts["resolve"] == ["mock/echo"]
    assert counts["split"] == ["mock/echo"]  # the engine takes the batch's split: none per row
    assert len(counts["render"]) == 30
