"""Templates: every rule of the README's Templates section, by example and by property."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path
from types import MappingProxyType, SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbplayground.core import templating
from nbplayground.core.errors import MissingVariablesError, TemplateError
from nbplayground.core.templating import escape, lookup, placeholders, render, render_messages

# --- placeholders and paths -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "variables", "expected"),
    [
        ("Hi {{name}}", {"name": "Ada"}, "Hi Ada"),
        ("Hi {{ name }}!", {"name": "Ada"}, "Hi Ada!"),
        ("Hi {{\n\tname\n}}", {"name": "Ada"}, "Hi Ada"),
        ("{{config.topic}}", {"config": {"topic": "tides"}}, "tides"),
        ("{{ config.topic }}", {"config": OrderedDict(topic="tides")}, "tides"),
        ("{{m.k}}", {"m": MappingProxyType({"k": "proxy"})}, "proxy"),
        ("{{items.0}} {{items[1]}} {{items.1}}", {"items": ["x", "y"]}, "x y y"),
        ("{{pair.1}}", {"pair": ("a", "b")}, "b"),
        ("{{grid.1.0}} {{grid[1][0]}}", {"grid": [[1], [2]]}, "2 2"),
        ('{{row["first name"]}}', {"row": {"first name": "Grace"}}, "Grace"),
        ("{{row['k']}}", {"row": {"k": 1}}, "1"),
        ('{{row[ "a]b" ]}}', {"row": {"a]b": "bracket"}}, "bracket"),
        ('{{row["x.y"].z}}', {"row": {"x.y": {"z": "quoted dotted key"}}}, "quoted dotted key"),
        ("{{ünï.wört}}", {"ünï": {"wört": "unicode"}}, "unicode"),
        ("{{dash-name.sub-key}}", {"dash-name": {"sub-key": 1}}, "1"),
        ("{{_private_var}}", {"_private_var": "root names may start with _"}, "root names may start with _"),
        ("{{d.0}}", {"d": {"0": "string key"}}, "string key"),
        ("{{d.0}} {{d[1]}}", {"d": {0: "int key", 1: "int key"}}, "int key int key"),
    ],
)
def test_paths(template, variables, expected):
    assert render(template, variables) == expected


@pytest.mark.parametrize(
    ("template", "variables", "expected"),
    [
        ("{{config.prompt}}", {"config": '{"prompt": "from json"}'}, "from json"),
        ("{{config.a.b}}", {"config": '  {"a": {"b": 3}}'}, "3"),
        ("{{config.a.b}}", {"config": {"a": '{"b": "json inside a dict"}'}}, "json inside a dict"),
        ("{{arr.1.x}}", {"arr": '[{"x": 0}, {"x": 1}]'}, "1"),
        ("{{config}}", {"config": '{"prompt": "kept"}'}, '{"prompt": "kept"}'),  # the string itself
        ("{{cfg.a.b}}", {"cfg": '{"a.b": "dotted key in JSON", "a": {"b": "nested"}}'}, "dotted key in JSON"),
    ],
)
def test_json_string_values_are_traversed(template, variables, expected):
    assert render(template, variables) == expected


@pytest.mark.parametrize(
    ("template", "variables", "expected"),
    [
        ("{{a.b}}", {"a.b": 1, "a": {"b": 2}}, "1"),
        ("{{cfg.x.y}}", {"cfg": {"x.y": 3, "x": {"y": 4}}}, "3"),
        ("{{a.b.c}}", {"a.b": {"c": "dotted root"}, "a": {"b": {"c": "nested"}}}, "dotted root"),
        ("{{a.b.c}}", {"a.b.c": "longest", "a.b": {"c": "shorter"}}, "longest"),
        ("{{a.b.c}}", {"a": {"b.c": "inner literal", "b": {"c": "nested"}}}, "inner literal"),
        # the literal key exists but the rest of the path is not under it: the nested path is used
        ("{{a.b.c}}", {"a.b": {}, "a": {"b": {"c": "fallback"}}}, "fallback"),
        ("{{v.1.0}}", {"v": {"1.0": "version key", "1": ["list"]}}, "version key"),
    ],
)
def test_literal_dotted_key_wins_at_every_level(template, variables, expected):
    assert render(template, variables) == expected


def test_getitem_and_attribute_fallbacks():
    class Row:
        """Not a Mapping, but indexable by label (like a pandas Series)."""

        label = "attribute"

        def __getitem__(self, key):
            if key in ("question", "meta", "a.b"):
                return {"question": "why?", "meta": '{"lang": "en"}', "a.b": "dotted label"}[key]
            raise KeyError(key)

    obj = SimpleNamespace(title="T", nested=SimpleNamespace(deep="D"), _private="hidden")
    variables = {"row": Row(), "o": obj}
    assert render("{{row.question}} {{row.meta.lang}} {{row['question']}}", variables) == "why? en why?"
    assert render("{{row.label}} {{row.a.b}}", variables) == "attribute dotted label"
    assert render("{{o.title}} {{o.nested.deep}}", variables) == "T D"
    assert lookup(variables, "o.nested") is obj.nested


@pytest.mark.parametrize(
    "path",
    [
        "o._private",  # names starting with _ are never followed
        "o.__class__",
        "o.__dict__",
        "o.method",  # methods are not values
        "s.upper",  # no attributes of strings
        "s.0",  # strings are not indexed
        "d.keys",  # no attributes of mappings
        "d.__len__",
        "l.append",  # nor of lists
        "l.-1",  # no negative indexes
        "n.__class__",
    ],
)
def test_private_names_and_methods_are_never_followed(path):
    class Obj:
        _private = "hidden"

        def method(self):
            return "called"

    variables = {"o": Obj(), "s": "text", "d": {"k": 1}, "l": [1], "n": 1}
    with pytest.raises(MissingVariablesError) as info:
        render("{{" + path + "}}", variables)
    assert info.value.missing == [path]
    with pytest.raises(KeyError):
        lookup(variables, path)


def test_pandas_row():
    pd = pytest.importorskip("pandas")
    row = pd.DataFrame([{"question": "why?", "first name": "Ada", "meta": '{"lang": "en"}'}]).iloc[0]
    out = render('{{row.question}} {{row["first name"]}} {{row.meta.lang}}', {"row": row})
    assert out == "why? Ada en"
    with pytest.raises(MissingVariablesError):
        render("{{row.nope}} {{row._mgr}}", {"row": row})


# --- value formatting ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "plain"),
        ("", ""),
        (3, "3"),
        (0.5, "0.5"),
        (True, "True"),
        (None, "None"),
        ({"k": [1, "é"], "n": None}, '{"k": [1, "é"], "n": null}'),
        ([1, "two", {"3": True}], '[1, "two", {"3": true}]'),
        ((1, 2), "(1, 2)"),
        ({"when": SimpleNamespace(x=1)}, '{"when": "namespace(x=1)"}'),  # unserializable leaves via str()
    ],
)
def test_value_formatting(value, expected):
    assert render("{{v}}", {"v": value}) == expected


def test_values_are_never_rendered_again():
    variables = {"v": "{{x}} and \\{{y}} and {{{z}}}", "x": "NO", "d": {"t": "{{x}}"}}
    assert render("{{v}}", variables) == "{{x}} and \\{{y}} and {{{z}}}"
    assert render("{{d}}", variables) == '{"t": "{{x}}"}'
    assert render("{{v}}{{x}}", variables) == "{{x}} and \\{{y}} and {{{z}}}NO"


# --- everything else stays verbatim -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        'JSON {"a": {"b": 1}} and [{"c": {}}]',
        'f"{x}" and "{0}".format(1) and f"{{ {x} }}" and {{{ x + 1 }}}',
        "```css\nbody { color: red; }\n.a{b:c}\n```",
        "{% for x in y %}{{ %} {# comment #}",
        "}} and }}} and {{",
        "{{ }} {{}} {{#each items}} {{/each}} {{x + 1}} {{ 'a' }} {{x y}} {{1abc}} {{-x}} {{x.}} {{x..y}}",
        '{{ x[-1] }} {{x[a]}} {{x["a]}} {{x[0}} {{x.y }',
        "{{{{ {{{ {{{{}}}}",
        "C:\\Users\\ada\\{file} and regex \\d+\\{2\\}",
        "{{ name }",
    ],
)
def test_non_placeholders_stay_verbatim(text):
    variables = {"x": "NO", "name": "NO", "items": "NO", "a": "NO", "y": "NO"}
    assert render(text, variables) == text
    assert placeholders(text) == []


def test_placeholder_next_to_braces():
    # in a run of three or more "{" only the last two open a placeholder
    assert render("{{{x}}} {{{{x}}}} x^{{{x}}}", {"x": 1}) == "{1} {{1}} x^{1}"
    assert render("\\{{{x}}\\}", {"x": 1}) == "\\{1\\}"  # LaTeX: the backslash is before a literal brace
    assert render("{\\{{x}}} f'{\\{{x}}}'", {}) == "{{{x}}} f'{{{x}}}'"  # code: escape the last two braces
    assert placeholders("{{{a}}} {{{{b}}}}") == ["a", "b"]
    assert render('{"a": {{x}}}', {"x": 1}) == '{"a": 1}'
    assert render('{"a": {"b": {{x}}}}', {"x": 1}) == '{"a": {"b": 1}}'
    assert render("{ {{x}} }", {"x": 1}) == "{ 1 }"
    assert render("{{x}}{{y}}", {"x": 1, "y": 2}) == "12"


# --- escapes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("\\{{name}} is literal", "{{name}} is literal"),
        ("\\{{ name }}", "{{ name }}"),
        ("\\{{not a path}}", "{{not a path}}"),
        ("\\\\{{name}}", "\\Ada"),  # two backslashes: one backslash, then the value
        ("\\\\\\{{name}}", "\\{{name}}"),  # three: one backslash, then literal braces
        ("\\\\\\\\{{name}}", "\\\\Ada"),
        ("\\{{ {{name}}", "{{ Ada"),
        ("\\{{\\{{name}}", "{{{{name}}"),
        ("{\\{{name}}}", "{{{name}}}"),
        ("{{\\{{name}}", "{{{{name}}"),  # "{{" before a backslash is not a placeholder either
        # backslashes before a run of three or more braces precede a literal brace: they stay
        ("\\{{{name}}}", "\\{Ada}"),
        ("\\\\{{{{name}}", "\\\\{{Ada"),
        ("a \\ b \\\\ c \\{", "a \\ b \\\\ c \\{"),  # backslashes elsewhere stay
    ],
)
def test_backslash_escapes(template, expected):
    assert render(template, {"name": "Ada"}) == expected


def test_escape_examples():
    assert escape("{{x}}") == "\\{{x}}"
    assert escape("no braces { } \\ here") == "no braces { } \\ here"
    assert escape("\\{{x}}") == "\\\\\\{{x}}"
    assert escape("{{{x}}}") == "{\\{{x}}}"
    assert escape("\\{{{{") == "\\\\\\{{\\{{"
    for text in ["{{x}}", "\\{{x}}", "{{{x}}}", "{{{{", "\\\\{{ y }}", "a\\", "{\\{{"]:
        assert render(escape(text), {}) == text
        assert placeholders(escape(text)) == []


# --- missing variables ------------------------------------------------------------------------------


def test_missing_variables_listed_at_once_with_available():
    with pytest.raises(MissingVariablesError) as info:
        render("{{a}} {{b.c}} {{d.0}} {{a}} {{e.f}} {{g[0]}}", {"b": {}, "d": [], "e": 1, "g": "text"})
    err = info.value
    assert err.missing == ["a", "b.c", "d.0", "e.f", "g[0]"]
    assert err.available == ["b", "d", "e", "g"]
    assert str(err) == (
        "Missing template variables: a, b.c, d.0, e.f, g[0]. Available variables: b, d, e, g."
    )
    assert isinstance(err, TemplateError) and not isinstance(err, KeyError)
    assert err.field == "variables.a" and err.http_status == 400


def test_missing_with_no_variables():
    with pytest.raises(
        MissingVariablesError, match=r"Missing template variable: x\. Available variables: none"
    ):
        render("{{x}}", {})


def test_missing_json_and_index_paths():
    with pytest.raises(MissingVariablesError) as info:
        render("{{c.nope}} {{c.list.5}} {{bad.k}}", {"c": '{"list": [1]}', "bad": "{not json"})
    assert info.value.missing == ["bad.k", "c.list.5", "c.nope"]


# --- render_messages --------------------------------------------------------------------------------


def test_render_messages_roles_parts_and_other_keys():
    image = {"type": "image_url", "image_url": {"url": "https://x/{{a}}.png"}}
    tool_calls = [{"id": "1", "type": "function", "function": {"name": "f", "arguments": '{"q": "{{a}}"}'}}]
    msgs = [
        {"role": "system", "content": "sys {{a}}"},
        {"role": "developer", "content": "dev {{a}}"},
        {"role": "user", "name": "ada", "content": [{"type": "text", "text": "part {{a}}"}, image]},
        {"role": "assistant", "content": "model said {{a}}", "tool_calls": tool_calls},
        {"role": "tool", "tool_call_id": "1", "content": "{{missing_but_not_rendered}}"},
        {"role": "function", "name": "f", "content": "{{a}}"},
        {"role": "user", "content": None},
    ]
    before = copy.deepcopy(msgs)
    out = render_messages(msgs, {"a": 1})
    assert msgs == before  # input untouched
    assert out == [
        {"role": "system", "content": "sys 1"},
        {"role": "developer", "content": "dev 1"},
        {"role": "user", "name": "ada", "content": [{"type": "text", "text": "part 1"}, image]},
        {"role": "assistant", "content": "model said {{a}}", "tool_calls": tool_calls},
        {"role": "tool", "tool_call_id": "1", "content": "{{missing_but_not_rendered}}"},
        {"role": "function", "name": "f", "content": "{{a}}"},
        {"role": "user", "content": None},
    ]
    assert all(new is not old for new, old in zip(out, msgs, strict=True))
    assert out[2]["content"] is not msgs[2]["content"]


def test_render_messages_one_error_for_all_messages():
    msgs = [
        {"role": "system", "content": "{{x}} {{shared}}"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "{{y}}"}, {"type": "text", "text": "{{shared}}"}],
        },
        {"role": "assistant", "content": "{{not_reported}}"},
    ]
    with pytest.raises(MissingVariablesError) as info:
        render_messages(msgs, {"z": 1})
    assert info.value.missing == ["shared", "x", "y"]
    assert info.value.available == ["z"]


# --- lookup and placeholders ------------------------------------------------------------------------


def test_lookup():
    data = {"a": {"b": [5, {"c": "deep"}]}, "a.b": "literal", "j": '{"k": [1]}'}
    assert lookup(data, "a.b") == "literal"
    assert lookup(data, "a.b.1.c") == "deep"  # "a.b" holds no ".1.c", so the nested path is used
    assert lookup(data, " j.k.0 ") == 1
    assert lookup(data, "j") == '{"k": [1]}'
    with pytest.raises(KeyError) as info:
        lookup(data, "a.x")
    assert info.value.args == ("a.x",)
    with pytest.raises(KeyError):
        lookup({}, "a")
    with pytest.raises(TemplateError):
        lookup(data, "a + 1")


def test_placeholders():
    template = "{{a}} {{b.c}} {{a}} \\{{d}} {{ e[0] }} {{{f}}} {{g h}} {{ b.c }} {{i['k']}}"
    assert placeholders(template) == ["a", "b.c", "e[0]", "f", "i['k']"]
    assert placeholders("") == []


def test_parse_is_cached_and_module_is_light():
    templating._parse.cache_clear()
    placeholders("{{cached}}")
    render("{{cached}}", {"cached": 1})
    assert templating._parse.cache_info().hits >= 1
    code = (
        "import sys, nbplayground.core.templating\n"
        "heavy = {'jinja2', 'pandas', 'pydantic', 'litellm', 'IPython', 'ipywidgets', 'duckdb'}\n"
        "print(sorted(heavy & set(sys.modules)))"
    )
    src = str(Path(templating.__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "[]"


# --- properties ------------------------------------------------------------------------------------
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_\-]{0,8}", fullmatch=True)
any_value = (
    st.text() | st.text(alphabet="{}\\x $%#'\"") | st.sampled_from(["{{x}}", "\\{{x}}", "{{{x}}}", "\\"])
)


def _literal(text: str) -> str:
    """``text`` made literal and safe to put right before a placeholder, as the module docstring says:
    trailing backslashes doubled, or a trailing brace run (with its backslashes) written raw."""
    tail = re.search(r"(\\*)(\{*)\Z", text)
    assert tail is not None
    head, slashes, braces = text[: tail.start()], tail.group(1), tail.group(2)
    return escape(head) + (slashes + braces if braces else slashes * 2)


@given(st.text().filter(lambda t: "{{" not in t), st.dictionaries(names, st.text()))
def test_text_without_placeholders_is_unchanged(text, variables):
    assert render(text, variables) == text
    assert placeholders(text) == []


@given(st.text() | st.text(alphabet="{}\\ax "))
@settings(max_examples=500)
def test_escape_round_trips_any_text(text):
    assert render(escape(text), {}) == text
    assert placeholders(escape(text)) == []


@given(any_value, names)
@settings(max_examples=300)
def test_values_are_inserted_verbatim(value, name):
    assert render("a {{" + name + "}} b", {name: value}) == f"a {value} b"


@given(any_value, names, st.text(alphabet="{}\\ab "), st.text(alphabet="{}\\ab "))
@settings(max_examples=300)
def test_values_are_inserted_verbatim_in_any_literal_text(value, name, before, after):
    template = _literal(before) + "{{ " + name + " }}" + escape(after)
    assert render(template, {"a": "NO", "b": "NO", name: value}) == before + value + after


@given(st.lists(st.tuples(st.text(max_size=20) | st.text(alphabet="{}\\a ", max_size=8), names), max_size=6))
def test_placeholders_found_in_random_text(pieces):
    template = "".join(_literal(text) + "{{" + name + "}}" for text, name in pieces)
    assert placeholders(template) == list(dict.fromkeys(name for _, name in pieces))


@given(st.sets(names, min_size=1, max_size=8), st.sets(names, max_size=5))
def test_missing_error_lists_every_missing_name(wanted, present):
    template = " {x} ".join("{{" + n + "}}" for n in sorted(wanted))
    variables = {n: "v" for n in present}
    missing = sorted(wanted - present)
    if not missing:
        assert render(template, variables) == " {x} ".join("v" for _ in wanted)
        return
    with pytest.raises(MissingVariablesError) as info:
        render(template, variables)
    assert info.value.missing == missing
    assert info.value.available == sorted(present)
    listed = re.search(r"variables?: (.*?)\. Available", str(info.value))
    assert listed is not None and listed.group(1).split(", ") == missing


# ---------------------------------------------------------------------------------------------------
# What a run keeps: each placeholder's value, which renders the template again
# ---------------------------------------------------------------------------------------------------
def test_resolved_holds_each_placeholder_value_and_renders_the_same_text():
    variables = {"cfg": {"prompt": "hi", "openai_key": "k"}, "items": ["a", "b"], "row": {"first name": "Ada"},
                 "a.b": 3, "n": 7}  # fmt: skip
    template = '{{cfg.prompt}} {{items[1]}} {{items.0}} {{row["first name"]}} {{a.b}} {{n}} {{n}}'
    resolved: dict = {}
    text = render(template, variables, resolved=resolved)
    assert resolved == {"cfg.prompt": "hi", "items[1]": "b", "items.0": "a", 'row["first name"]': "Ada",
                        "a.b": 3, "n": 7}  # fmt: skip
    assert render(template, resolved) == text == render(template, templating.nest(resolved))
    msgs = [{"role": "system", "content": "{{n}}"}, {"role": "assistant", "content": "{{cfg}}"}]
    resolved = {}
    render_messages(msgs, variables, resolved=resolved)
    assert resolved == {"n": 7}  # assistant turns are never templates


def test_nest_turns_paths_back_into_objects_and_keeps_whole_values():
    assert templating.nest({"cfg.prompt": "hi", "cfg.x[0]": 1, "name": "Ada"}) == {
        "cfg": {"prompt": "hi", "x": {"0": 1}}, "name": "Ada"
    }  # fmt: skip
    assert templating.nest({"cfg": "whole", "cfg.prompt": "hi"}) == {"cfg": "whole"}
    assert templating.nest({"not a path!": 1}) == {"not a path!": 1}


@pytest.mark.parametrize(
    ("value", "plain"),
    [("text", True), (3, True), (2.5, True), (None, True), (True, True), ({"a": [1, (2, "x")]}, True),
     (os, False), (os.environ, False), (print, False), (SimpleNamespace(a=1), False), ({"f": len}, False),
     (OrderedDict(a=1), False), (list(range(200_000)), False)],
)  # fmt: skip
def test_plain_data_is_text_numbers_and_exact_containers_of_them(value, plain):
    assert templating.is_plain(value) is plain
