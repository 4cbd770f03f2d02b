"""Counting tokens here, for servers that report no usage (many local servers, some streams).

Counts use tiktoken's ``o200k_base`` encoding, read from the copy that ships inside the litellm package
(never downloaded). For a model with another tokenizer the count is an estimate: runs counted here are
marked ``tokens_estimated``. Without tiktoken the count falls back to ~4 characters per token.

Loading the encoding takes a few hundred milliseconds once: call :func:`load` from a thread.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

#: tiktoken's cache file name for o200k_base (the sha1 of its download URL), as litellm bundles it.
_BUNDLED = {
    "o200k_base": "fb374d419588a4632f3f557e76b4b70aebbca790",
    "cl100k_base": "9b5ad71b2ce5302211f9c61530b329a4922fc6a4",
}
#: Tokens a chat message costs besides its content (role, separators), as OpenAI documents it.
PER_MESSAGE = 3


def _bundled_dir() -> Path | None:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils" / "tokenizers"
    return folder if folder.is_dir() else None


@functools.cache
def load() -> Any:
    """The encoding (tiktoken), or None when it cannot be had offline. Slow once: not on an event loop."""
    try:
        import tiktoken
    except ImportError:
        return None
    folder = _bundled_dir()
    if "TIKTOKEN_CACHE_DIR" not in os.environ and folder is not None:
        os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)  # what litellm itself sets on import
    cache = Path(os.environ.get("TIKTOKEN_CACHE_DIR") or "")
    for name, cache_name in _BUNDLED.items():
        if cache.parts and (cache / cache_name).exists():
            try:
                return tiktoken.get_encoding(name)
            except Exception:
                continue
    return None


def ready() -> bool:
    """Whether :func:`load` has run (counting is then cheap enough for an event loop)."""
    return load.cache_info().currsize > 0


def count(text: str) -> int:
    """Tokens in ``text``."""
    if not text:
        return 0
    enc = load()
    if enc is None:
        return max(1, round(len(text) / 4))
    return len(enc.encode(text, disallowed_special=()))


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: count the text ones (images are not estimated)
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else json.dumps(content, default=str)


def count_messages(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> int:
    """Prompt tokens of a chat request: every message's content and tool calls, plus the tools offered."""
    total = 3  # every reply is primed with a few tokens
    for m in messages:
        total += PER_MESSAGE + count(_content_text(m.get("content")))
        if m.get("tool_calls"):
            total += count(json.dumps(m["tool_calls"], default=str))
    if tools:
        total += count(json.dumps(tools, default=str))
    return total
