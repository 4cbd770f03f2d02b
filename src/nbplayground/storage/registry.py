"""The versioned prompt registry, in the same DuckDB file as the history.

A prompt is ``namespace/slug``; every save with different content is a new version (1, 2, ...);
labels (``prod``, ``staging``) point at versions and move when a save names them. ``latest`` is
implicit. References: ``ns/slug``, ``ns/slug@3``, ``ns/slug@prod``, ``ns/slug@latest``.
"""

from __future__ import annotations

import builtins
import difflib
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nbplayground.core.errors import BadParameterError, PromptNotFoundError
from nbplayground.core.plan import ROLES
from nbplayground.storage import db

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.\-]*(/[a-z0-9][a-z0-9_.\-]*)+$")
_LABEL = re.compile(r"^[a-z][a-z0-9_\-]*$")


@dataclass
class Prompt:
    """One saved version of a prompt."""

    name: str
    version: int
    messages: builtins.list[dict[str, Any]]
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    labels: builtins.list[str] = field(default_factory=builtins.list)
    description: str = ""
    created_at: datetime | None = None

    @property
    def ref(self) -> str:
        """``name@version``: the exact reference stored with runs."""
        return f"{self.name}@{self.version}"

    def _repr_html_(self) -> str:
        """The prompt as escaped text: a stored prompt may hold anything, markup included."""
        from nbplayground.core import render

        labels = f" ({', '.join(self.labels)})" if self.labels else ""
        blocks = [f"<div><b>{render.escape(self.ref + labels)}</b> · model: "
                  f"<code>{render.escape(self.model or 'default')}</code></div>"]  # fmt: skip
        for m in self.messages:
            blocks.append(f"<div><i>{render.escape(m.get('role'))}</i></div>")
            blocks.append(render.preformatted(m.get("content")))
        return render.page(*blocks)


@dataclass
class PromptDiff:
    """A unified diff between two prompt versions."""

    a: str
    b: str
    text: str

    @property
    def changed(self) -> bool:
        """True when the two versions differ."""
        return bool(self.text)

    def __str__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        """The diff, escaped, with added lines green and removed lines red (readable in light and dark)."""
        from nbplayground.core import render

        if not self.text:
            return render.page(render.preformatted("(no differences)"))
        colors = {"+": "color:#3fb950", "-": "color:#f85149", "@": "opacity:.7"}
        lines = []
        for line in self.text.splitlines():
            style = "" if line.startswith(("+++", "---")) else colors.get(line[:1], "")
            text = render.escape(line)
            lines.append(f'<span style="{style}">{text}</span>' if style else text)
        return render.page("<pre>" + "\n".join(lines) + "</pre>")


@dataclass(frozen=True, slots=True)
class PromptSummary:
    """A saved prompt as a listing shows it: its latest version and where its labels point."""

    name: str
    latest_version: int
    labels: dict[str, int]  # label -> version, by label
    model: str | None
    updated_at: datetime  # when the latest version was saved

    @property
    def labels_text(self) -> str:
        """``"prod=2, staging=3"``: the labels as one line."""
        return ", ".join(f"{label}={version}" for label, version in self.labels.items())


@dataclass(frozen=True, slots=True)
class PromptVersion:
    """One saved version as stored: ``params`` and ``messages`` are the stored JSON text, as saved."""

    version: int
    labels: tuple[str, ...]  # the labels pointing here, sorted
    model: str | None
    params: str | None
    messages: str
    description: str | None
    content_hash: str
    created_at: datetime


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise BadParameterError(
            f"Prompt names look like 'namespace/slug' (lowercase letters, digits, - _ .), got {name!r}."
        )
    return name


def _canonical(messages: builtins.list[dict[str, Any]], model: str | None, params: dict[str, Any]) -> str:
    return json.dumps(
        {"messages": messages, "model": model, "params": params}, sort_keys=True, ensure_ascii=False
    )


def save(
    name: str,
    *,
    messages: builtins.list[dict[str, Any]] | None = None,
    content: str | None = None,
    model: str | None = None,
    params: dict[str, Any] | None = None,
    labels: tuple[str, ...] | builtins.list[str] = (),
    description: str = "",
) -> Prompt:
    """Save a new version (or return the latest one unchanged when the content is identical)."""
    _check_name(name)
    if (messages is None) == (content is None):
        raise BadParameterError("Pass exactly one of messages=[...] or content='...'.")
    msgs = (
        [{"role": "user", "content": content}] if content is not None else [dict(m) for m in messages or []]
    )
    for m in msgs:
        if m.get("role") not in ROLES or "content" not in m:
            raise BadParameterError(f"Each message needs a role and content, got {m!r}.")
    if isinstance(labels, str):
        labels = [labels]
    for label in labels:
        if not isinstance(label, str) or not _LABEL.match(label) or label == "latest":
            raise BadParameterError(f"Labels are lowercase words (not 'latest'), got {label!r}.")
    from nbplayground.core import secrets
    from nbplayground.storage.rows import safe_params

    # a prompt is stored text like any run: a key pasted into it (or into its notes) never lands
    msgs = [secrets.scrub(m, names=False) for m in msgs]
    description = secrets.redact(description) or ""
    params = safe_params(dict(params or {}))
    digest = hashlib.sha256(_canonical(msgs, model, params).encode()).hexdigest()
    now = datetime.now(UTC)
    with db.connect(write=True) as con:
        con.execute("BEGIN TRANSACTION")
        row = con.execute(
            "SELECT version, content_hash FROM prompts WHERE name = ? ORDER BY version DESC LIMIT 1", [name]
        ).fetchone()
        if row is not None and row[1] == digest:
            version = row[0]
        else:
            version = (row[0] if row else 0) + 1
            con.execute(
                "INSERT INTO prompts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [name, version, json.dumps(msgs, ensure_ascii=False), model, json.dumps(params), description,
                 digest, now],
            )  # fmt: skip
        for label in labels:
            con.execute(
                "INSERT OR REPLACE INTO prompt_labels VALUES (?, ?, ?, ?)", [name, label, version, now]
            )
        con.execute("COMMIT")
    return get(f"{name}@{version}")


def set_label(name: str, label: str, version: int) -> Prompt:
    """Point ``label`` at ``version`` of ``name`` (moving it if it pointed elsewhere)."""
    if not isinstance(label, str) or not _LABEL.match(label) or label == "latest":
        raise BadParameterError(f"Labels are lowercase words (not 'latest'), got {label!r}.")
    get(f"{name}@{int(version)}")
    with db.connect(write=True) as con:
        con.execute(
            "INSERT OR REPLACE INTO prompt_labels VALUES (?, ?, ?, ?)",
            [name, label, version, datetime.now(UTC)],
        )
    return get(f"{name}@{version}")


def _labels(con: Any, name: str) -> dict[int, builtins.list[str]]:
    out: dict[int, builtins.list[str]] = {}
    for label, version in con.execute(
        "SELECT label, version FROM prompt_labels WHERE name = ? ORDER BY label", [name]
    ).fetchall():
        out.setdefault(version, []).append(label)
    return out


def _not_found(con: Any, name: str, selector: str = "") -> PromptNotFoundError:
    """The error for a missing name (with close matches) or a missing version/label (with what exists)."""
    names = [r[0] for r in con.execute("SELECT DISTINCT name FROM prompts ORDER BY 1").fetchall()]
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        return PromptNotFoundError(
            f"No prompt named {name!r}.{hint} Saved prompts: {', '.join(names) or 'none'}.", field="prompt"
        )
    versions = [
        r[0] for r in con.execute("SELECT version FROM prompts WHERE name = ? ORDER BY 1", [name]).fetchall()
    ]
    labels = [
        f"{label}={version}"
        for label, version in con.execute(
            "SELECT label, version FROM prompt_labels WHERE name = ? ORDER BY 1", [name]
        ).fetchall()
    ]
    return PromptNotFoundError(
        f"{name!r} has no version or label {selector!r}. Versions: {', '.join(map(str, versions))}; "
        f"labels: {', '.join(labels) or 'none'} (and 'latest').",
        field="prompt",
    )


def get(ref: str) -> Prompt:
    """A prompt version by reference: ``ns/slug``, ``ns/slug@3``, ``ns/slug@prod``, ``ns/slug@latest``."""
    name, _, selector = ref.partition("@")
    _check_name(name)
    with db.connect(write=False) as con:
        if not selector or selector == "latest":
            row = con.execute(
                "SELECT * FROM prompts WHERE name = ? ORDER BY version DESC LIMIT 1", [name]
            ).fetchone()
        elif selector.isdigit():
            row = con.execute(
                "SELECT * FROM prompts WHERE name = ? AND version = ?", [name, int(selector)]
            ).fetchone()
        else:
            row = con.execute(
                "SELECT p.* FROM prompts p JOIN prompt_labels l ON p.name = l.name AND p.version = l.version "
                "WHERE l.name = ? AND l.label = ?",
                [name, selector],
            ).fetchone()
        if row is None:
            raise _not_found(con, name, selector)
        cols = [d[0] for d in con.description]
        data = dict(zip(cols, row, strict=True))
        labels_by_version = _labels(con, name)
    return Prompt(
        name=data["name"], version=data["version"], messages=json.loads(data["messages"]), model=data["model"],
        params=json.loads(data["params"] or "{}"), labels=labels_by_version.get(data["version"], []),
        description=data["description"] or "", created_at=data["created_at"],
    )  # fmt: skip


def list() -> builtins.list[PromptSummary]:
    """One row per prompt (its latest version), by name."""
    with db.connect(write=False) as con:
        found = con.execute(
            """
            SELECT p.name, p.version, p.model, p.created_at FROM prompts p
            WHERE p.version = (SELECT max(version) FROM prompts q WHERE q.name = p.name)
            ORDER BY p.name
            """
        ).fetchall()
        labels: dict[str, dict[str, int]] = {}
        for name, label, version in con.execute(
            "SELECT name, label, version FROM prompt_labels ORDER BY name, label"
        ).fetchall():
            labels.setdefault(name, {})[label] = version
    return [
        PromptSummary(
            name=name,
            latest_version=int(version),
            labels=labels.get(name, {}),
            model=model,
            updated_at=created,
        )
        for name, version, model, created in found
    ]


def versions(name: str) -> builtins.list[PromptVersion]:
    """Every version of one prompt, newest first."""
    _check_name(name)
    with db.connect(write=False) as con:
        found = con.execute(
            "SELECT version, model, params, messages, description, content_hash, created_at FROM prompts "
            "WHERE name = ? ORDER BY version DESC",
            [name],
        ).fetchall()
        if not found:
            raise _not_found(con, name)
        labels = _labels(con, name)
    return [
        PromptVersion(
            version=int(version),
            labels=tuple(labels.get(version, [])),
            model=model,
            params=params,
            messages=messages,
            description=description,
            content_hash=digest,
            created_at=created,
        )
        for version, model, params, messages, description, digest, created in found
    ]


def _render(p: Prompt) -> builtins.list[str]:
    lines = [f"model: {p.model}", f"params: {json.dumps(p.params, sort_keys=True)}"]
    for m in p.messages:
        lines.append(f"[{m.get('role')}]")
        lines.extend(str(m.get("content")).splitlines() or [""])
    return lines


def diff(ref_a: str, ref_b: str) -> PromptDiff:
    """Unified diff of two versions (model, params and every message)."""
    a, b = get(ref_a), get(ref_b)
    text = "\n".join(difflib.unified_diff(_render(a), _render(b), fromfile=a.ref, tofile=b.ref, lineterm=""))
    return PromptDiff(a=a.ref, b=b.ref, text=text)
