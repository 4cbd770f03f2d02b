"""Transports: how a resolved call reaches a model and comes back as chunks.

A transport is any object with a ``name``, its :class:`Capabilities`, ``stream(call)`` (an async iterator
of :class:`~nbplayground.core.types.ProviderChunk`) and ``generate(call)`` (media kinds), and optionally
``prepare(call)`` with ``is_ready(call)`` (slow first-use work such as imports, run in a thread before the
call so the engine's loop never blocks) and
``providers`` (provider prefixes it serves, e.g. ``{"myco"}`` for models written ``myco/<model>``).

Three ship: ``native`` (the OpenAI chat-completions wire over aiohttp), ``litellm`` (every other provider,
and every media kind) and ``mock`` (offline). A plugin adds one the way simonw/llm's ``register_models``
does, through an entry point in the ``nbplayground.transports`` group that names the transport object (or
a callable returning it)::

    [project.entry-points."nbplayground.transports"]
    myco = "myco_nbp:transport"

The engine gives a transport a :class:`ProviderCall` and expects it to raise only nbplayground errors
(``core.errormap`` and ``transports.http`` hold the shared mapping) and to report the provider's own
finish reason: a transport never makes one up.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from nbplayground.core.types import MediaOutput, ProviderCall, ProviderChunk

ENTRY_POINT_GROUP = "nbplayground.transports"


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a transport can do (surfaces use it to offer or refuse features up front)."""

    streaming: bool = True
    tools: bool = True
    structured_output: bool = True
    reasoning: bool = False
    media: frozenset[str] = field(
        default_factory=frozenset
    )  # kinds besides chat: image, speech, transcription


@runtime_checkable
class Transport(Protocol):
    """The interface every transport implements."""

    name: str
    capabilities: Capabilities

    def stream(self, call: ProviderCall) -> AsyncIterator[ProviderChunk]:
        """The chat answer as chunks: text, tool-call pieces, reasoning, usage and the provider's finish."""
        ...

    async def generate(self, call: ProviderCall) -> MediaOutput:
        """An image, speech or transcription."""
        ...


#: Built-in transports, imported on first use (litellm's module is cheap; litellm itself is not).
_BUILTIN = {
    "native": "nbplayground.core.transports.native_openai",
    "litellm": "nbplayground.core.transports.litellm",
    "mock": "nbplayground.core.transports.mock",
    "native_anthropic": "nbplayground.core.transports.native_anthropic",
    "native_gemini": "nbplayground.core.transports.native_gemini",
}
_ALIASES = {"native_openai": "native", "openai_native": "native"}
_registry: dict[str, Transport] = {}
_plugin_providers: dict[str, str] = {}
_lock = threading.Lock()
_entry_points_loaded = False


def register(transport: Transport) -> Transport:
    """Add (or replace) a transport; its ``providers`` (if any) then resolve to it. Returns it."""
    if not isinstance(transport, Transport):
        raise TypeError(
            f"{transport!r} is not a transport: it needs name, capabilities, stream() and generate()."
        )
    with _lock:
        _registry[transport.name] = transport
        for prefix in getattr(transport, "providers", ()) or ():
            _plugin_providers[str(prefix)] = transport.name
    return transport


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            register(obj() if callable(obj) and not isinstance(obj, Transport) else obj)
        except Exception as exc:  # a broken plugin must not break the others
            import warnings

            warnings.warn(
                f"nbplayground: transport plugin {ep.name!r} could not be loaded: {exc}", stacklevel=2
            )


def get(name: str) -> Transport:
    """The transport called ``name`` (built-in, registered, or from a plugin's entry point)."""
    name = _ALIASES.get(name, name)
    found = _registry.get(name)
    if found is not None:
        return found
    if name in _BUILTIN:
        module = importlib.import_module(_BUILTIN[name])
        return register(module.TRANSPORT)
    _load_entry_points()
    found = _registry.get(name)
    if found is None:
        raise KeyError(f"no transport named {name!r}; known: {', '.join(sorted(names()))}")
    return found


def names() -> list[str]:
    """Every transport name that can be used (built-in, registered and plugins)."""
    _load_entry_points()
    return sorted(set(_BUILTIN) | set(_registry))


def provider_transport(provider: str) -> str | None:
    """The plugin transport that serves models written ``<provider>/...``, if one does."""
    if provider in _plugin_providers:
        return _plugin_providers[provider]
    if not _entry_points_loaded:
        _load_entry_points()
    return _plugin_providers.get(provider)


async def prepare(transport: Transport, call: ProviderCall | None = None) -> None:
    """Run the transport's slow first-use work (imports) in a thread, so the engine's loop never stalls."""
    prep = getattr(transport, "prepare", None)
    if prep is None or _is_ready(transport, call):
        return
    import asyncio

    await asyncio.to_thread(prep, call)


def _is_ready(transport: Transport, call: ProviderCall | None) -> bool:
    check = getattr(transport, "is_ready", None)
    return bool(check(call)) if check is not None else False


def warm(name: str = "litellm") -> None:
    """Start a transport's first-use work in a background thread now (when a model that needs it is configured)."""
    transport = get(name)
    prep = getattr(transport, "prepare", None)
    if prep is not None and not _is_ready(transport, None):
        threading.Thread(target=prep, args=(None,), name=f"nbplayground-warm-{name}", daemon=True).start()


def for_call(call: ProviderCall) -> Transport:
    """The transport that runs ``call``."""
    if call.provider == "mock":
        return get("mock")
    return get(call.transport if call.transport not in ("auto", "") else "litellm")


__all__ = [
    "Capabilities",
    "Transport",
    "for_call",
    "get",
    "names",
    "prepare",
    "provider_transport",
    "register",
    "warm",
]
