"""A custom Jupyter Authorizer for tests: read-only on nbplayground, and a record of every check."""

from __future__ import annotations

import json
import os
from typing import Any

from jupyter_server.auth import Authorizer


class ReadOnlyPlayground(Authorizer):
    """Allows ``read`` on ``nbplayground`` (and everything on other resources); logs each decision."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        allowed = resource != "nbplayground" or action == "read"
        log = os.environ.get("NBP_AUTHZ_LOG")
        if log and resource == "nbplayground":
            with open(log, "a", encoding="utf-8") as f:
                f.write(
                    json.dumps({"path": handler.request.path, "action": action, "allowed": allowed}) + "\n"
                )
        return allowed
