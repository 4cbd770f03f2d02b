"""The Jupyter server extension: the playground over REST + SSE (thin handlers over the engine and store).

Enabled on install by ``jupyter-config/jupyter_server_config.d/nbplayground.json``; settings are the
``NBPlayground`` section of the server config (see ``extension.py``). Loading registers routes only:
litellm, pandas and DuckDB load on the first request that needs them.
"""

from __future__ import annotations

from typing import Any


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from nbplayground.server.extension import NBPlayground
    from nbplayground.server.handlers import setup_handlers

    setup_handlers(serverapp.web_app, NBPlayground(parent=serverapp))
    serverapp.log.info("nbplayground | playground API at %snbplayground/api/v1/", serverapp.base_url)


# The older name, for jupyter_server < 2 and notebook-style loaders.
load_jupyter_server_extension = _load_jupyter_server_extension
