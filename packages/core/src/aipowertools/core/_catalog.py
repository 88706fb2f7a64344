"""The model catalog: litellm's bundled model map, curated aliases, user overrides."""

from __future__ import annotations

import difflib
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aipowertools.core._aliases import CURATED, LOCAL, LOCAL_PROVIDERS
from aipowertools.core._errors import ConfigurationError, UnknownModelError

# litellm's ``supports_<x>`` flags, under the names users ask for
_FLAG_NAMES = {
    "function_calling": "tools",
    "response_schema": "json",
    "parallel_function_calling": "parallel_tools",
}
_TIER_KEY = re.compile(r"^(?P<kind>.+)_above_(?P<n>\d+)(?P<k>k?)_tokens$")
_TIER_FIELDS = {
    "input_cost_per_token": "input_cost_per_token",
    "output_cost_per_token": "output_cost_per_token",
    "cache_read_input_token_cost": "cache_read_input_token_cost",
    "cache_creation_input_token_cost": "cache_creation_input_token_cost",
}
DEFAULT_PRICE_MAP_URL = (
    "https://raw.githubusercontent.com/BerriAI/litellm/main/model_prices_and_context_window.json"
)


class PriceTier(BaseModel):
    """Prices that apply to a whole call once its prompt exceeds ``above_tokens``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    above_tokens: int = Field(gt=0)
    input_cost_per_token: float | None = Field(default=None, ge=0)
    output_cost_per_token: float | None = Field(default=None, ge=0)
    cache_read_input_token_cost: float | None = Field(default=None, ge=0)
    cache_creation_input_token_cost: float | None = Field(default=None, ge=0)


class ModelInfo(BaseModel):
    """What the suite knows about one model: prices per token, limits, capabilities, quality.

    Prices are USD per token. ``None`` for cache prices means "billed as normal input".

    Example:
        >>> from aipowertools.core import default_catalog
        >>> info = default_catalog().get("gpt-4o-mini")
        >>> info.provider, info.supports("tools")
        ('openai', True)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    provider: str = Field(min_length=1)
    litellm_model: str = Field(min_length=1)
    input_cost_per_token: float = Field(default=0.0, ge=0)
    output_cost_per_token: float = Field(default=0.0, ge=0)
    cache_read_input_token_cost: float | None = Field(default=None, ge=0)
    cache_creation_input_token_cost: float | None = Field(default=None, ge=0)
    output_cost_per_reasoning_token: float | None = Field(default=None, ge=0)
    price_tiers: tuple[PriceTier, ...] = ()
    context_window: int | None = Field(default=None, gt=0)
    max_output_tokens: int | None = Field(default=None, gt=0)
    capabilities: frozenset[str] = frozenset()
    quality: float | None = Field(default=None, ge=0, le=1)
    local: bool = False
    latency_ms: float | None = Field(default=None, ge=0)
    mode: str = "chat"

    @field_validator("capabilities", mode="before")
    @classmethod
    def _normalise_capabilities(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, Iterable):
            return frozenset(_FLAG_NAMES.get(str(v), str(v)) for v in value)
        return value

    def supports(self, feature: str) -> bool:
        """Whether the model has ``feature`` (``"tools"``, ``"vision"``, ``"json"``, ...)."""
        return _FLAG_NAMES.get(feature, feature) in self.capabilities

    @property
    def price_per_1k(self) -> float:
        """Blended USD price per 1,000 tokens, half input and half output (for comparison)."""
        return (self.input_cost_per_token + self.output_cost_per_token) * 500.0


def _tiers(entry: Mapping[str, Any]) -> tuple[PriceTier, ...]:
    found: dict[int, dict[str, float]] = {}
    for key, value in entry.items():
        match = _TIER_KEY.match(key)
        if match is None or match["kind"] not in _TIER_FIELDS or not isinstance(value, float | int):
            continue
        threshold = int(match["n"]) * (1000 if match["k"] else 1)
        found.setdefault(threshold, {})[_TIER_FIELDS[match["kind"]]] = float(value)
    return tuple(PriceTier(above_tokens=n, **found[n]) for n in sorted(found))


def _price(entry: Mapping[str, Any], key: str) -> float | None:
    value = entry.get(key)
    return float(value) if isinstance(value, float | int) and not isinstance(value, bool) else None


def info_from_litellm(model_id: str, litellm_model: str, entry: Mapping[str, Any]) -> ModelInfo:
    """Build a :class:`ModelInfo` from one entry of litellm's ``model_cost`` map."""
    provider = str(entry.get("litellm_provider") or litellm_model.partition("/")[0] or "unknown")
    flags = {k[len("supports_") :] for k, v in entry.items() if k.startswith("supports_") and v}
    context = entry.get("max_input_tokens") or entry.get("max_tokens")
    output = entry.get("max_output_tokens") or entry.get("max_tokens")
    return ModelInfo(
        id=model_id,
        provider=provider,
        litellm_model=litellm_model,
        input_cost_per_token=_price(entry, "input_cost_per_token") or 0.0,
        output_cost_per_token=_price(entry, "output_cost_per_token") or 0.0,
        cache_read_input_token_cost=_price(entry, "cache_read_input_token_cost"),
        cache_creation_input_token_cost=_price(entry, "cache_creation_input_token_cost"),
        output_cost_per_reasoning_token=_price(entry, "output_cost_per_reasoning_token"),
        price_tiers=_tiers(entry),
        context_window=context if isinstance(context, int) and context > 0 else None,
        max_output_tokens=output if isinstance(output, int) and output > 0 else None,
        capabilities=frozenset(flags),
        local=provider in LOCAL_PROVIDERS,
        mode=str(entry.get("mode") or "chat"),
    )


def _validation_message(exc: ValidationError, where: str) -> str:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}" for err in exc.errors()
    )
    return f"invalid model definition {where}: {problems}"


Fetcher = Callable[[str], bytes]


def _urlopen(url: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as response:
        data: bytes = response.read()
    return data


class ModelCatalog:
    """Models the suite can price and route to.

    Built on litellm's bundled model map (thousands of models, read offline), with curated
    aliases (``claude-sonnet``, ``gpt-4o-mini``, ``gemini-flash``, ``ollama/llama3``, ...)
    carrying a quality score, plus anything you add or override. Lookups such as
    :meth:`by_capability` search the curated and user-added models; :meth:`get` also finds
    any name in litellm's map.

    Args:
        model_map: A litellm-style price map to use instead of litellm's bundled one.
        curated: Whether to include the curated aliases.

    Example:
        >>> catalog = ModelCatalog()
        >>> catalog.get("claude-sonnet").provider
        'anthropic'
        >>> "gpt-4o" in {m.id for m in catalog.by_capability("vision", "tools")}
        True
    """

    def __init__(self, model_map: Mapping[str, Any] | None = None, *, curated: bool = True) -> None:
        self._lock = threading.RLock()
        self._map: Mapping[str, Any] | None = model_map
        self._curated = curated
        self._models: dict[str, ModelInfo] | None = None
        self._cache: dict[str, ModelInfo] = {}
        self._latency: dict[str, float] = {}

    # ------------------------------------------------------------------ construction

    def _model_map(self) -> Mapping[str, Any]:
        if self._map is None:
            from aipowertools.core._litellm import bundled_model_map

            self._map = bundled_model_map()
        return self._map

    def _registered(self) -> dict[str, ModelInfo]:
        models = self._models
        if models is not None:
            return models
        with self._lock:
            if self._models is None:
                built: dict[str, ModelInfo] = {}
                if self._curated:
                    model_map = self._model_map()
                    for alias, (name, quality) in CURATED.items():
                        entry = model_map.get(name)
                        if isinstance(entry, Mapping):
                            info = info_from_litellm(alias, name, entry)
                            built[alias] = info.model_copy(update={"quality": quality})
                    for alias, fields in LOCAL.items():
                        built[alias] = ModelInfo(id=alias, local=True, **fields)
                self._models = built
            return self._models

    # ------------------------------------------------------------------ lookups

    def get(self, model: str) -> ModelInfo:
        """Return the model named ``model``: a curated or added id, or any litellm model name.

        Args:
            model: An id such as ``"claude-sonnet"`` or a litellm name such as
                ``"gpt-4o-2024-08-06"`` or ``"anthropic/claude-sonnet-4-5"``.

        Returns:
            The model's information, with its observed latency if any was recorded.

        Raises:
            UnknownModelError: No such model; the error lists close matches.
        """
        if not isinstance(model, str):
            raise ConfigurationError(
                f"a model is named by a string such as 'gpt-4o-mini', got "
                f"{type(model).__name__} {model!r}"
            )
        info = self._registered().get(model) or self._cache.get(model)
        if info is None:
            info = self._from_map(model)
            if info is None:
                raise UnknownModelError(model, self._close_matches(model))
            self._cache[model] = info
        latency = self._latency.get(info.id)
        if latency is not None and latency != info.latency_ms:
            return info.model_copy(update={"latency_ms": latency})
        return info

    def __contains__(self, model: object) -> bool:
        if not isinstance(model, str):
            return False
        try:
            self.get(model)
        except UnknownModelError:
            return False
        return True

    def _from_map(self, model: str) -> ModelInfo | None:
        if model == "sample_spec":  # litellm's documentation entry, not a model
            return None
        model_map = self._model_map()
        entry = model_map.get(model)
        if isinstance(entry, Mapping):
            return info_from_litellm(model, model, entry)
        provider, slash, bare = model.partition("/")
        if not slash or not bare:
            return None
        # "anthropic/claude-sonnet-4-5" is listed as "claude-sonnet-4-5" by litellm
        candidate = model_map.get(bare)
        if isinstance(candidate, Mapping) and candidate.get("litellm_provider") == provider:
            return info_from_litellm(model, model, candidate)
        if provider in LOCAL_PROVIDERS:
            # Local models cost nothing: any "ollama/<name>" is known, at $0. Limits come
            # from litellm's "ollama/<name>" entry when there is one ("ollama_chat/llama3").
            listed = model_map.get(f"ollama/{bare}")
            base = info_from_litellm(model, model, listed) if isinstance(listed, Mapping) else None
            return ModelInfo(
                id=model,
                provider=provider,
                litellm_model=model,
                local=True,
                context_window=base.context_window if base else None,
                max_output_tokens=base.max_output_tokens if base else None,
                capabilities=base.capabilities if base else frozenset(),
            )
        return None

    def _close_matches(self, model: str) -> list[str]:
        names = list(self._registered())
        close = difflib.get_close_matches(model, names, n=3, cutoff=0.6)
        if len(close) < 3:
            extra = difflib.get_close_matches(model, list(self._model_map()), n=3, cutoff=0.75)
            close += [n for n in extra if n not in close][: 3 - len(close)]
        return close

    def models(self) -> list[ModelInfo]:
        """All curated and user-added models, sorted by id."""
        return [self.get(model_id) for model_id in sorted(self._registered())]

    def ids(self) -> list[str]:
        """Ids of all curated and user-added models, sorted."""
        return sorted(self._registered())

    def by_provider(self, provider: str) -> list[ModelInfo]:
        """Models served by ``provider`` (``"openai"``, ``"anthropic"``, ``"ollama"``, ...)."""
        return [m for m in self.models() if m.provider == provider]

    def by_capability(self, *features: str) -> list[ModelInfo]:
        """Models that have every one of ``features`` (``"tools"``, ``"vision"``, ...).

        Raises:
            ConfigurationError: A feature name no model has (likely a typo); the message
                lists close matches.
        """
        for feature in features:
            self._check_feature(feature)
        return [m for m in self.models() if all(m.supports(f) for f in features)]

    def by_max_cost(self, per_1k_tokens: float) -> list[ModelInfo]:
        """Models whose blended price (half input, half output) per 1k tokens is at most this.

        Sorted from cheapest.
        """
        found = [m for m in self.models() if m.price_per_1k <= per_1k_tokens]
        return sorted(found, key=lambda m: (m.price_per_1k, m.id))

    def by_context_window(self, min_tokens: int) -> list[ModelInfo]:
        """Models whose context window holds at least ``min_tokens`` tokens."""
        return [m for m in self.models() if (m.context_window or 0) >= min_tokens]

    def by_latency(self, max_ms: float) -> list[ModelInfo]:
        """Models whose observed latency is at most ``max_ms``, fastest first.

        Models with no recorded latency are left out; latencies come from
        :meth:`record_latency`, which every ``ProviderMonitor`` (the router's included) calls
        for the successful calls it records (into the default catalog unless given another).
        """
        found = [m for m in self.models() if m.latency_ms is not None and m.latency_ms <= max_ms]
        return sorted(found, key=lambda m: (m.latency_ms or 0.0, m.id))

    def supports(self, model: str, feature: str) -> bool:
        """Whether ``model`` has ``feature``.

        Raises:
            UnknownModelError: Unknown model.
            ConfigurationError: Unknown feature name.
        """
        self._check_feature(feature)
        return self.get(model).supports(feature)

    def features(self) -> set[str]:
        """Every capability name known to the catalog (litellm's flags, renamed)."""
        names = {"tools", "json", "parallel_tools"}
        model_map = self._model_map()
        for entry in model_map.values():
            if isinstance(entry, Mapping):
                names.update(k[len("supports_") :] for k in entry if k.startswith("supports_"))
        names.difference_update(_FLAG_NAMES)
        for info in self._registered().values():
            names.update(info.capabilities)
        return names

    def _check_feature(self, feature: str) -> None:
        known = self.features()
        if _FLAG_NAMES.get(feature, feature) not in known:
            close = difflib.get_close_matches(feature, sorted(known), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigurationError(
                f"unknown capability {feature!r}{hint} Known: {', '.join(sorted(known))}"
            )

    # ------------------------------------------------------------------ changes

    def add(self, model: ModelInfo | None = None, /, **fields: Any) -> ModelInfo:
        """Add a model, from a :class:`ModelInfo` or from its fields.

        Args:
            model: A ready :class:`ModelInfo`.
            **fields: The fields of a new one (``id``, ``provider``, ``litellm_model``,
                prices, ...); ``litellm_model`` defaults to ``id``.

        Returns:
            The added model.

        Raises:
            ConfigurationError: The fields are invalid, or the id is already registered
                (use :meth:`update`).
        """
        if model is None:
            fields.setdefault("litellm_model", fields.get("id"))
            if fields.get("provider") in LOCAL_PROVIDERS:
                fields.setdefault("local", True)
            try:
                model = ModelInfo(**fields)
            except ValidationError as exc:
                raise ConfigurationError(_validation_message(exc, repr(fields.get("id")))) from exc
        with self._lock:
            registered = self._registered()
            if model.id in registered:
                raise ConfigurationError(
                    f"model {model.id!r} is already in the catalog; use catalog.update(...)"
                )
            registered[model.id] = model
            self._cache.pop(model.id, None)
        return model

    def update(self, model: str, /, **fields: Any) -> ModelInfo:
        """Change fields of a model (curated, added, or from litellm's map) in this catalog.

        Args:
            model: The model's id or litellm name.
            **fields: New values, e.g. ``quality=0.9`` or ``input_cost_per_token=1e-6``.

        Returns:
            The updated model.

        Raises:
            UnknownModelError: Unknown model.
            ConfigurationError: A field is unknown or its value invalid.
        """
        with self._lock:
            current = self.get(model)
            data = current.model_dump()
            data.update(fields)
            data["id"] = current.id
            try:
                updated = ModelInfo(**data)
            except ValidationError as exc:
                raise ConfigurationError(_validation_message(exc, repr(model))) from exc
            self._registered()[current.id] = updated
            self._cache.pop(current.id, None)
        return updated

    def load(self, path: str | Path) -> list[ModelInfo]:
        """Add or update models from a TOML or YAML file.

        The file has a ``models`` table keyed by id; known ids are updated with the given
        fields, new ids are added::

            [models.gpt-4o]
            quality = 0.9

            [models."my-finetune"]
            provider = "openai"
            litellm_model = "ft:gpt-4o-mini:acme::abc123"
            input_cost_per_token = 3e-7
            output_cost_per_token = 1.2e-6

        Args:
            path: A ``.toml``, ``.yaml`` or ``.yml`` file.

        Returns:
            The added or updated models.

        Raises:
            ConfigurationError: The file is missing, unparsable, or defines an invalid model.
        """
        path = Path(path)
        data = _read_config(path)
        models = data.get("models")
        if not isinstance(models, Mapping):
            raise ConfigurationError(
                f"{path}: expected a 'models' table mapping model ids to their fields"
            )
        loaded: list[ModelInfo] = []
        for model_id, fields in models.items():
            if not isinstance(fields, Mapping):
                raise ConfigurationError(f"{path}: models.{model_id} must be a table of fields")
            try:
                if str(model_id) in self:
                    loaded.append(self.update(str(model_id), **fields))
                else:
                    loaded.append(self.add(id=str(model_id), **fields))
            except ConfigurationError as exc:
                raise ConfigurationError(f"{path}: {exc}") from exc
        return loaded

    def refresh(self, url: str = DEFAULT_PRICE_MAP_URL, *, fetcher: Fetcher | None = None) -> int:
        """Replace the price map with a fresh copy of litellm's JSON map from ``url``.

        Never called automatically: the catalog works offline unless you call this. Curated
        aliases and the cache are rebuilt from the new map; added models and overrides made
        with :meth:`add` / :meth:`update` are lost, so re-apply them afterwards.

        Args:
            url: Where to fetch the JSON from.
            fetcher: A function ``url -> bytes``; defaults to ``urllib`` with a 30 s timeout.

        Returns:
            The number of models in the new map.

        Raises:
            ConfigurationError: The download failed or is not a litellm-style JSON map.
        """
        fetch = fetcher or _urlopen
        try:
            data = json.loads(fetch(url))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot refresh the price map from {url}: {exc}") from exc
        if not isinstance(data, dict) or not any(
            isinstance(v, dict) and "input_cost_per_token" in v for v in data.values()
        ):
            raise ConfigurationError(
                f"{url} is not a litellm model map (a JSON object of models with prices)"
            )
        with self._lock:
            self._map = data
            self._models = None
            self._cache.clear()
        return len(data)

    def record_latency(self, model: str, latency_ms: float, *, weight: float = 0.2) -> float:
        """Fold an observed call latency into ``model``'s running latency estimate.

        Uses an exponentially weighted moving average; the first sample is taken as is.

        Args:
            model: The model's id or litellm name.
            latency_ms: The observed latency in milliseconds.
            weight: Weight of the new sample (0-1].

        Returns:
            The new estimate in milliseconds.

        Raises:
            ConfigurationError: A negative latency or a weight outside (0, 1].
        """
        if not latency_ms >= 0:
            raise ConfigurationError(f"latency must be >= 0 ms, got {latency_ms!r}")
        if not 0 < weight <= 1:
            raise ConfigurationError(f"weight must be in (0, 1], got {weight!r}")
        model_id = self.get(model).id
        with self._lock:
            previous = self._latency.get(model_id)
            value = latency_ms if previous is None else previous + weight * (latency_ms - previous)
            self._latency[model_id] = value
        return value


def _read_config(path: Path) -> Mapping[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read catalog file {path}: {exc}") from exc
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover - Python 3.10
                import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]
            data: Any = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml  # type: ignore[import-untyped, unused-ignore]

            data = yaml.safe_load(text)
        else:
            raise ConfigurationError(f"{path}: use a .toml, .yaml or .yml catalog file")
    except ConfigurationError:
        raise
    except Exception as exc:  # tomllib.TOMLDecodeError, yaml.YAMLError
        raise ConfigurationError(f"cannot parse catalog file {path}: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ConfigurationError(f"{path}: expected a table at the top level")
    return data


_default: ModelCatalog | None = None
_default_lock = threading.Lock()


def default_catalog() -> ModelCatalog:
    """The process-wide catalog shared by the router, the cost functions and the tracker.

    On first use, the TOML/YAML file named by ``AIPOWERTOOLS_CATALOG`` (if set) is loaded
    into it with :meth:`ModelCatalog.load`, so overrides apply everywhere without code.
    """
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                catalog = ModelCatalog()
                path = os.environ.get("AIPOWERTOOLS_CATALOG", "").strip()
                if path:
                    catalog.load(path)
                _default = catalog
    return _default
