"""Settings: the home folder, the default model, aliases and custom models / endpoints.

Sources, later wins: built-in defaults, ``<home>/config.toml``, ``nbp.configure(...)`` in this process.
Keys are never stored here: a custom model names the *environment variable* that holds its key.

Example ``config.toml``::

    default_model = "mock/echo"

    [aliases]
    fast = "openai/gpt-4o-mini"

    [models.support-ft]
    model = "openai/ft:gpt-4o-mini:acme"
    api_base = "https://acme.example/v1"
    api_key_env = "ACME_KEY"
    input_cost_per_token = 1.5e-7
    output_cost_per_token = 6e-7
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from nbplayground.core.errors import ConfigError

DEFAULT_MODEL = "mock/echo"
CONFIG_FILE = "config.toml"

_MODEL_KEYS = {
    "model", "api_base", "api_key_env", "input_cost_per_token", "output_cost_per_token", "params",
    "transport", "description",
}  # fmt: skip
_TRANSPORTS = {"auto", "native", "litellm"}


@dataclass(frozen=True, slots=True)
class CustomModel:
    """A model the user named: a fine-tune, a dedicated deployment or a local OpenAI-compatible server."""

    name: str
    model: str
    api_base: str | None = None
    api_key_env: str | None = None
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    transport: str = "auto"
    description: str = ""


@dataclass(slots=True)
class Settings:
    """The merged configuration of this process."""

    home: Path
    default_model: str = DEFAULT_MODEL
    aliases: dict[str, str] = field(default_factory=dict)
    models: dict[str, CustomModel] = field(default_factory=dict)
    #: False when nobody chose a default model (the built-in offline one is used)
    default_model_chosen: bool = False


def home() -> Path:
    """The nbplayground home folder (``NBPLAYGROUND_HOME``, else a per-user data dir). Created on demand.

    It holds every prompt, answer and media file, so it is private: created ``0700``; a home found with
    looser permissions (an older nbplayground made it ``0755``) is tightened once, with a warning.
    """
    env = os.environ.get("NBPLAYGROUND_HOME")
    if env:
        path = Path(env).expanduser()
    else:
        from platformdirs import user_data_dir

        path = Path(user_data_dir("nbplayground", appauthor=False))
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if str(path) not in _private:
        make_private(path)
        _private.add(str(path))
    return path


#: Homes already checked by this process (a check lists the home's top level: once per process is enough).
_private: set[str] = set()
#: Sub-folders whose files are checked (only when the folder itself was found too open).
_PRIVATE_SUBDIRS = ("media", "pending", "journal", "quarantine")
#: Files DuckDB creates under the process umask, made private right after (storage.db): another process
#: may see one for a moment while it is being created, which is no reason for a notice.
_CREATED_OPEN = frozenset({"history.duckdb", "history.duckdb.wal"})


def make_private(root: Path) -> list[Path]:
    """Tighten ``root`` to ``0700``, its files to ``0600`` and its sub-folders to ``0700``; one warning if any was looser.

    POSIX only (a no-op on Windows, where modes do not express who may read). Returns what was changed.
    """
    if os.name != "posix":
        return []
    changed: list[Path] = []  # what was open to others and is not any more (the notice counts them)

    def tighten(p: Path, mode: int) -> bool:
        try:
            current = p.stat().st_mode & 0o777
            if current & 0o077:
                os.chmod(p, current & mode)
                changed.append(p)
                return True
        except OSError:
            pass  # gone meanwhile, or not ours: nothing to tighten
        return False

    root_was_open = tighten(root, 0o700)
    try:
        entries = list(os.scandir(root))
    except OSError:
        entries = []
    for entry in entries:
        p = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            # a folder that was already private had its files created private: do not list 100k media
            if tighten(p, 0o700) and entry.name in _PRIVATE_SUBDIRS:
                for child in p.iterdir():
                    if child.is_file():
                        tighten(child, 0o600)
        elif entry.is_file(follow_symlinks=False):
            was_open = tighten(p, 0o600)
            if was_open and entry.name in _CREATED_OPEN and not root_was_open:
                changed.pop()  # being created by another process right now: tightened, not news
    if changed:
        import warnings

        warnings.warn(
            f"nbplayground: {root} was open to other users; made it private (folders 0700, files 0600; "
            f"{len(changed)} changed).",
            UserWarning,
            stacklevel=3,
        )
    return changed


_lock = threading.Lock()
_overrides: dict[str, Any] = {"aliases": {}, "models": {}}


class _Cache(TypedDict, total=False):
    key: tuple[str, int | None, int]
    settings: Settings
    key_envs: frozenset[str]


_cache: _Cache = {}


def _parse_model(name: str, spec: Any) -> CustomModel:
    if isinstance(spec, str):
        spec = {"model": spec}
    if not isinstance(spec, dict):
        raise ConfigError(
            f"Model {name!r}: expected a table/dict with at least 'model', got {type(spec).__name__}."
        )
    if "api_key" in spec:
        raise ConfigError(
            f"Model {name!r}: do not put the key itself in the configuration; store it in an "
            "environment variable and name that variable with api_key_env."
        )
    unknown = set(spec) - _MODEL_KEYS
    if unknown:
        raise ConfigError(
            f"Model {name!r}: unknown setting(s) {', '.join(sorted(unknown))}; "
            f"allowed: {', '.join(sorted(_MODEL_KEYS))}."
        )
    if not spec.get("model"):
        raise ConfigError(f"Model {name!r}: 'model' is required (e.g. 'openai/gpt-4o-mini').")
    transport = spec.get("transport", "auto")
    if transport not in _TRANSPORTS:
        from nbplayground.core import transports  # plugins add theirs (entry point nbplayground.transports)

        known = sorted(_TRANSPORTS | set(transports.names()))
        if transport not in known:
            raise ConfigError(f"Model {name!r}: transport must be one of {known}, got {transport!r}.")
    for key in ("input_cost_per_token", "output_cost_per_token"):
        if key in spec and not isinstance(spec[key], int | float):
            raise ConfigError(f"Model {name!r}: {key} must be a number (USD per token).")
    return CustomModel(
        name=name,
        model=str(spec["model"]),
        api_base=spec.get("api_base"),
        api_key_env=spec.get("api_key_env"),
        input_cost_per_token=spec.get("input_cost_per_token"),
        output_cost_per_token=spec.get("output_cost_per_token"),
        params=dict(spec.get("params") or {}),
        transport=transport,
        description=spec.get("description", ""),
    )


def _read_file(path: Path) -> dict[str, Any]:
    import tomllib

    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


def settings() -> Settings:
    """The current merged settings (re-read when the home folder or the config file changes)."""
    root = home()
    path = root / CONFIG_FILE
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        mtime = None
    key = (str(root), mtime, _overrides.get("_version", 0))
    with _lock:
        if _cache.get("key") == key:
            return _cache["settings"]
        raw = _read_file(path) if mtime is not None else {}
        s = Settings(home=root)
        s.default_model = raw.get("default_model", DEFAULT_MODEL)
        s.default_model_chosen = "default_model" in raw or bool(_overrides.get("default_model"))
        s.aliases = {str(k): str(v) for k, v in (raw.get("aliases") or {}).items()}
        s.models = {name: _parse_model(name, spec) for name, spec in (raw.get("models") or {}).items()}
        if _overrides.get("default_model"):
            s.default_model = _overrides["default_model"]
        s.aliases.update(_overrides["aliases"])
        s.models.update(_overrides["models"])
        _cache["key"] = key
        _cache["settings"] = s
        _cache["key_envs"] = frozenset(m.api_key_env for m in s.models.values() if m.api_key_env)
        return s


def key_env_names() -> frozenset[str]:
    """The env vars that configured models read their keys from (as last loaded; never touches the disk)."""
    return _cache.get("key_envs", frozenset())


def configure(
    *,
    default_model: str | None = None,
    aliases: dict[str, str] | None = None,
    models: dict[str, Any] | None = None,
    reset: bool = False,
) -> Settings:
    """Change settings for this process (they win over ``config.toml``).

    ``models`` maps a name you choose to ``{"model": "provider/name", "api_base": ..., "api_key_env": ...,
    "input_cost_per_token": ..., "output_cost_per_token": ..., "params": {...}}``.
    ``reset=True`` first drops earlier ``configure`` calls.
    """
    parsed = {name: _parse_model(name, spec) for name, spec in (models or {}).items()}
    with _lock:
        if reset:
            _overrides.clear()
            _overrides.update({"aliases": {}, "models": {}})
        if default_model is not None:
            _overrides["default_model"] = default_model
        _overrides["aliases"].update(aliases or {})
        _overrides["models"].update(parsed)
        _overrides["_version"] = _overrides.get("_version", 0) + 1
    _warm_transports([*parsed, *([default_model] if default_model else [])])
    return settings()


def _warm_transports(names: list[str]) -> None:
    """Start importing litellm in the background when a model configured now will need it (seconds of
    work, better done while the user types than when the first run waits for it)."""
    from nbplayground.core import providers, transports

    for name in names:
        try:
            if providers.resolve(name).transport == "litellm":
                transports.warm("litellm")
                return
        except Exception:  # a bad name is reported when it is run
            continue
