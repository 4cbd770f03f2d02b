"""Model resolution, API keys and prices.

A model string becomes a :class:`ResolvedModel`: which provider, which transport, which endpoint, which
env var holds the key and what a token costs. Nothing here imports litellm: the price table and the
list of known models come from the JSON cost map that ships inside the litellm package, read directly
(``LITELLM_LOCAL_MODEL_COST_MAP`` semantics, no network, ~20 ms once).
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbplayground import config
from nbplayground.core.errors import BadParameterError, MissingKeyError, UnknownModelError
from nbplayground.core.secrets import remember_secret

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

#: Default env var holding the key of each provider (litellm's names).
PROVIDER_KEY_ENV: dict[str, str] = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "groq": "GROQ_API_KEY",
    "cohere": "COHERE_API_KEY",
    "cohere_chat": "COHERE_API_KEY",
    "together_ai": "TOGETHERAI_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "xai": "XAI_API_KEY",
    "perplexity": "PERPLEXITYAI_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "fireworks_ai": "FIREWORKS_AI_API_KEY",
    "deepinfra": "DEEPINFRA_API_KEY",
    "azure": "AZURE_API_KEY",
    "ai21": "AI21_API_KEY",
    "huggingface": "HF_TOKEN",
    "replicate": "REPLICATE_API_KEY",
    "cerebras": "CEREBRAS_API_KEY",
    "nvidia_nim": "NVIDIA_NIM_API_KEY",
    "voyage": "VOYAGE_API_KEY",
}
#: Providers that run locally or authenticate another way (cloud credentials): no key check.
KEYLESS_PROVIDERS = {"mock", "ollama", "ollama_chat", "lm_studio", "hosted_vllm", "vllm", "llamafile",
                     "bedrock", "bedrock_converse", "vertex_ai", "sagemaker"}  # fmt: skip
#: Providers that speak the OpenAI chat-completions wire format: nbplayground streams them natively.
OPENAI_WIRE = {"openai", "custom_openai", "hosted_vllm", "lm_studio", "llamafile", "deepseek", "groq",
               "together_ai", "xai", "fireworks_ai", "deepinfra", "perplexity", "openrouter", "mistral",
               "cerebras", "nvidia_nim"}  # fmt: skip
DEFAULT_API_BASE = {
    "openai": "https://api.openai.com/v1",
    "deepseek": "https://api.deepseek.com/v1",
    "groq": "https://api.groq.com/openai/v1",
    "together_ai": "https://api.together.xyz/v1",
    "xai": "https://api.x.ai/v1",
    "fireworks_ai": "https://api.fireworks.ai/inference/v1",
    "deepinfra": "https://api.deepinfra.com/v1/openai",
    "perplexity": "https://api.perplexity.ai",
    "openrouter": "https://openrouter.ai/api/v1",
    "mistral": "https://api.mistral.ai/v1",
    "cerebras": "https://api.cerebras.ai/v1",
    "nvidia_nim": "https://integrate.api.nvidia.com/v1",
}
#: Per-call options litellm accepts in params. They reach the provider but are never stored.
CALL_OPTIONS = {"api_key", "api_base", "base_url", "timeout", "total_timeout", "extra_headers", "api_version",
                "organization"}  # fmt: skip
#: Options that change where a request goes or what credentials it carries (ours and litellm's names).
#: The REST API refuses them unless the server allows them (``c.NBPlayground.allow_connection_options``).
CONNECTION_OPTIONS = frozenset({
    "api_key", "api_base", "base_url", "extra_headers", "headers", "default_headers", "extra_query",
    "organization", "api_version", "api_type", "custom_llm_provider", "deployment_id", "model_list",
    "proxy", "proxies", "http_client", "client", "ssl_verify", "client_id", "client_secret", "tenant_id",
    "azure_ad_token", "azure_ad_token_provider", "azure_username", "azure_password", "aws_access_key_id",
    "aws_secret_access_key", "aws_session_token", "aws_region_name", "aws_profile_name", "aws_role_name",
    "aws_session_name", "aws_web_identity_token", "aws_sts_endpoint", "aws_bedrock_runtime_endpoint",
    "vertex_project", "vertex_location", "vertex_credentials", "vertex_ai_project", "vertex_ai_location",
    "vertex_ai_credentials", "project_id", "region_name", "account_id", "token", "access_token",
})  # fmt: skip
# Any other credential, endpoint or cloud setting by its shape (``*_api_key``, ``*_token``, ``*_url``,
# ``aws_*``...); counts such as ``max_tokens`` end in ``_tokens`` and do not match.
_CONNECTION_NAME = re.compile(
    r"^(aws|azure|vertex|vertex_ai|gcp|google|watsonx|sagemaker|bedrock|oci|databricks|snowflake)_"
    r"|(^|_)(api_?key|key|token|secret|password|credentials?|endpoint|url|uri|api_base|base|headers?|proxy)$",
    re.IGNORECASE,
)
_NOT_CONNECTION = frozenset({"prompt_cache_key"})  # OpenAI's cache bucket name, not a credential


def connection_options(params: dict[str, Any] | None) -> list[str]:
    """The names in ``params`` that set an endpoint, headers, a proxy or credentials, in their order."""
    return [
        k for k in (params or {})
        if isinstance(k, str) and k not in _NOT_CONNECTION and (k in CONNECTION_OPTIONS or _CONNECTION_NAME.search(k))
    ]  # fmt: skip


#: Sent as the key when litellm calls a per-call endpoint that came without a per-call key: given no
#: key at all, litellm reads the provider's env var itself, and that key must not go there.
NO_KEY = "no-key"
#: Providers whose only credential in litellm is the api_key, so that :data:`NO_KEY` replaces every env
#: lookup; the others (bedrock, vertex_ai, azure, ...) sign with this machine's cloud identity.
_KEY_ONLY_PROVIDERS = (set(PROVIDER_KEY_ENV) - {"azure"}) | OPENAI_WIRE | {
    "ollama", "ollama_chat", "vllm", "hosted_vllm", "lm_studio", "llamafile"}  # fmt: skip


def key_only(provider: str) -> bool:
    """Whether the provider's only credential in litellm is an API key (no cloud identity to sign with)."""
    return provider in _KEY_ONLY_PROVIDERS


#: Headers that would change where a request goes (or break its framing): never per call.
_ROUTING_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "forwarded",
                              "x-forwarded-host", "x-forwarded-for", "x-real-ip"})  # fmt: skip
#: Sampling and request parameters nbplayground knows; anything else is rejected with a suggestion.
KNOWN_PARAMS = {
    "temperature", "max_tokens", "max_completion_tokens", "top_p", "top_k", "stop", "seed",
    "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "n", "user",
    "tool_choice", "parallel_tool_calls", "reasoning_effort", "thinking", "extra_body", "metadata",
    "response_format", "modalities", "audio", "prediction", "service_tier", "store", "verbosity",
    "web_search_options", "safety_identifier", "prompt_cache_key",
    # media kinds
    "size", "quality", "style", "voice", "speed", "language", "instructions", "background",
    "output_format", "response_format_audio", "temperature_audio", "prompt",
    # mock provider knobs
    "mock_delay_ms",
}  # fmt: skip


@functools.cache
def cost_map() -> dict[str, dict[str, Any]]:
    """litellm's bundled model price/context map, read without importing litellm."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / "model_prices_and_context_window_backup.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError:
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict) and k != "sample_spec"}


def cost_map_ready() -> bool:
    """Whether the cost map is loaded already (the first load reads a large JSON file: keep it off loops)."""
    return cost_map.cache_info().currsize > 0


@functools.cache
def known_providers() -> frozenset[str]:
    """Every provider named in the cost map plus the ones nbplayground knows itself."""
    names = {str(v.get("litellm_provider")) for v in cost_map().values() if v.get("litellm_provider")}
    return frozenset(names | set(PROVIDER_KEY_ENV) | KEYLESS_PROVIDERS | OPENAI_WIRE)


_MODE_KINDS = {"image_generation": "image", "audio_speech": "speech", "audio_transcription": "transcription"}


def kind_of(model: str) -> str:
    """The kind of run a model does by default: chat, image, speech or transcription (from its mode)."""
    from nbplayground.core import mock

    if model.startswith("mock/"):
        name = model.removeprefix("mock/")
        return next((k for k, m in mock.KIND_MODELS.items() if m == name), "chat")
    try:
        rm = resolve(model)
    except Exception:
        return "chat"
    return kind_for(rm)


def kind_for(rm: ResolvedModel) -> str:
    """:func:`kind_of` for a model resolved already."""
    if rm.provider == "mock":
        from nbplayground.core import mock

        return next((k for k, m in mock.KIND_MODELS.items() if m == rm.model), "chat")
    cmap = cost_map()
    info = cmap.get(rm.model) or cmap.get(rm.model.split("/", 1)[-1])
    if info is None:  # image models are listed per size, e.g. "1024-x-1024/dall-e-3"
        tail = "/" + rm.model.split("/", 1)[-1]
        info = next((v for k, v in cmap.items() if k.endswith(tail) and v.get("mode")), {})
    return _MODE_KINDS.get(str(info.get("mode")), "chat")


@dataclass(slots=True)
class ResolvedModel:
    """Where and how a model string will be run."""

    name: str  # what the user wrote (alias or custom name included)
    provider: str
    model: str  # the provider's own model name
    litellm_model: str  # "provider/model"
    transport: str  # "mock" | "native" | "litellm"
    api_base: str | None = None
    key_env: str | None = None
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    default_params: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def price(self, tokens_in: int | None, tokens_out: int | None) -> float | None:
        """USD for these tokens, or None when a needed price or either token count is unknown.

        An unknown count is not zero: a run whose provider reported only its input tokens has a cost
        nobody knows, and a batch's total must say so rather than undercount.
        """
        if tokens_in is None or tokens_out is None:
            return None
        total = 0.0
        for count, rate in ((tokens_in, self.input_cost_per_token), (tokens_out, self.output_cost_per_token)):
            if count:
                if rate is None:
                    return None
                total += count * rate
        return total


def model_names() -> list[str]:
    """Every model name the user could write: mock, configured, aliases and the cost map's chat models."""
    from nbplayground.core import mock

    s = config.settings()
    names = [f"mock/{m}" for m in mock.MOCK_MODELS]
    names += list(s.models) + list(s.aliases)
    for key, info in cost_map().items():
        provider = info.get("litellm_provider")
        names.append(key if "/" in key or not provider else f"{provider}/{key}")
    return names


def suggestions(model: str, n: int = 3) -> list[str]:
    """Close matches for a mistyped model name."""
    candidates = model_names()
    bare = {c.split("/", 1)[-1]: c for c in candidates}
    out = difflib.get_close_matches(model, candidates, n=n, cutoff=0.6)
    for m in difflib.get_close_matches(model.split("/", 1)[-1], list(bare), n=n, cutoff=0.75):
        if bare[m] not in out:
            out.append(bare[m])
    return out[:n]


#: Providers with a native transport of their own wire format (parsed without litellm: see bench_providers).
NATIVE_TRANSPORTS = {"anthropic": "native_anthropic", "gemini": "native_gemini"}


def _native(provider: str) -> str | None:
    if provider in OPENAI_WIRE:
        return "native"
    name = NATIVE_TRANSPORTS.get(provider)
    if name is None:
        return None
    from nbplayground.core import transports

    return name if name in transports.names() else None


def _transport_for(provider: str, requested: str = "auto") -> str:
    if provider == "mock":
        return "mock"
    if requested == "native":  # "the native one": each wire format has its own
        return _native(provider) or "litellm"
    if requested != "auto":
        return requested
    forced = os.environ.get("NBPLAYGROUND_TRANSPORT", "").strip().lower()
    if forced == "litellm":
        return "litellm"
    return _native(provider) or "litellm"


def resolve(model: str | None) -> ResolvedModel:
    """Turn what the user wrote into a :class:`ResolvedModel` (aliases, custom models, mock, litellm)."""
    s = config.settings()
    name = (model or s.default_model or config.DEFAULT_MODEL).strip()
    if not name:
        raise UnknownModelError("", suggestions=["mock/echo", "mock/lorem"])
    seen = {name}
    target = name
    while target in s.aliases:  # aliases may point at custom models or other aliases
        target = s.aliases[target]
        if target in seen:
            raise UnknownModelError(name, detail="alias loop")
        seen.add(target)
    custom = s.models.get(target)
    if custom is not None:
        rm = _resolve_plain(custom.model, allow_unknown=True)
        rm.name = name
        if custom.api_base:
            rm.api_base = custom.api_base
        if custom.api_key_env:
            rm.key_env = custom.api_key_env
        elif custom.api_base:
            rm.key_env = None  # a dedicated endpoint without a named key: none needed
        if custom.input_cost_per_token is not None:
            rm.input_cost_per_token = custom.input_cost_per_token
        if custom.output_cost_per_token is not None:
            rm.output_cost_per_token = custom.output_cost_per_token
        rm.default_params = dict(custom.params)
        rm.transport = _transport_for(rm.provider, custom.transport)
        return rm
    rm = _resolve_plain(target, allow_unknown=False)
    rm.name = name
    return rm


def _resolve_plain(model: str, allow_unknown: bool) -> ResolvedModel:
    cmap = cost_map()
    if model.startswith("mock/"):
        from nbplayground.core import mock

        short = model.split("/", 1)[1]
        if short not in mock.MOCK_MODELS:
            raise UnknownModelError(model, suggestions(model), detail="not a mock model")
        return ResolvedModel(
            name=model, provider="mock", model=short, litellm_model=model, transport="mock",
            input_cost_per_token=mock.INPUT_COST_PER_TOKEN, output_cost_per_token=mock.OUTPUT_COST_PER_TOKEN,
        )  # fmt: skip
    provider, _, rest = model.partition("/")
    if rest and provider not in known_providers():
        from nbplayground.core import transports

        plugin = transports.provider_transport(provider)
        if plugin is not None:  # a transport plugin serves this provider: it knows its models and keys
            return ResolvedModel(name=model, provider=provider, model=rest, litellm_model=model, transport=plugin)
    if rest and provider in known_providers():
        info = cmap.get(model) or cmap.get(rest) or {}
        if info.get("litellm_provider") not in (None, provider) and model not in cmap:
            info = {}
    else:
        info = cmap.get(model, {})
        provider = str(info.get("litellm_provider") or "")
        rest = model
        if not provider:
            if allow_unknown:
                provider = "openai"
            else:
                raise UnknownModelError(model, suggestions(model))
    return ResolvedModel(
        name=model,
        provider=provider,
        model=rest,
        litellm_model=f"{provider}/{rest}",
        transport=_transport_for(provider),
        api_base=None,
        key_env=None
        if provider in KEYLESS_PROVIDERS
        else PROVIDER_KEY_ENV.get(provider, f"{provider.upper()}_API_KEY"),
        input_cost_per_token=info.get("input_cost_per_token"),
        output_cost_per_token=info.get("output_cost_per_token"),
        info=info,
    )


def api_key_for(rm: ResolvedModel, params: dict[str, Any]) -> str | None:
    """The key to send: ``params['api_key']`` (per call), else the model's env var. Raises when missing.

    A per-call endpoint (``api_base`` / ``base_url`` in params) gets the per-call key or none: a key this
    machine holds (an env var, a configured model's key) never goes to an address chosen per call.
    """
    explicit = params.get("api_key")
    if explicit:
        remember_secret(str(explicit))
        return str(explicit)
    if params.get("api_base") or params.get("base_url"):
        return NO_KEY if rm.transport == "litellm" else None
    if rm.key_env is None:
        return None
    value = os.environ.get(rm.key_env)
    if not value:
        raise MissingKeyError(rm.provider, rm.key_env)
    remember_secret(value)
    return value


def key_status(rm: ResolvedModel) -> str:
    """'set', 'missing' or 'not needed' — never the key itself."""
    if rm.key_env is None:
        return "not needed"
    return "set" if os.environ.get(rm.key_env) else "missing"


def split_params(rm: ResolvedModel, params: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate params; return (sampling params to send and store, per-call options never stored)."""
    merged = {**rm.default_params, **(params or {})}
    options = {k: merged.pop(k) for k in list(merged) if k in CALL_OPTIONS}
    for key, value in merged.items():
        if key not in KNOWN_PARAMS:
            close = difflib.get_close_matches(key, sorted(KNOWN_PARAMS | CALL_OPTIONS), n=1, cutoff=0.7)
            hint = (
                f" Did you mean {close[0]!r}?" if close else " Pass provider-specific fields in extra_body."
            )
            raise BadParameterError(f"Unknown parameter {key!r}.{hint}", field=f"params.{key}")
        _check_param(key, value)
    for name in ("timeout", "total_timeout"):
        if name in options:
            _check_number(name, options[name], low=0, exclusive=True)
    endpoint = "api_base" if options.get("api_base") else "base_url" if options.get("base_url") else None
    if endpoint and rm.transport == "litellm" and rm.provider not in _KEY_ONLY_PROVIDERS:
        raise BadParameterError(
            f"Parameter {endpoint} cannot be used with {rm.provider}: litellm would sign the request with this "
            "machine's own cloud credentials. Configure the endpoint with nbp.configure(models=...) instead.",
            field=f"params.{endpoint}",
        )
    headers = options.get("extra_headers")
    if headers is not None:
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise BadParameterError(
                "Parameter extra_headers must be a dict of header names to strings.", field="params.extra_headers"
            )
        routing = sorted(k for k in headers if str(k).lower() in _ROUTING_HEADERS)
        if routing:
            raise BadParameterError(
                f"Parameter extra_headers may not set {', '.join(routing)}: they change where the request goes. "
                "Set the endpoint with api_base instead.",
                field="params.extra_headers",
            )
    return merged, options


def _check_number(
    key: str, value: Any, low: float | None = None, high: float | None = None, exclusive: bool = False
) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadParameterError(f"Parameter {key} must be a number, got {value!r}.", field=f"params.{key}")
    if low is not None and (value <= low if exclusive else value < low):
        raise BadParameterError(
            f"Parameter {key} must be {'>' if exclusive else '>='} {low}, got {value!r}.", field=f"params.{key}"
        )
    if high is not None and value > high:
        raise BadParameterError(f"Parameter {key} must be <= {high}, got {value!r}.", field=f"params.{key}")


def _check_param(key: str, value: Any) -> None:
    if key == "temperature":
        _check_number(key, value, 0, 2)
    elif key == "top_p":
        _check_number(key, value, 0, 1)
    elif key in ("presence_penalty", "frequency_penalty"):
        _check_number(key, value, -2, 2)
    elif key in ("max_tokens", "max_completion_tokens", "n", "top_k", "seed", "top_logprobs"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadParameterError(f"Parameter {key} must be an integer, got {value!r}.", field=f"params.{key}")
        if key != "seed" and value < (0 if key == "top_logprobs" else 1):
            raise BadParameterError(
                f"Parameter {key} must be a positive integer, got {value!r}.", field=f"params.{key}"
            )
    elif key == "mock_delay_ms":
        _check_number(key, value, 0)
    elif key == "stop" and not (
        value is None
        or isinstance(value, str)
        or (isinstance(value, list) and all(isinstance(v, str) for v in value))
    ):
        raise BadParameterError(
            f"Parameter stop must be a string or a list of strings, got {value!r}.", field="params.stop"
        )
