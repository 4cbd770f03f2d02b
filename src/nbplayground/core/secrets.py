"""Secrets: the one place that knows what a key looks like, and scrubs keys from what is shown or stored.

Three sources, used together:

- **Patterns** of key-like values: OpenAI / Anthropic ``sk-…`` (``sk-proj-…``, ``sk-ant-…``), GitHub
  ``ghp_…`` / ``gho_…`` / ``github_pat_…``, GitLab ``glpat-…``, Stripe ``sk_live_…`` / ``rk_live_…`` /
  ``whsec_…``, Slack ``xoxb-…`` / ``xoxp-…``, AWS ``AKIA…``, Google ``AIza…``, Hugging Face ``hf_…``,
  Groq / xAI / Perplexity / Replicate / npm / PyPI tokens, JWTs, ``Bearer …`` tokens, ``password=…``-style
  assignments and passwords in URLs (``https://user:pass@host``). The recognisable prefix is kept
  (``sk-***``) so a message still says which key was meant.
- **Known values**: the value of every environment variable whose name looks like a key
  (``OPENAI_API_KEY``, ``HF_TOKEN``, ``DB_PASSWORD``; not ``KEYBOARD_LAYOUT`` or ``TOKENIZERS_PARALLELISM``),
  of the variables configured models name with ``api_key_env``, and every key nbplayground resolved to send
  (:func:`remember_secret`). They become ``***`` wherever they appear, whatever they look like.
- **Key-like field names**: ``api_key``, ``openai_key``, ``X-Api-Key``, ``accessToken``, ``password``,
  ``Authorization``, ``cookie``, ``client_secret``… but not counts or names of things (``max_tokens``,
  ``tokens_in``, ``keywords``, ``api_key_env``). :func:`scrub` drops such fields from nested data.

:func:`redact` cleans free text; :func:`scrub` returns a cleaned copy of nested data (dicts, lists);
:func:`redactor` returns a snapshot to clean many values at once (the history writer takes one per run).

Speed: history runs this on every stored run, in batches of 100,000 rows. Known values are found with
``str.__contains__``; every alternative of the one pattern regex starts with a literal character, so the
engine only scans for those few characters and tries alternatives where they occur; history redacts each
JSON column as one text and walks the data only for params and variables (to drop key-like fields).
Measured on a 2-core VM: about 12 µs more per stored run (``to_row`` 24 -> 36 µs).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable
from typing import Any, Final, overload

from nbplayground import config

__all__ = ["REDACTED", "Redactor", "is_secret_name", "redact", "redactor", "remember_secret", "scrub"]

#: What a secret is replaced with (after its recognisable prefix, if any).
REDACTED: Final = "***"
#: Known values shorter than this are ignored: "1", "true" or a short word would be redacted everywhere.
MIN_KNOWN_LEN: Final = 8

# ---------------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------------
_NAME_WORDS: Final = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_SECRET_WORDS: Final = frozenset({
    "key", "apikey", "token", "secret", "secrets", "password", "passwords", "passwd", "pwd", "passphrase",
    "credential", "credentials", "cookie", "cookies", "bearer", "authorization", "auth", "pat",
    "privatekey", "accesskey", "secretkey", "accesstoken", "authtoken", "refreshtoken", "idtoken",
    "sessiontoken", "clientsecret", "xapikey",
})  # fmt: skip
# A name with one of these words counts or describes something (max_tokens, key_env, token_url): not a key.
_HARMLESS_WORDS: Final = frozenset({
    "tokens", "count", "counts", "max", "min", "num", "number", "budget", "limit", "limits", "total",
    "usage", "length", "len", "size", "env", "var", "name", "names", "file", "path", "dir", "id", "ids",
    "type", "types", "status", "format", "prefix", "estimate", "rate", "cost", "price", "logprobs",
    "url", "uri", "host", "endpoint", "sock", "socket", "mode", "ttl", "timeout", "provider", "method",
    "version", "region", "enabled", "required", "hint", "label",
})  # fmt: skip
# Shell variables that only look like keys ("pwd" is also short for password).
_NOT_SECRET: Final = frozenset({"PWD", "OLDPWD"})
_names: dict[str, bool] = {}


def is_secret_name(name: str) -> bool:
    """Whether a field or variable name says it holds a key (``openai_key``) rather than a count (``max_tokens``)."""
    hit = _names.get(name)
    if hit is None:
        words = [w.lower() for w in _NAME_WORDS.findall(name)]
        hit = (
            name not in _NOT_SECRET
            and not _HARMLESS_WORDS.intersection(words)
            and any(w in _SECRET_WORDS or w.startswith(("passw", "authoriz", "credential")) for w in words)
        )
        if len(_names) > 4096:  # names come from user data: keep the memo bounded
            _names.clear()
        _names[name] = hit
    return hit


# ---------------------------------------------------------------------------------------------------
# Patterns. Each alternative starts with one literal character and captures the secret in its only
# group; what the match holds before the group (the recognisable prefix, "Bearer ", "password=") stays.
# Starting every alternative with a literal lets the regex engine skip ahead with a character-set scan
# instead of trying every alternative at every position (several times faster, measured); lookbehinds check the
# rest of a prefix only where that character occurs.
# ---------------------------------------------------------------------------------------------------
# Token characters: never a quote or a backslash, so a match never splits a JSON escape.
_T = r"[A-Za-z0-9_\-]"
_W = r"(?<![A-Za-z0-9])"  # a key starts a word: "task-0123456789" holds no "sk-" key
_TOK = r"[A-Za-z0-9_\-.~+/]"  # bearer tokens (base64url, JWTs)
_V = r"""[^\s"'`,;\\<>]"""  # an assigned value
# Short values need a digit: "Key: Photosynthesis" or "bearer certificates" are words, not secrets.
_DIGITS_OR_LONG = "((?={c}*[0-9]){c}{{{short},}}|{c}{{{long},}})"
_SECRET_NAMES = ("key", "token", "secret", "password", "passwd", "pwd", "authorization", "credential",
                 "credentials")  # fmt: skip


def _named(sep: str) -> str:
    """An assignment ``<name><sep>value`` (``api_key=…``, ``"password": "…"``), anchored on ``sep``."""
    sep = re.escape(sep)
    # The names' last two letters first: one cheap test at each ":" of a JSON text ("role": fails it).
    ends = "|".join(sorted({n[-2:] for n in _SECRET_NAMES}))
    quick = f"(?:(?<=(?i:{ends}){sep})|(?<=(?i:{ends})[\"']{sep}))"
    behind = "|".join(f"(?<=(?i:{n}){q}{sep})" for n in _SECRET_NAMES for q in ("", '"', "'"))
    scheme = r"(?:(?:[Bb]earer|BEARER|[Bb]asic|[Tt]oken)\s+)?"
    value = _DIGITS_OR_LONG.format(c=_V, short=8, long=20)
    return rf"{sep}{quick}(?:{behind})\s*(?:\\?[\"'])?{scheme}{value}"


_ALTERNATIVES: Final = (
    rf"-(?<={_W}sk-)" + _DIGITS_OR_LONG.format(c=_T, short=10, long=20),
    rf"-(?:(?<={_W}xai-)|(?<={_W}pplx-)|(?<={_W}glpat-)|(?<={_W}pypi-))({_T}{{20,}})",
    rf"-(?<={_W}xox[abposre]-)([A-Za-z0-9\-]{{10,}})",
    rf"_(?<={_W}sk_)" + _DIGITS_OR_LONG.format(c=_T, short=10, long=20),
    rf"_(?:(?<={_W}rk_live_)|(?<={_W}rk_test_)|(?<={_W}whsec_))([A-Za-z0-9]{{10,}})",
    rf"_(?<={_W}gh[pousr]_)([A-Za-z0-9]{{20,}})",
    rf"_(?:(?<={_W}github_pat_)|(?<={_W}gsk_)|(?<={_W}r8_)|(?<={_W}npm_))({_T}{{20,}})",
    rf"_(?<={_W}hf_)([A-Za-z0-9]{{30,}})",
    r"A(?:KIA|SIA)([0-9A-Z]{16})(?![0-9A-Z])",
    r"AIza([0-9A-Za-z_\-]{30,})",
    r"J(?<=eyJ)([A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,})",
    rf"B(?<={_W}B)(?:earer|EARER)\s+" + _DIGITS_OR_LONG.format(c=_TOK, short=12, long=24),
    rf"b(?<={_W}b)earer\s+" + _DIGITS_OR_LONG.format(c=_TOK, short=12, long=24),
    r"://[^/\s:@\"'\\]{1,64}:([^/\s@\"'\\]{3,})@",
    _named(":"),
    _named("="),
)
_PATTERN: Final = re.compile("|".join(_ALTERNATIVES))


def _keep_prefix(m: re.Match[str]) -> str:
    g = m.lastindex or 0
    return m.string[m.start() : m.start(g)] + REDACTED + m.string[m.end(g) : m.end()]


# ---------------------------------------------------------------------------------------------------
# Known values
# ---------------------------------------------------------------------------------------------------
_remembered: set[str] = set()
_lock = threading.Lock()
_version = 0


def remember_secret(value: str) -> None:
    """Mark a value as a secret (a key nbplayground is about to send): it is redacted wherever it appears."""
    global _version
    if value and len(value) >= 6 and value not in _remembered:
        with _lock:
            _remembered.add(value)
            _version += 1


def _environ() -> dict[Any, Any]:
    # os.environ keeps its raw items in a plain dict (_data): comparing that with a copy costs well under
    # a microsecond (values compare by identity first), where reading os.environ decodes every item.
    data = getattr(os.environ, "_data", None)
    return data if isinstance(data, dict) else dict(os.environ)


def _known_values(environ: dict[Any, Any], key_envs: frozenset[str]) -> list[str]:
    with _lock:  # keys are remembered from the engine's thread while the history writer reads them
        values = {v for v in _remembered if len(v) >= 6}
    for raw_name, raw_value in environ.items():  # a copy: another thread may set a variable meanwhile
        name, value = os.fsdecode(raw_name), os.fsdecode(raw_value)
        if len(value) >= MIN_KNOWN_LEN and (name in key_envs or is_secret_name(name)):
            values.add(value)
    return sorted(values, key=len, reverse=True)  # a longer secret that contains a shorter one goes first


class Redactor:
    """A snapshot of the known secret values, with the methods that clean text and data with them."""

    __slots__ = ("known", "needles")

    def __init__(self, known: Iterable[str]) -> None:
        import json

        self.known = tuple(known)
        escaped = (json.dumps(v, ensure_ascii=False)[1:-1] for v in self.known)
        self.needles = self.known + tuple(e for e, v in zip(escaped, self.known, strict=True) if e != v)

    def with_values(self, values: Iterable[str]) -> Redactor:
        """A redactor that also treats ``values`` as secrets (say, values found under key-like fields)."""
        extra = {v for v in values if isinstance(v, str) and len(v) >= 6} - set(self.known)
        if not extra:
            return self
        return Redactor(sorted({*self.known, *extra}, key=len, reverse=True))

    def redact(self, text: str) -> str:
        """``text`` with known secret values replaced by ``***`` and key-like values by ``prefix***``."""
        if len(text) < 6:
            return text
        for value in self.known:
            if value in text:
                text = text.replace(value, REDACTED)
        return _PATTERN.sub(_keep_prefix, text)  # the same object back when nothing matched

    def redact_json(self, text: str) -> str | None:
        """JSON text with its secrets redacted, or None when redacting would break the JSON (walk the data).

        Cheaper than :meth:`scrub` on the data: one scan over one string. Known values are also looked up
        in their JSON-escaped form.
        """
        out = text
        for value in self.needles:
            if value in out:
                out = out.replace(value, REDACTED)
        out = _PATTERN.sub(_keep_prefix, out)
        if out is text:
            return text
        import json

        try:
            json.loads(out)
        except ValueError:  # a secret began inside an escape sequence
            return None
        return out

    def scrub(
        self,
        value: Any,
        *,
        names: bool = True,
        drop: frozenset[str] = frozenset(),
        found: list[str] | None = None,
    ) -> Any:
        """A copy of nested data with every string redacted.

        ``names``: also drop fields whose name looks like a key (:func:`is_secret_name`); their string
        values are appended to ``found`` (so the caller can redact them elsewhere). ``drop``: lower-case
        field names dropped at any depth as well. Tuples become lists; objects that are not plain data are
        first converted as history stores them (pydantic models, dataclasses, bytes...).
        """
        redact, sink = self.redact, [] if found is None else found

        def walk(value: Any) -> Any:
            kind = type(value)  # exact types first: this runs for every stored run
            if kind is str:
                return redact(value)
            if value is None or kind is int or kind is float or kind is bool:
                return value
            if kind is dict or isinstance(value, dict):
                out = {}
                for k, v in value.items():
                    if type(k) is str:
                        if (names and is_secret_name(k)) or (drop and k.lower() in drop):
                            sink.extend(_strings(v))
                            continue
                        if not names:  # params and variables are named by code; other keys may be anything
                            k = redact(k)
                    out[k] = walk(v)
                return out
            if kind is list or isinstance(value, list | tuple):
                return [walk(v) for v in value]
            if isinstance(value, str):
                return redact(str(value))
            if isinstance(value, int | float):
                return value
            from nbplayground.core.types import jsonable

            converted = jsonable(value)
            if isinstance(converted, str) or converted is value:
                return redact(str(converted))
            return walk(converted)

        return walk(value)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


class _Snapshot:
    __slots__ = ("environ", "key_envs", "redactor", "version")

    def __init__(self) -> None:
        self.version = _version
        self.environ = dict(_environ())
        self.key_envs = config.key_env_names()
        self.redactor = Redactor(_known_values(self.environ, self.key_envs))

    def current(self) -> bool:
        return (
            self.version == _version
            and self.key_envs == config.key_env_names()
            and self.environ == _environ()
        )


_snapshot: _Snapshot | None = None


def redactor() -> Redactor:
    """The known secrets now: rebuilt when the environment, the remembered keys or the configured models change."""
    global _snapshot
    snap = _snapshot
    if snap is None or not snap.current():
        snap = _snapshot = _Snapshot()
    return snap.redactor


@overload
def redact(text: str) -> str: ...
@overload
def redact(text: None) -> None: ...
def redact(text: str | None) -> str | None:
    """Free text without secrets: known key values become ``***``, key-like values ``prefix***``."""
    if not text:
        return text
    return redactor().redact(text)


def scrub(value: Any, *, names: bool = True, drop: frozenset[str] = frozenset()) -> Any:
    """A copy of nested data without secrets: key-like fields dropped (``names``), every string redacted."""
    return redactor().scrub(value, names=names, drop=drop)
