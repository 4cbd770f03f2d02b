"""The server extension's settings, configured like any Jupyter server setting.

In ``jupyter_server_config.py``::

    c.NBPlayground.allow_connection_options = True   # let API callers set api_base, api_key, ...
    c.NBPlayground.max_body_bytes = 4_000_000

or on the command line: ``jupyter lab --NBPlayground.max_prompt_chars=500000``.
"""

from __future__ import annotations

from traitlets import Bool, Int
from traitlets.config import Configurable

from nbplayground.server import validation as V


class NBPlayground(Configurable):
    """Settings of the nbplayground REST API (the ``NBPlayground`` section of the server config)."""

    allow_connection_options = Bool(
        False,
        help="Accept per-call endpoints, headers and credentials (api_base, base_url, api_key, extra_headers, "
        "organization, api_version, ...) in a request's parameters. Off by default: a caller with 'execute' "
        "could otherwise point a model at any address. Even when on, a key the server holds (an env var, a "
        "configured model's key) is never sent to an endpoint the caller chose: such calls carry the caller's "
        "own api_key or none.",
    ).tag(config=True)
    max_body_bytes = Int(V.MAX_BODY_BYTES, help="Largest request body, in bytes.").tag(config=True)
    max_json_depth = Int(
        V.MAX_JSON_DEPTH, help="Deepest nesting of objects and arrays in a request body."
    ).tag(config=True)
    max_prompt_chars = Int(
        V.MAX_PROMPT_CHARS,
        help="Most characters of prompt_text, message contents and variables together, and of the rendered "
        "prompt.",
    ).tag(config=True)
    max_mock_tokens = Int(
        V.MAX_MOCK_TOKENS, help="Largest max_tokens for mock/ models (they generate text in the server)."
    ).tag(config=True)
