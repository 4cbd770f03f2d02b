"""The one way untrusted text becomes HTML: markdown-it-py for the markup, nh3 (ammonia) for an allow-list.

Model answers, tool calls and results, provider fields (mime types, revised prompts, error texts), stored
prompts and variables are data that an attacker may steer (a prompt injection in a summarised page, a
hostile endpoint, a prompt saved by a colleague). JupyterLab treats the outputs of executed cells as
trusted, so whatever HTML nbplayground emits runs with the user's rights. Hence:

* raw HTML inside markdown is shown as text, never interpreted (markdown-it with ``html=False``);
* the result is cleaned by nh3 with the allow-list in ``sanitize_profile.json`` (shared with the widget's
  DOMPurify): no script, style, form, iframe, object or event handler, links only to http(s)/mailto;
* a model's image (``![x](https://...)``) is never fetched: it becomes a link the user can click, so an
  answer cannot leak data to an outside host by merely being displayed;
* nbplayground's own media (``Media``) are the only images, as ``data:`` URIs built here from bytes, with a
  mime type from a fixed list;
* every HTML output sits in a container MathJax skips, so ``$5 and $7`` never becomes LaTeX.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

    from nbplayground.core.types import Media

PROFILE_PATH = Path(__file__).with_name("sanitize_profile.json")

#: The container of every HTML output: MathJax 3 skips ``mathjax_ignore``, MathJax 2 ``tex2jax_ignore``.
CONTAINER_CLASS = "nbp-out mathjax_ignore tex2jax_ignore"
#: Its opening tag: long unbroken words (URLs, base64, payloads) wrap instead of overflowing the output.
CONTAINER_OPEN = f'<div class="{CONTAINER_CLASS}" style="overflow-wrap:anywhere">'

#: Media types shown inline (as data: URIs built from the bytes); anything else is described, not embedded.
INLINE_MIME = re.compile(r"^(image/(png|jpeg|gif|webp)|audio/(wav|x-wav|mpeg|mp3|ogg|webm|flac|aac|mp4))$")


@functools.cache
def profile() -> dict[str, Any]:
    """The allow-list shared with the widget (tags, attributes per tag, classes, URL schemes)."""
    data: dict[str, Any] = json.loads(PROFILE_PATH.read_text(encoding="utf-8"))
    return data


def escape(text: Any) -> str:
    """Text as HTML text (quotes too, so it is safe in attribute values)."""
    return html.escape("" if text is None else str(text), quote=True)


@functools.cache
def _cleaner() -> Any:
    """The nh3 sanitizer for :func:`profile`, built once (it compiles the allow-list)."""
    import nh3

    p = profile()
    classes = {tag: set(names) for tag, names in p["classes"].items()}
    attributes = {
        tag: {a for a in attrs if not (a == "class" and tag in classes)}
        for tag, attrs in p["attributes"].items()
    }
    return nh3.Cleaner(
        tags=set(p["tags"]),
        clean_content_tags={"script", "style"},
        attributes=attributes,
        allowed_classes=classes,
        url_schemes=set(p["url_schemes"]),
        url_relative="deny",
        link_rel="noopener noreferrer nofollow",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        strip_comments=True,
    )


def sanitize(fragment: str) -> str:
    """Clean an HTML fragment with the shared allow-list (nh3)."""
    return str(_cleaner().clean(fragment))


def _image_as_link(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = "".join(child.content for child in (token.children or [])) or "image"
    label = f"image: {escape(alt)}"  # text, like the widget: headless fonts have no 🖼
    if re.match(r"^https?://", src, re.I):
        return (
            f'<span class="nbp-blocked"><a href="{escape(src)}" title="not loaded: an external image '
            f'(click to open)">{label}</a></span>'
        )
    return f'<span class="nbp-blocked">[{label}, not shown]</span>'


@functools.cache
def _parser() -> MarkdownIt:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.add_render_rule("image", _image_as_link)
    return md


def markdown(text: Any) -> str:
    """Markdown (from anyone) as sanitized HTML; raw HTML in it is shown as text."""
    if not text:
        return ""
    return sanitize(_parser().render(str(text)))


_FENCE = re.compile(r"^ {0,3}(```|~~~)", re.M)


class StreamingMarkdown:
    """Markdown of a text that keeps growing: finished blocks are rendered once, only the open tail again.

    A block is finished at a blank line outside a code fence. Rendering a 12 KB answer takes ~40 ms with
    markdown-it-py, so re-rendering it all 20 times a second would keep a kernel busy; this keeps each
    update proportional to the last paragraph. The final display renders the whole text in one go.
    """

    def __init__(self) -> None:
        self._done = ""  # the text of the finished blocks
        self._html = ""  # their sanitized HTML

    def __call__(self, text: str) -> str:
        if not text.startswith(self._done):  # the text was replaced (a retry): start again
            self._done, self._html = "", ""
        cut = text.rfind("\n\n")
        while cut > len(self._done) and len(_FENCE.findall(text, 0, cut)) % 2:
            cut = text.rfind("\n\n", 0, cut)
        if cut > len(self._done):
            self._html += markdown(text[len(self._done) : cut])
            self._done = text[:cut]
        return self._html + markdown(text[len(self._done) :])


def preformatted(text: Any, css_class: str = "") -> str:
    """Text kept as is (code, JSON, tool arguments), escaped."""
    cls = f' class="{escape(css_class)}"' if css_class else ""
    return f"<pre{cls}>{escape(text)}</pre>"


def paragraph(text: Any, tag: str = "div", style: str = "") -> str:
    """Escaped text with line breaks kept, in a ``tag`` with nbplayground's own ``style``."""
    attr = f' style="{style}"' if style else ""
    return f"<{tag}{attr}>{escape(text).replace(chr(10), '<br>')}</{tag}>"


def media(m: Media) -> str:
    """HTML of nbplayground's own media: a data: image or audio player, else a short escaped description."""
    mime = (m.mime or "").strip().lower()
    if m.data and INLINE_MIME.match(mime):
        uri = f"data:{mime};base64,{base64.b64encode(m.data).decode('ascii')}"
        if mime.startswith("image/"):
            alt = escape(m.revised_prompt or "generated image")
            return f'<img src="{uri}" alt="{alt}" title="{alt}" style="max-width: 100%">'
        return f'<audio controls src="{uri}"></audio>'
    what = f"{m.mime}, {len(m.data)} bytes" if m.data else f"{m.mime}, {m.path or 'no data'}"
    return f"<code>{escape(what)}</code>"


def page(*blocks: str) -> str:
    """Join HTML blocks (each already safe) in the container every nbplayground output uses."""
    return f"{CONTAINER_OPEN}{''.join(b for b in blocks if b)}</div>"


def bundle(body_html: str, plain: str) -> dict[str, str]:
    """A display bundle: sanitized HTML in the no-math container, and plain text. Never ``text/markdown``."""
    return {"text/html": page(body_html), "text/plain": plain}
