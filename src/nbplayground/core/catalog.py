"""The providers nbplayground can use, as typed rows: what ``nbp.providers()``, the API and the picker list.

Mock first, then the models configured by name, then every provider with a known key variable (those
litellm's cost map prices chat models for, and openai, anthropic and gemini always). Key status only,
never a key. litellm is not imported (the cost map is read as JSON).
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    """One provider (or one configured model): its models, the key variable it reads, and that key's status."""

    provider: str
    models: tuple[str, ...]  # a sample: the chat models litellm prices for it, sorted
    key_env: str | None  # None when it needs no key
    key_status: str  # 'set', 'missing' or 'not needed'
    transport: str
    api_base: str | None = None  # a configured model's endpoint


def providers() -> list[ProviderInfo]:
    """Every provider nbplayground can use, mock first."""
    from nbplayground import config
    from nbplayground.core import mock
    from nbplayground.core import providers as P

    out = [ProviderInfo("mock", tuple(f"mock/{m}" for m in mock.MOCK_MODELS), None, "not needed", "mock")]
    for name, cm in config.settings().models.items():
        rm = P.resolve(name)
        out.append(ProviderInfo(f"{rm.provider} (custom: {name})", (name,), rm.key_env or None, P.key_status(rm),
                                rm.transport, cm.api_base))  # fmt: skip
    by_provider: dict[str, list[str]] = {}
    for key, info in P.cost_map().items():
        provider = info.get("litellm_provider")
        if provider in P.PROVIDER_KEY_ENV and info.get("mode") in (None, "chat", "responses"):
            by_provider.setdefault(provider, []).append(
                key if key.startswith(f"{provider}/") else f"{provider}/{key}"
            )
    for provider, env in P.PROVIDER_KEY_ENV.items():
        models = sorted(by_provider.get(provider, []))
        if not models and provider not in ("openai", "anthropic", "gemini"):
            continue
        out.append(ProviderInfo(provider, tuple(models), env, "set" if os.environ.get(env) else "missing",
                                P.resolve(models[0]).transport if models else "litellm"))  # fmt: skip
    return out
