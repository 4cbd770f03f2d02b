"""What safe HTML output looks like: an HTML walk that lists everything outside nbplayground's allow-list."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from nbplayground.core import render

#: Tags nbplayground's own layout uses around (already sanitized) untrusted text.
LAYOUT_TAGS = {"div", "img", "audio", "pre", "code", "b", "i", "hr", "br", "p", "span", "table", "thead",
               "tbody", "tr", "th", "td", "a", "sub"}  # fmt: skip
NEVER = {"script", "style", "iframe", "object", "embed", "form", "input", "textarea", "button", "select",
         "meta", "base", "link", "svg", "math", "frame", "frameset", "video", "source", "template", "details"}  # fmt: skip
SAFE_HREF = re.compile(r"^(https?|mailto):", re.I)
SAFE_SRC = re.compile(r"^data:(image/(png|jpeg|gif|webp)|audio/[a-z0-9.+-]+);base64,[A-Za-z0-9+/=]*$")
#: Inline styles only ever come from nbplayground's own layout (constant strings), never from text.
STYLE = re.compile(r"^[a-z-]+:[^;<>\"'()]*(;[a-z-]+:[^;<>\"'()]*)*;?$")
LAYOUT_ATTRS = {"class", "style", "title", "alt", "controls", "border", "align", "halign", "valign", "start",
                "href", "src", "target", "rel", "dataframe"}  # fmt: skip


class _Walk(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag in NEVER or tag not in LAYOUT_TAGS | set(render.profile()["tags"]):
            self.problems.append(f"tag <{tag}>")
        for name, value in attrs:
            value = value or ""
            if name.startswith("on") or name not in LAYOUT_ATTRS:
                self.problems.append(f"attribute {name}= on <{tag}>")
            if name == "href" and not SAFE_HREF.match(value):
                self.problems.append(f"href {value[:40]!r}")
            if name == "src" and not SAFE_SRC.match(value):
                self.problems.append(f"src {value[:40]!r}")
            if name == "style" and (not STYLE.match(value) or re.search(r"position|url|expression", value, re.I)):
                self.problems.append(f"style {value[:60]!r}")
            if name == "class" and tag == "span" and value != "nbp-blocked":
                self.problems.append(f"class {value!r} on span")

    handle_startendtag = handle_starttag

    def handle_comment(self, data: str) -> None:
        self.problems.append("an HTML comment")

    def handle_decl(self, decl: str) -> None:
        self.problems.append(f"a declaration {decl[:30]!r}")

    def handle_pi(self, data: str) -> None:
        self.problems.append("a processing instruction")


#: pandas' own constant stylesheet for frames (cells are escaped, so text cannot produce this tag).
PANDAS_STYLE = re.compile(r"<style scoped>\s*\.dataframe tbody tr th:only-of-type \{.*?</style>", re.S)


def problems(html: str) -> list[str]:
    """Everything in ``html`` that a hostile text could have put there (empty when the HTML is safe)."""
    html = PANDAS_STYLE.sub("", html)
    walk = _Walk()
    walk.feed(html)
    walk.close()
    return walk.problems


def in_no_math_container(html: str) -> bool:
    """The output sits in the container MathJax skips (so ``$5 and $7`` stays text)."""
    return html.startswith(render.CONTAINER_OPEN) and html.endswith("</div>")
