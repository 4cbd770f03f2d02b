"""What a new user meets first: the defaults, the obvious mistakes and the offline demos tell the truth."""

from __future__ import annotations

import warnings

import pytest
from pydantic import BaseModel

import nbplayground as nbp
from nbplayground.core import errors as E


def get_weather(city: str, unit: str = "C") -> str:
    """Current weather for a city.

    Args:
        city: City name.
    """
    return f"21 {unit} and sunny in {city}"


class Person(BaseModel):
    name: str
    age: int


def test_the_tool_demo_reads_like_a_model_answered():
    r = nbp.run("What's the weather in Paris?", model="mock/tools", tools=[get_weather], history=False)
    assert r.status == "ok", r.error
    assert r.tool_calls[0].parsed_arguments() == {"city": "Paris", "unit": "C"}
    assert r.text == "The get_weather tool returned: 21 C and sunny in Paris"


def test_the_structured_output_demo_fills_fields_from_the_prompt():
    r = nbp.run("Ada Lovelace, 36", model="mock/json", response_format=Person, history=False)
    assert r.data == Person(name="Ada Lovelace", age=36)
    trip = {"type": "object", "properties": {"origin": {"type": "string"}, "destination": {"type": "string"},
                                             "seats": {"type": "integer", "minimum": 1}}}  # fmt: skip
    r = nbp.run("Book 2 seats from Lisbon to Rome", model="mock/json", response_format=trip, history=False)
    assert r.data == {"origin": "Lisbon", "destination": "Rome", "seats": 2}


def test_the_built_in_default_model_says_once_that_it_ran(monkeypatch):
    from nbplayground.core import plan

    monkeypatch.setattr(plan, "_said_default", [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = nbp.run("hi", history=False)
        nbp.run("hi again", history=False)
    said = [str(w.message) for w in caught if "no model was given" in str(w.message)]
    assert first.model == "mock/echo" and len(said) == 1
    assert "mock/echo" in said[0] and "default_model" in said[0] and "%config Prompt.model" in said[0]
    monkeypatch.setattr(plan, "_said_default", [])
    nbp.configure(default_model="mock/lorem")  # a chosen default is not news
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nbp.run("hi", history=False)
    assert not [w for w in caught if "no model was given" in str(w.message)]


@pytest.mark.parametrize(
    ("text", "says"),
    [(12345, r"must be text \(a str\), got int"), ("", "The prompt is empty"), ("   \n", "The prompt is empty"),
     (None, "Nothing to run")],
)  # fmt: skip
def test_junk_prompts_are_refused_before_anything_runs(text, says):
    with pytest.raises(E.BadParameterError, match=says) as info:
        nbp.run(text, model="mock/echo")
    assert "\n" not in str(info.value)
    assert len(nbp.history()) == 0


def test_a_prompt_that_renders_empty_is_refused():
    with pytest.raises(E.BadParameterError, match="empty after filling its placeholders"):
        nbp.run("{{note}}", variables={"note": "  "}, model="mock/echo")
    assert len(nbp.history()) == 0


def test_the_docs_stand_alone_every_relative_link_resolves_inside_the_repository():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    docs = [root / "README.md", root / "SECURITY.md", root / "benchmarks" / "README.md", *root.glob("docs/*.md")]
    broken = []
    for doc in docs:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a web address or an anchor
            path = (doc.parent / target.split("#")[0]).resolve()
            if not path.is_relative_to(root) or not path.exists():
                broken.append(f"{doc.name}: {target}")
    assert not broken, broken
    assert "../shared" not in (root / "README.md").read_text(encoding="utf-8")


def test_unknown_costs_and_counts_are_not_shown_as_numbers():
    from nbplayground.core import display

    speech = nbp.run(model="mock/tts", kind="speech", input="hello there", history=False)
    heard = nbp.run(model="mock/stt", kind="transcription", input=speech.audio.data, history=False)
    foot = display.footer(heard)
    assert "?" not in foot and f"{heard.tokens_out} tok out" in foot  # only what is known
    with OpenAIServerNoPrice() as url:
        nbp.configure(models={"local": {"model": "openai/my-local", "api_base": url}})
        out = nbp.compare("hi", models=["local", "mock/echo"], history=False)
    local = out[0]
    assert local.status == "ok" and local.cost_usd is None
    html = out._repr_html_() if hasattr(out, "_repr_html_") else display.compare_bundle(
        ["local", "mock/echo"], ["", ""], list(out))[0]["text/html"]
    assert "cost unknown" in html and "$0.000000" not in html


class OpenAIServerNoPrice:
    """A local OpenAI-compatible server for a model nobody priced."""

    def __enter__(self) -> str:
        from support.oai_server import OpenAIServer

        self.srv = OpenAIServer(tokens=3)
        self.srv.start()
        return self.srv.url

    def __exit__(self, *exc: object) -> None:
        self.srv.stop()


def test_providers_and_the_readme_sql_example_show_real_values():
    import re
    from pathlib import Path

    frame = nbp.providers()
    assert frame["key_env"].map(lambda v: isinstance(v, str) and v != "nan").all()
    assert frame.loc[frame["provider"] == "mock", "key_env"].item() == "none"
    nbp.run("hello", model="mock/echo")
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    query = re.search(r'nbp\.sql\("(select model, count\(\*\)[^"]+)"\)', readme)
    assert query, "the README's SQL example moved: update this test"
    out = nbp.sql(query.group(1))
    assert not [c for c in out.columns if "(" in c]  # no count_star() / avg(latency_ms) headers
