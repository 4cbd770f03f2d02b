"""Templates: every rule of DESIGN.md section 3, by example and by property."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbplayground.core.errors import MissingVariablesError
from nbplayground.core.templating import escape, lookup, placeholders, render, render_messages


@pytest.mark.parametrize(
    ("template", "variables", "expected"),
    [
        ("Hi {{name}}", {"name": "Ada"}, "Hi Ada"),
        ("Hi {{ name }}!", {"name": "Ada"}, "Hi Ada!"),
        ("{{config.topic}}", {"config": {"topic": "tides"}}, "tides"),
        ("{{config.prompt}}", {"config": '{"prompt": "from json"}'}, "from json"),
        ("{{config.a.b}}", {"config": '{"a": {"b": 3}}'}, "3"),
        ("{{items.0}} {{items[1]}}", {"items": ["x", "y"]}, "x y"),
        ('{{row["first name"]}}', {"row": {"first name": "Grace"}}, "Grace"),
        ("{{row['k']}}", {"row": {"k": 1}}, "1"),
        ("{{a.b}}", {"a.b": "literal", "a": {"b": "nested"}}, "literal"),
        ("{{cfg.x.y}}", {"cfg": {"x.y": "inner literal", "x": {"y": "nested"}}}, "inner literal"),
        ("{{a.b.c}}", {"a.b": {"c": "dotted root"}}, "dotted root"),
        ("{{d}}", {"d": {"k": [1, "é"]}}, '{"k": [1, "é"]}'),
        ("{{n}} {{f}} {{b}} {{z}}", {"n": 3, "f": 0.5, "b": True, "z": None}, "3 0.5 True None"),
        ("{{v}}", {"v": "{{x}} stays"}, "{{x}} stays"),
        (
            'JSON {"a": {"b": 1}} f"{x}" {%raw%} {# c #} }}',
            {},
            'JSON {"a": {"b": 1}} f"{x}" {%raw%} {# c #} }}',
        ),
        ("{{ }} {{#each items}} {{x + 1}} {{ 'a' }} {{", {}, "{{ }} {{#each items}} {{x + 1}} {{ 'a' }} {{"),
        ("\\{{name}} is literal", {}, "{{name}} is literal"),
        ("\\\\{{name}}", {"name": "Ada"}, "\\Ada"),
        (
            '{{{name}}} f"{{{x}}}"',
            {"name": "Ada"},
            '{{{name}}} f"{{{x}}}"',
        ),  # triple braces: code, left alone
        ("{{ünï}}", {"ünï": "code"}, "code"),
        ("{{dash-name}}", {"dash-name": 1}, "1"),
    ],
)
def test_render_examples(template, variables, expected):
    assert render(template, variables) == expected


def test_attribute_and_getitem_fallbacks():
    pd = pytest.importorskip("pandas")
    row = pd.Series({"question": "why?", "meta": '{"lang": "en"}'})

    class Obj:
        title = "T"
        _private = "hidden"

    assert render("{{row.question}} {{row.meta.lang}} {{o.title}}", {"row": row, "o": Obj()}) == "why? en T"
    with pytest.raises(MissingVariablesError):
        render("{{o._private}}", {"o": Obj()})


def test_missing_variables_listed_at_once_with_available():
    with pytest.raises(MissingVariablesError) as info:
        render("{{a}} {{b.c}} {{d.0}} {{a}}", {"b": {}, "d": [], "e": 1})
    err = info.value
    assert err.missing == ["a", "b.c", "d.0"]
    assert err.available == ["b", "d", "e"]
    assert str(err) == "Missing template variables: a, b.c, d.0. Available variables: b, d, e."


def test_render_messages_roles_parts_and_one_error():
    msgs = [
        {"role": "system", "content": "sys {{a}}"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "part {{a}}"},
                {"type": "image_url", "image_url": {"url": "x{{a}}"}},
            ],
        },
        {"role": "assistant", "content": "model said {{a}}"},
        {"role": "tool", "tool_call_id": "1", "content": "{{a}}"},
    ]
    out = render_messages(msgs, {"a": 1})
    assert out[0]["content"] == "sys 1"
    assert out[1]["content"][0]["text"] == "part 1" and out[1]["content"][1]["image_url"]["url"] == "x{{a}}"
    assert out[2]["content"] == "model said {{a}}" and out[3]["content"] == "{{a}}"
    assert msgs[0]["content"] == "sys {{a}}"  # input untouched
    with pytest.raises(MissingVariablesError) as info:
        render_messages([{"role": "system", "content": "{{x}}"}, {"role": "user", "content": "{{y}}"}], {})
    assert info.value.missing == ["x", "y"]


def test_lookup_and_placeholders():
    assert lookup({"a": {"b": [5]}}, "a.b.0") == 5
    with pytest.raises(KeyError):
        lookup({}, "a")
    assert placeholders("{{a}} {{b.c}} {{a}} \\{{d}} {{ e[0] }}") == ["a", "b.c", "e[0]"]


# --- properties ------------------------------------------------------------------------------------
names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)


@given(st.text().filter(lambda t: "{{" not in t), st.dictionaries(names, st.text()))
def test_text_without_placeholders_is_unchanged(text, variables):
    assert render(text, variables) == text


@given(st.text())
@settings(max_examples=300)
def test_escape_round_trips_any_text(text):
    assert render(escape(text), {}) == text
    assert placeholders(escape(text)) == []


@given(st.text(), names, st.text(), st.text())
@settings(max_examples=300)
def test_values_are_inserted_verbatim_never_rerendered(value, name, before, after):
    template = escape(before, before_placeholder=True) + "{{" + name + "}}" + escape(after)
    assert render(template, {name: value}) == before + value + after


@given(st.lists(st.tuples(st.text(max_size=20), names), max_size=6), st.text(max_size=20))
def test_placeholders_found_in_random_text(pieces, tail):
    template = "".join(escape(text, True) + "{{" + name + "}}" for text, name in pieces) + escape(tail)
    expected = list(dict.fromkeys(name for _, name in pieces))
    assert placeholders(template) == expected


@given(st.sets(names, min_size=1, max_size=6), st.sets(names, max_size=4))
def test_missing_error_lists_every_missing_name(wanted, present):
    template = " ".join("{{" + n + "}}" for n in sorted(wanted))
    variables = {n: "v" for n in present}
    missing = sorted(wanted - present)
    if not missing:
        assert render(template, variables) == " ".join("v" for _ in wanted)
        return
    with pytest.raises(MissingVariablesError) as info:
        render(template, variables)
    assert info.value.missing == missing
    assert all(re.search(rf"\b{re.escape(n)}\b", str(info.value)) for n in missing)
