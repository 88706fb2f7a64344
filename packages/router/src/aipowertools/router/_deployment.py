"""Deployments: a model plus where to reach it, its limits and what it can do."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aipowertools.core.errors import ConfigurationError

if TYPE_CHECKING:
    from aipowertools.router._transport import Transport

#: Providers whose models run on the caller's own machines (never leave the network).
LOCAL_PROVIDERS = frozenset({"ollama", "ollama_chat", "llamacpp", "llama_cpp", "lm_studio", "vllm"})
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})

# Default quality priors (0..1) by model-name pattern, first match wins. They are rough tiers,
# meant to be overridden per deployment (``quality=``) and corrected by feedback.
_QUALITY_PRIORS: tuple[tuple[re.Pattern[str], float], ...] = tuple(
    (re.compile(p), q)
    for p, q in (
        (r"opus|gpt-5(?!-mini|-nano)|o3(?!-mini)|gemini-2\.5-pro|gpt-4\.5", 0.95),
        (
            r"sonnet|gpt-4o(?!-mini)|gpt-4\.1(?!-mini|-nano)|gpt-4-turbo|gemini-(1\.5|2\.\d)-pro",
            0.9,
        ),
        (r"o[134]-mini|gpt-5-mini|mistral-large|llama-?3\.?\d?[:-]?(70|405)b|qwen.*72b", 0.82),
        (r"gpt-4o-mini|gpt-4\.1-mini|haiku|gemini.*flash(?!-lite)|mistral-medium", 0.72),
        (r"gpt-4\.1-nano|gpt-5-nano|flash-lite|gpt-3\.5|mistral-small|qwen.*(14|32)b", 0.62),
        (r"llama|mistral|qwen|phi|gemma|deepseek", 0.55),
    )
)
_UNKNOWN_QUALITY = 0.5


def quality_prior(model: str) -> float:
    """Default quality tier (0..1) of a model from its name; 0.5 when nothing matches."""
    name = model.lower()
    for pattern, quality in _QUALITY_PRIORS:
        if pattern.search(name):
            return quality
    return _UNKNOWN_QUALITY


def provider_of(model: str) -> str:
    """The provider prefix of a litellm model string (``"openai"`` when there is none)."""
    prefix, sep, _ = model.partition("/")
    if sep:
        return prefix
    lowered = model.lower()
    if lowered.startswith("claude"):
        return "anthropic"
    if lowered.startswith("gemini"):
        return "gemini"
    if lowered.startswith(("mistral", "codestral", "open-mistral")):
        return "mistral"
    return "openai"


@dataclass(eq=False)
class Deployment:
    """A routing target: a model, where to reach it, its limits and what it can do.

    Anything left as ``None`` is filled from the model catalog when the router is built
    (prices, context window, capabilities) or from a documented default (quality tier,
    cold-start latency).

    Args:
        model: litellm model string, e.g. ``"openai/gpt-4o-mini"`` or ``"ollama_chat/llama3"``.
        name: unique name in the router; defaults to ``model`` (plus the host of ``api_base``).
        api_base: base URL (local servers, OpenAI-compatible endpoints, proxies).
        api_key: key for this deployment; by default the provider's environment variable.
        local: runs on the caller's own machines; guessed from the provider and ``api_base``.
        catalog_model: model name to look prices and limits up under (defaults to ``model``).
        input_cost_per_token: USD per prompt token.
        output_cost_per_token: USD per completion token.
        context_window: maximum prompt plus completion tokens.
        max_output_tokens: maximum completion tokens.
        supports_tools: accepts tool definitions.
        supports_vision: accepts images.
        supports_json: accepts a JSON / structured-output response format.
        quality: quality tier 0..1 (prior; feedback moves it).
        latency_ms: cold-start latency guess until calls have been observed.
        timeout: seconds before a call counts as timed out.
        weight: share of traffic under the ``weighted`` strategy.
        rpm: requests per minute this deployment accepts (enforced by a rate limiter).
        tpm: tokens per minute this deployment accepts.
        max_concurrency: calls in flight at most (``least_busy`` and the health filter use it).
        tags: free labels, matched by privacy policies and custom strategies.
        params: extra keyword arguments for every call (``temperature``, headers, ...).
        transport: how to call it; the router's default (litellm) when ``None``.
        pricing: the ``aipowertools.core.ModelInfo`` calls are priced with by core's
            ``cost()`` (cache, reasoning and tiered prices); filled from the catalog when
            the router is built, with this deployment's own two prices where they differ.

    Example:
        >>> Deployment("ollama_chat/llama3", api_base="http://localhost:11434").local
        True
    """

    model: str
    name: str = ""
    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False)
    local: bool | None = None
    catalog_model: str | None = None
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    context_window: int | None = None
    max_output_tokens: int | None = None
    supports_tools: bool | None = None
    supports_vision: bool | None = None
    supports_json: bool | None = None
    quality: float | None = None
    latency_ms: float | None = None
    timeout: float = 60.0
    weight: float = 1.0
    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None
    tags: frozenset[str] = frozenset()
    params: Mapping[str, Any] = field(default_factory=dict)
    transport: Transport | None = field(default=None, repr=False)
    pricing: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.model or not isinstance(self.model, str):
            raise ConfigurationError(
                f"Deployment model must be a non-empty litellm model string, got {self.model!r}"
            )
        if not self.name:
            host = urlsplit(self.api_base).netloc if self.api_base else ""
            self.name = f"{self.model}@{host}" if host else self.model
        if self.local is None:
            host = (urlsplit(self.api_base).hostname or "") if self.api_base else ""
            self.local = self.provider in LOCAL_PROVIDERS or host in _LOOPBACK
        if self.quality is not None and not 0.0 <= self.quality <= 1.0:
            raise ConfigurationError(
                f"Deployment {self.name!r}: quality must be between 0 and 1, got {self.quality}"
            )
        if self.timeout <= 0:
            raise ConfigurationError(
                f"Deployment {self.name!r}: timeout must be positive, got {self.timeout}"
            )
        if self.weight < 0:
            raise ConfigurationError(
                f"Deployment {self.name!r}: weight must not be negative, got {self.weight}"
            )
        self.tags = frozenset(self.tags)

    @property
    def provider(self) -> str:
        """Provider prefix of the model string (``openai``, ``anthropic``, ``ollama_chat``...)."""
        return provider_of(self.model)

    def replace(self, **changes: Any) -> Deployment:
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)


def _lookup(catalog: Any, name: str) -> Any:
    """Find ``name`` in a core ``ModelCatalog`` (or a plain mapping); ``None`` when absent."""
    if catalog is None:
        return None
    candidates = [name]
    if "/" in name:
        candidates.append(name.split("/", 1)[1])
    for candidate in candidates:
        for method in ("get", "find"):
            getter = getattr(catalog, method, None)
            if getter is None:
                continue
            try:
                info = getter(candidate)
            except (KeyError, LookupError, ValueError):
                info = None
            if info is not None:
                return info
    return None


def _attr(info: Any, *names: str) -> Any:
    for name in names:
        value = info.get(name) if isinstance(info, Mapping) else getattr(info, name, None)
        if value is not None:
            return value
    return None


def resolve(deployment: Deployment, catalog: Any = None) -> Deployment:
    """Fill a deployment's unset prices, limits and capabilities from ``catalog``.

    ``catalog`` is anything with ``get(name)`` returning a model-info object or mapping
    (``aipowertools.core.ModelCatalog``, a dict of dicts). Local deployments default to free;
    unknown cloud models keep ``None`` prices, which the router refuses to route to blindly.
    """
    info = _lookup(catalog, deployment.catalog_model or deployment.model)
    changes: dict[str, Any] = {}

    def fill(field_name: str, *info_names: str, default: Any = None) -> None:
        if getattr(deployment, field_name) is not None or field_name in changes:
            return
        value = _attr(info, *info_names) if info is not None else None
        if value is None:
            value = default
        if value is not None:
            changes[field_name] = value

    free = 0.0 if deployment.local else None
    fill("input_cost_per_token", "input_cost_per_token", default=free)
    fill("output_cost_per_token", "output_cost_per_token", default=free)
    fill("context_window", "context_window", "max_input_tokens", "max_tokens", default=8192)
    fill("max_output_tokens", "max_output_tokens", "max_tokens", default=4096)
    supports = getattr(info, "supports", None)
    if callable(supports):  # core ModelInfo: capabilities behind supports(feature)
        for field_name, feature in (
            ("supports_tools", "tools"),
            ("supports_vision", "vision"),
            ("supports_json", "json"),
        ):
            if getattr(deployment, field_name) is None:
                changes[field_name] = bool(supports(feature))
    fill("supports_tools", "supports_tools", "supports_function_calling", default=False)
    fill("supports_vision", "supports_vision", default=False)
    fill("supports_json", "supports_json", "supports_response_schema", default=False)
    fill("quality", "quality", default=quality_prior(deployment.catalog_model or deployment.model))
    fill("latency_ms", "latency_ms", default=300.0 if deployment.local else 800.0)
    if deployment.pricing is None and _is_model_info(info):
        changes["pricing"] = info
    return deployment.replace(**changes) if changes else deployment


def _is_model_info(info: Any) -> bool:
    from aipowertools.core import ModelInfo

    return isinstance(info, ModelInfo)
