"""The versioned prompt registry: versions, labels, no-op saves, diffs and helpful errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nbplayground.core.errors import BadParameterError, PromptNotFoundError
from nbplayground.storage import db, registry

SRC = str(Path(__file__).resolve().parents[1] / "src")
SYSTEM = {"role": "system", "content": "Be kind."}


def test_save_and_get_by_version_label_and_latest(nbp_home):
    p1 = registry.save("support/greeting", content="Hello {{name}}", model="mock/echo", labels=["prod"],
                       description="first")  # fmt: skip
    assert (p1.name, p1.version, p1.ref, p1.labels) == ("support/greeting", 1, "support/greeting@1", ["prod"])
    assert p1.messages == [{"role": "user", "content": "Hello {{name}}"}]
    assert (p1.model, p1.params, p1.description) == ("mock/echo", {}, "first")
    assert p1.created_at is not None and p1.created_at.utcoffset() is not None
    p2 = registry.save("support/greeting", messages=[SYSTEM, {"role": "user", "content": "Hi {{name}}"}],
                       model="mock/echo", params={"temperature": 0.3})  # fmt: skip
    assert p2.version == 2 and p2.labels == [] and p2.params == {"temperature": 0.3}
    assert registry.get("support/greeting").version == 2
    assert registry.get("support/greeting@latest").version == 2
    assert registry.get("support/greeting@1") == p1
    assert registry.get("support/greeting@prod").version == 1
    assert registry.get("support/greeting@2").messages[0] == SYSTEM


def test_identical_content_is_not_a_new_version_but_labels_still_apply(nbp_home):
    p1 = registry.save("a/b", content="same", model="m", params={"temperature": 0})
    again = registry.save("a/b", messages=[{"role": "user", "content": "same"}], model="m",
                          params={"temperature": 0}, labels=["staging"])  # fmt: skip
    assert again.version == p1.version == 1 and again.labels == ["staging"]
    assert registry.save("a/b", content="same", model="other").version == 2  # the model counts
    assert registry.save("a/b", content="same", model="other", params={"top_p": 1}).version == 3  # params too
    assert (
        registry.save("a/b", content="same", model="m", params={"temperature": 0}).version == 4
    )  # vs latest


def test_labels_move(nbp_home):
    registry.save("a/b", content="v1", labels=["prod", "staging"])
    registry.save("a/b", content="v2", labels=["staging"])
    assert registry.get("a/b@prod").version == 1 and registry.get("a/b@staging").version == 2
    assert registry.get("a/b@1").labels == ["prod"] and registry.get("a/b@2").labels == ["staging"]
    registry.save("a/b", content="v3", labels="prod")  # a single label as a string
    assert registry.get("a/b@prod").version == 3
    moved = registry.set_label("a/b", "prod", 1)
    assert moved.version == 1 and "prod" in moved.labels
    assert registry.get("a/b@prod").version == 1
    with pytest.raises(PromptNotFoundError, match="Versions: 1, 2, 3"):
        registry.set_label("a/b", "prod", 9)
    with pytest.raises(BadParameterError, match="not 'latest'"):
        registry.set_label("a/b", "latest", 1)
    with pytest.raises(BadParameterError, match="Labels"):
        registry.save("a/b", content="v4", labels=["Prod!"])


def test_list_and_versions(nbp_home):
    import nbplayground as nbp

    assert registry.list() == []
    assert list(nbp.prompts.list().columns) == ["name", "latest_version", "labels", "model", "updated_at"]
    assert nbp.prompts.list().empty
    registry.save("support/greeting", content="a", labels=["prod"], model="m1")
    registry.save("support/greeting", content="b", labels=["staging"], model="m2")
    registry.save("sales/intro", content="c")
    listing = registry.list()
    assert [p.name for p in listing] == ["sales/intro", "support/greeting"]
    assert [p.latest_version for p in listing] == [1, 2]
    assert [p.labels for p in listing] == [{}, {"prod": 1, "staging": 2}]
    assert [p.model for p in listing] == [None, "m2"]
    frame = nbp.prompts.list()
    assert frame["labels"].tolist() == ["", "prod=1, staging=2"] and frame["latest_version"].tolist() == [1, 2]
    versions = registry.versions("support/greeting")
    assert [v.version for v in versions] == [2, 1] and [v.labels for v in versions] == [("staging",), ("prod",)]
    frame = nbp.prompts.versions("support/greeting")
    assert frame["version"].tolist() == [2, 1] and frame["labels"].tolist() == ["staging", "prod"]
    with pytest.raises(PromptNotFoundError, match="Did you mean: support/greeting"):
        registry.versions("support/greetings")


def test_diff(nbp_home):
    registry.save("a/b", content="Hello {{name}}\nBye", model="mock/echo")
    registry.save("a/b", messages=[SYSTEM, {"role": "user", "content": "Hi {{name}}\nBye"}], model="mock/lorem",
                  params={"temperature": 0.3})  # fmt: skip
    d = registry.diff("a/b@1", "a/b@2")
    assert d.changed and str(d) == d.text
    assert d.text.splitlines() == [
        "--- a/b@1",
        "+++ a/b@2",
        "@@ -1,5 +1,7 @@",
        "-model: mock/echo",
        "-params: {}",
        "+model: mock/lorem",
        '+params: {"temperature": 0.3}',
        "+[system]",
        "+Be kind.",
        " [user]",
        "-Hello {{name}}",
        "+Hi {{name}}",
        " Bye",
    ]
    shown = d._repr_html_()
    assert "<pre>" in shown and "+[system]" in shown and "mathjax_ignore" in shown
    same = registry.diff("a/b@1", "a/b@1")
    assert not same.changed and same.text == "" and "no differences" in same._repr_html_()
    assert registry.diff("a/b@1", "a/b@latest").changed


@pytest.mark.parametrize(
    "name",
    ["NoSlash", "noslash", "Upper/case", "a/", "/a", "a//b", "a/b c", "a/b@1", "a/-b", "", "ns/ünï"],
)
def test_bad_names(nbp_home, name):
    with pytest.raises(BadParameterError, match="namespace/slug"):
        registry.save(name, content="x")


@pytest.mark.parametrize("name", ["support/greeting", "a/b/c", "team-1/v2.prompt_x", "0/1"])
def test_good_names(nbp_home, name):
    assert registry.save(name, content="x").name == name


def test_save_needs_exactly_one_of_messages_or_content(nbp_home):
    with pytest.raises(BadParameterError, match="exactly one"):
        registry.save("a/b")
    with pytest.raises(BadParameterError, match="exactly one"):
        registry.save("a/b", content="x", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(BadParameterError, match="role and content"):
        registry.save("a/b", messages=[{"content": "no role"}])


def test_not_found_errors_name_what_exists(nbp_home):
    with pytest.raises(PromptNotFoundError, match="Saved prompts: none"):
        registry.get("support/greeting")
    registry.save("support/greeting", content="x", labels=["prod"])
    registry.save("support/farewell", content="y")
    with pytest.raises(PromptNotFoundError, match="Did you mean: support/greeting") as err:
        registry.get("support/greting@prod")
    assert "support/farewell" in str(err.value)
    with pytest.raises(PromptNotFoundError, match=r"Versions: 1; labels: prod=1 \(and 'latest'\)"):
        registry.get("support/greeting@staging")
    with pytest.raises(PromptNotFoundError, match="no version or label '7'"):
        registry.get("support/greeting@7")
    with pytest.raises(PromptNotFoundError) as missing:
        registry.get("support/nothing")
    assert not isinstance(missing.value, KeyError) and missing.value.field == "prompt"


def test_params_never_store_secrets(nbp_home):
    registry.save(
        "a/b", content="x", params={"api_key": "sk-registry-SECRET9", "temperature": 0, "timeout": 3}
    )
    assert registry.get("a/b").params == {"temperature": 0}
    assert b"SECRET9" not in (nbp_home / db.DB_FILE).read_bytes()


def test_concurrent_saves_from_two_processes_get_distinct_versions(nbp_home):
    script = (
        f"import sys; sys.path.insert(0, {SRC!r})\n"
        "from nbplayground.storage import registry\n"
        "for i in range(10): registry.save('race/p', content=f'{sys.argv[1]} {i}')\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, w], stderr=subprocess.PIPE, text=True)
             for w in ("a", "b")]  # fmt: skip
    errs = [p.communicate(timeout=120)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errs
    assert [v.version for v in registry.versions("race/p")] == list(range(20, 0, -1))
