"""LLMRouter: the framework-free front door."""

from __future__ import annotations

import importlib.util
import logging
import os
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aipowertools.cache import ResponseCache
from aipowertools.core.errors import (
    ConfigurationError,
    ContextWindowExceededError,
    RateLimitedError,
    RateLimitExceededError,
)
from aipowertools.core.stores import parse_store_url
from aipowertools.router import _telemetry
from aipowertools.router._attribution import CURRENT, Attribution, attribution, check_params
from aipowertools.router._cached import RouterCache
from aipowertools.router._complexity import (
    ComplexityClassifier,
    downgrade_factor,
    heuristic_complexity,
)
from aipowertools.router._context import Prompt, prepare, trim
from aipowertools.router._deployment import Deployment, resolve
from aipowertools.router._direct import OpenAICompatibleTransport
from aipowertools.router._engine import Decision, DecisionEngine, PrivacyPolicy, RouteRequest
from aipowertools.router._execute import Accounting, Executor, Observer
from aipowertools.router._health import DeploymentState, HealthPolicy
from aipowertools.router._result import Attempt, RouteResult, no_deployment
from aipowertools.router._strategies import Strategy, get_strategy
from aipowertools.router._stream import RouteStream
from aipowertools.router._sync import iterate_sync, run_sync
from aipowertools.router._telemetry import ROUTE_SPAN
from aipowertools.router._transport import LiteLLMTransport, Transport

if TYPE_CHECKING:
    from aipowertools.router._shared_health import SharedHealth

logger = logging.getLogger("aipowertools.router")

#: Default models per cloud provider name: a small and a large one.
PROVIDER_MODELS: dict[str, tuple[str, ...]] = {
    "openai": ("openai/gpt-4o-mini", "openai/gpt-4o"),
    "anthropic": ("anthropic/claude-haiku-4-5", "anthropic/claude-sonnet-4-5"),
    "gemini": ("gemini/gemini-2.5-flash", "gemini/gemini-2.5-pro"),
    "mistral": ("mistral/mistral-small-latest", "mistral/mistral-large-latest"),
}
_FEEDBACK_MEMORY = 10_000


def _default_catalog() -> Any:
    try:
        from aipowertools.core import default_catalog
    except ImportError:  # pragma: no cover - core without a catalog
        return None
    return default_catalog()


def _local(spec: str | Deployment, ollama_url: str, llamacpp_url: str | None) -> Deployment:
    if isinstance(spec, Deployment):
        return spec if spec.local else spec.replace(local=True)
    prefix, sep, name = spec.partition("/")
    if not sep:
        prefix, name = "ollama", spec
    if prefix in ("ollama", "ollama_chat"):
        return Deployment(f"ollama_chat/{name}", api_base=ollama_url, local=True,
                          catalog_model=f"ollama/{name}")  # fmt: skip
    if prefix in ("llamacpp", "llama_cpp", "llama.cpp"):
        if not llamacpp_url:
            raise ConfigurationError(
                f"local model {spec!r} is a llama.cpp model: pass llamacpp_url= (the server's "
                "base URL, e.g. http://localhost:8080)"
            )
        return Deployment(
            f"openai/{name}",
            name=f"llamacpp/{name}",
            api_base=llamacpp_url.rstrip("/") + "/v1",
            api_key="sk-no-key-required",
            local=True,
        )
    return Deployment(spec, local=True)


#: Environment variables the providers' own SDKs read: the API key that makes a provider
#: available to ``LLMRouter()`` without arguments, and the base URL its calls go to.
PROVIDER_ENV: dict[str, tuple[str, str | None]] = {
    "openai": ("OPENAI_API_KEY", "OPENAI_BASE_URL"),
    "anthropic": ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"),
    "gemini": ("GEMINI_API_KEY", None),
    "mistral": ("MISTRAL_API_KEY", None),
}


def _cloud(spec: str | Deployment) -> list[Deployment]:
    if isinstance(spec, Deployment):
        return [spec]
    models = PROVIDER_MODELS.get(spec)
    if models is not None:
        base_env = PROVIDER_ENV.get(spec, ("", None))[1]
        base = os.environ.get(base_env) if base_env else None
        return [Deployment(m, local=False, api_base=base or None) for m in models]
    return [Deployment(spec, local=False)]


def _from_environment() -> list[Deployment]:
    """Deployments of a router given none: ``AIPOWERTOOLS_ROUTER_MODELS`` (comma-separated
    litellm model strings), else the providers whose API key is set in the environment."""
    listed = [m.strip() for m in os.environ.get(MODELS_ENV, "").split(",") if m.strip()]
    if listed:
        return [Deployment(m) for m in listed]
    return [
        d
        for provider, (key_env, _) in PROVIDER_ENV.items()
        if os.environ.get(key_env)
        for d in _cloud(provider)
    ]


MODELS_ENV = "AIPOWERTOOLS_ROUTER_MODELS"


def _ollama_url() -> str:
    """``OLLAMA_HOST`` (as the Ollama CLI reads it; scheme optional), else localhost:11434."""
    host = os.environ.get("OLLAMA_HOST", "").strip()
    if not host:
        return "http://localhost:11434"
    return host if "://" in host else f"http://{host}"


class LLMRouter:
    """Routes each request to the best deployment for its cost, latency, quality and privacy.

    Args:
        deployments: explicit deployments (or litellm model strings), for full control.
        local_models: local models: ``"llama3"`` / ``"ollama/llama3"`` (Ollama at
            ``ollama_url``), ``"llamacpp/<name>"`` (llama.cpp at ``llamacpp_url``), or
            :class:`Deployment` objects.
        cloud_providers: provider names (``"openai"``, ``"anthropic"``, ``"gemini"``,
            ``"mistral"``: a small and a large model each, see ``PROVIDER_MODELS``; their
            calls go to ``OPENAI_BASE_URL`` / ``ANTHROPIC_BASE_URL`` when set), model
            strings, or :class:`Deployment` objects. With none of ``deployments``,
            ``local_models`` and ``cloud_providers``, the router takes
            ``AIPOWERTOOLS_ROUTER_MODELS`` (comma-separated model strings), else every
            provider whose API key is set (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``, ...).
        strategy: default strategy: a name (``cost_optimal``, ``quality_first``,
            ``latency_optimal``, ``weighted``, ``least_busy``, ``fallback``, ``race``,
            ``parallel_best``) or a :class:`Strategy`.
        budget_usd_per_month: monthly budget; attempts are reserved against it, and the
            quality floor relaxes as it depletes (``downgrade``).
        cost_tracker: the ``aipowertools.core.CostTracker`` to record into (one is created
            on the embedded default store when a budget is given and this is None).
        monitor: an ``aipowertools.core.ProviderMonitor`` fed with every attempt (a new one
            when None or True; False turns the feed off).
        catalog: model catalog for prices and limits (``aipowertools.core.default_catalog()``).
        transport: how deployments are called. The default,
            :class:`OpenAICompatibleTransport`, posts ``openai/`` calls directly and sends
            every other call through litellm; ``LiteLLMTransport()`` sends all of them through
            litellm (so does ``AIPOWERTOOLS_ROUTER_TRANSPORT=litellm``).
        health: thresholds for cooldown / circuit breaking.
        privacy_policy: extra ``(deployment, request) -> allowed`` rule.
        confidential_tags: request tags that make a request confidential (local only).
        complexity_classifier: scores a conversation 0..1 (the documented heuristic by default).
        downgrade: budget curve ``fraction spent -> quality floor factor``.
        allow_trim: trim history (system + pinned + recent) when no window fits.
        ollama_url: where Ollama models are served (default: ``OLLAMA_HOST``, else
            ``http://localhost:11434``).
        llamacpp_url: where a llama.cpp server runs.
        expected_output_tokens: output tokens assumed for cost estimates when max_tokens is unset.
        rate_limit_store: where deployments' ``rpm`` / ``tpm`` limits are counted
            (``memory://`` or ``redis://...`` to share them between processes; by default a
            Redis ``AIPOWERTOOLS_STORE``, else memory).
        health_store: where deployments' health is shared: ``None`` or ``memory://`` keeps
            it per process; ``redis://...`` lets routers in several processes / machines see
            each other's open circuits and Retry-After parkings (only Redis is supported
            here). A Redis failure never fails a call: it is logged and routing goes on with
            this process's state.
        health_refresh_s: with a shared ``health_store``, the shortest interval between two
            reads of other routers' reports (one ``MGET`` at the start of a call).
        cache: a response cache (``aipowertools.cache.LLMCache``): a hit answers before
            routing, budget reservation and rate limiting, costs $0 and is recorded in the
            ledger with what it saved; ``result.cache`` says ``hit``, ``semantic`` or ``miss``.

    Example:
        >>> router = LLMRouter(
        ...     local_models=["llama3"], cloud_providers=["openai"], budget_usd_per_month=100
        ... )  # doctest: +SKIP
        >>> result = await router.route(task="Hi", complexity_score=0.3)  # doctest: +SKIP
        >>> result.provider, result.cost, result.decision.explanation  # doctest: +SKIP
    """

    def __init__(
        self,
        deployments: Sequence[Deployment | str] = (),
        *,
        local_models: Sequence[str | Deployment] = (),
        cloud_providers: Sequence[str | Deployment] = (),
        strategy: Strategy | str = "cost_optimal",
        budget_usd_per_month: float | None = None,
        cost_tracker: Any = None,
        monitor: Any = None,
        catalog: Any = None,
        transport: Transport | None = None,
        health: HealthPolicy | None = None,
        privacy_policy: PrivacyPolicy | None = None,
        confidential_tags: Sequence[str] = ("confidential",),
        complexity_classifier: ComplexityClassifier | None = None,
        downgrade: Callable[[float], float] = downgrade_factor,
        allow_trim: bool = False,
        ollama_url: str | None = None,
        llamacpp_url: str | None = None,
        expected_output_tokens: int = 512,
        rate_limit_store: str | None = None,
        health_store: str | None = None,
        health_refresh_s: float = 0.5,
        cache: ResponseCache | None = None,
    ) -> None:
        if budget_usd_per_month is not None and budget_usd_per_month <= 0:
            raise ConfigurationError(
                f"budget_usd_per_month must be positive, got {budget_usd_per_month}"
            )
        specs: list[Deployment] = [
            d if isinstance(d, Deployment) else Deployment(d) for d in deployments
        ]
        ollama_url = ollama_url or _ollama_url()
        specs += [_local(m, ollama_url, llamacpp_url) for m in local_models]
        for provider in cloud_providers:
            specs += _cloud(provider)
        if not specs:
            specs = _from_environment()
        self.catalog = catalog if catalog is not None else _default_catalog()
        self.strategy = get_strategy(strategy)
        self.confidential_tags = frozenset(confidential_tags)
        self.classifier: ComplexityClassifier = complexity_classifier or heuristic_complexity
        self.allow_trim = allow_trim
        self.expected_output_tokens = expected_output_tokens
        self.ollama_url = ollama_url
        self.llamacpp_url = llamacpp_url
        self.engine = DecisionEngine(
            [resolve(d, self.catalog) for d in specs],
            health=health,
            privacy_policy=privacy_policy,
            downgrade=downgrade,
        )
        self.transport: Transport = transport or default_transport()
        from aipowertools.router._accounting import make_accounting, make_observer

        self._accounting = make_accounting(cost_tracker, budget_usd_per_month)
        self.cost_tracker = self._accounting.tracker if self._accounting else None
        self.budget_usd_per_month = budget_usd_per_month
        self._observer, self.monitor = make_observer(monitor)
        self.rate_limit_store = rate_limit_store
        self._executor = Executor(self.transport, self._accounting, self._observer)
        self.health_store = health_store
        self._shared_health = _shared_health(health_store, health_refresh_s)
        self._executor.health = self._shared_health
        self._sync_limits()
        self._served: OrderedDict[str, str] = OrderedDict()
        if cache is not None and not isinstance(cache, ResponseCache):
            raise ConfigurationError(
                f"cache must be an aipowertools.cache.LLMCache (or implement ResponseCache), "
                f"got {type(cache).__name__}"
            )
        self.cache = cache

    # ------------------------------------------------------------------ deployments
    @property
    def deployments(self) -> list[Deployment]:
        """The deployments the router routes between."""
        return self.engine.deployments

    def state(self, name: str) -> DeploymentState:
        """Live state (in flight, latency, error rate, cooldown) of a deployment."""
        try:
            return self.engine.states[name]
        except KeyError:
            raise ConfigurationError(
                f"no deployment named {name!r}; known: {', '.join(self.engine.states)}"
            ) from None

    def add_deployment(self, deployment: Deployment | str) -> Deployment:
        """Add a deployment (resolved against the catalog); returns the resolved one."""
        d = deployment if isinstance(deployment, Deployment) else Deployment(deployment)
        d = resolve(d, self.catalog)
        self.engine.set_deployments([*self.engine.deployments, d])
        self._sync_limits()
        return d

    def remove_deployment(self, name: str) -> None:
        """Remove the deployment called ``name`` (a no-op when there is none)."""
        self.engine.set_deployments([d for d in self.engine.deployments if d.name != name])
        self._sync_limits()

    def _sync_limits(self) -> None:
        """(Re)build the rate limiter for deployments that declare ``rpm`` / ``tpm``."""
        limits = {
            d.name: {
                k: v for k, v in (("requests_per_minute", d.rpm), ("tokens_per_minute", d.tpm)) if v
            }
            for d in self.engine.deployments
            if d.rpm or d.tpm
        }
        if not limits:
            self._executor.limiter = None
            return
        from aipowertools.resilience import RateLimiter

        # The router fails over to another deployment instead of waiting for a slot, so its
        # deployment limits stay strict sliding windows (pacing would turn them away early).
        limiter = RateLimiter(
            key_limits=limits, store=self.rate_limit_store, adaptive=False, smooth=False
        )
        limited = frozenset(limits)

        async def acquire(cand: Any, prompt_tokens: int) -> Any:
            d = cand.deployment
            if d.name not in limited:
                return None
            try:
                return await limiter.acquire(
                    d.name, tokens=prompt_tokens if d.tpm else 0,
                    timeout=d.timeout,
                )  # fmt: skip
            except RateLimitExceededError as exc:
                raise RateLimitedError(
                    f"{d.name}: its own rate limit has no capacity within {d.timeout} s",
                    provider=d.provider, model=d.model, retry_after=exc.retry_after,
                ) from exc  # fmt: skip

        self.rate_limiter = limiter
        self._executor.limiter = acquire

    async def _refresh_health(self) -> bool:
        """Apply other routers' health reports (a no-op while fresh or without a shared store).

        Returns True when a deployment's local state changed.
        """
        shared = self._shared_health
        if shared is None or time.monotonic() < shared.next_refresh:
            return False
        return await shared.refresh(self.engine.states)

    # ------------------------------------------------------------------ deciding
    def _request(
        self,
        prompt: Prompt,
        *,
        complexity_score: float | None,
        required_quality: float | None,
        max_cost: float | None,
        max_latency_ms: float | None,
        confidential: bool | None,
        tags: Sequence[str],
        max_tokens: int | None,
        needs_tools: bool,
        needs_json: bool,
        only: Sequence[str] | None,
    ) -> RouteRequest:
        if complexity_score is None:
            complexity = self.classifier(prompt.messages)
        elif 0.0 <= complexity_score <= 1.0:
            complexity = complexity_score
        else:
            raise ConfigurationError(f"complexity_score must be in [0, 1], got {complexity_score}")
        if required_quality is not None and not 0.0 <= required_quality <= 1.0:
            raise ConfigurationError(f"required_quality must be in [0, 1], got {required_quality}")
        if max_tokens is not None and max_tokens < 1:
            raise ConfigurationError(f"max_tokens must be at least 1, got {max_tokens}")
        if confidential is None:
            confidential = bool(self.confidential_tags.intersection(tags)) if tags else False
        remaining, spent = (
            self._accounting.budget_view() if self._accounting is not None else (None, 0.0)
        )
        return RouteRequest(
            prompt_tokens=prompt.tokens,
            max_tokens=max_tokens,
            messages=len(prompt.messages),
            expected_output_tokens=self.expected_output_tokens,
            needs_tools=needs_tools,
            needs_vision=prompt.has_images,
            needs_json=needs_json,
            complexity=complexity,
            required_quality=required_quality,
            max_cost_usd=max_cost,
            max_latency_ms=max_latency_ms,
            confidential=confidential,
            budget_remaining_usd=remaining,
            budget_fraction_spent=spent,
            only=frozenset(only) if only is not None else None,
        )

    def _decide(
        self,
        prompt: Prompt,
        strategy: Strategy,
        request_id: str,
        allow_trim: bool | None,
        **constraints: Any,
    ) -> tuple[Prompt, Decision]:
        request = self._request(prompt, **constraints)
        decision = self.engine.decide(request, strategy, request_id)
        if decision.candidates:
            return prompt, decision
        too_long = [n for n, why in decision.rejected if why.startswith("context window")]
        if not too_long:
            raise no_deployment(decision.rejected, self._budget_limit())
        allow = self.allow_trim if allow_trim is None else allow_trim
        largest = self.engine.largest_window()
        if not allow:
            raise ContextWindowExceededError(
                f"the prompt (~{prompt.tokens} tokens plus output) fits no deployment's "
                f"context window (largest {largest}); pass allow_trim=True to keep the "
                "system, pinned and most recent messages, or shorten the conversation"
            )
        room = largest - (request.max_tokens or min(self.expected_output_tokens, largest // 4))
        trimmed = trim(prompt, room)
        request = self._request(trimmed, **constraints)
        decision = self.engine.decide(request, strategy, request_id)
        decision.warnings.append(
            f"history trimmed from {len(prompt.messages)} to {len(trimmed.messages)} messages "
            f"to fit a {largest}-token window"
        )
        if not decision.candidates:
            raise no_deployment(decision.rejected, self._budget_limit())
        return trimmed, decision

    def _budget_limit(self) -> float | None:
        return getattr(self._accounting, "_limit", None)

    def decide(
        self,
        task: str | None = None,
        *,
        messages: Sequence[Mapping[str, Any]] | None = None,
        strategy: Strategy | str | None = None,
        complexity_score: float | None = None,
        required_quality: float | None = None,
        max_cost: float | None = None,
        max_latency_ms: float | None = None,
        confidential: bool | None = None,
        tags: Sequence[str] = (),
        max_tokens: int | None = None,
        needs_tools: bool = False,
        needs_json: bool = False,
        deployments: Sequence[str] | None = None,
    ) -> Decision:
        """Decide where a request would go, without calling anything.

        Takes the same arguments as :meth:`route`. Raises :class:`NoDeploymentError` when
        nothing is eligible.
        """
        prompt = prepare(task, messages)
        strat = self.strategy if strategy is None else get_strategy(strategy)
        return self._decide(
            prompt, strat, "", False,
            complexity_score=complexity_score, required_quality=required_quality,
            max_cost=max_cost, max_latency_ms=max_latency_ms, confidential=confidential,
            tags=tags, max_tokens=max_tokens, needs_tools=needs_tools, needs_json=needs_json,
            only=deployments,
        )[1]  # fmt: skip

    # ------------------------------------------------------------------ calling
    async def route(
        self,
        task: str | None = None,
        *,
        messages: Sequence[Mapping[str, Any]] | None = None,
        strategy: Strategy | str | None = None,
        complexity_score: float | None = None,
        required_quality: float | None = None,
        max_cost: float | None = None,
        max_latency_ms: float | None = None,
        confidential: bool | None = None,
        tags: Sequence[str] = (),
        max_tokens: int | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: Any = None,
        response_format: Any = None,
        deployments: Sequence[str] | None = None,
        allow_trim: bool | None = None,
        request_id: str | None = None,
        user: str | None = None,
        task_name: str | None = None,
        session: str | None = None,
        **params: Any,
    ) -> RouteResult:
        """Route one request and return the answer with its cost, latency and decision.

        Args:
            task: the request as one user message, or
            messages: the conversation (OpenAI-format dicts; ``"pinned": True`` survives trims).
            strategy: override the router's strategy for this call.
            complexity_score: 0..1 difficulty (the classifier scores it when omitted).
            required_quality: hard quality floor 0..1.
            max_cost: hard cap on the estimated cost in USD.
            max_latency_ms: hard cap on the predicted latency.
            confidential: local deployments only (also set by ``confidential_tags``).
            tags: labels for privacy policies and the ledger.
            max_tokens: output cap, passed to the provider.
            tools: OpenAI-format tool definitions (only tool-capable deployments qualify).
            tool_choice: passed through with ``tools``.
            response_format: JSON mode / schema (only deployments supporting it qualify).
            deployments: restrict to these deployment names.
            allow_trim: override the router's ``allow_trim``.
            request_id: your id for the request (feedback and the ledger); generated if None.
            user: who the call is for: the ledger row and ``user:`` budgets (default: the
                enclosing ``track_call`` span's user).
            task_name: the task it serves: the ledger row and ``task:`` budgets (default:
                the enclosing span's task).
            session: session id for the ledger row (default: the enclosing span's).
            **params: provider parameters (``temperature``, ``stop``, ``seed``...;
                provider-specific fields in ``extra_body``). ``complexity=`` is an alias of
                ``complexity_score``; any other keyword is a ``ConfigurationError`` naming
                the closest option.

        Raises:
            NoDeploymentError: nothing passes the filters.
            ContextWindowExceededError: the prompt fits no window and trimming is off.
            BudgetExceededError: the budget cannot cover the call.
            ProviderError: every candidate failed (of the last failure's kind).
        """
        start = time.perf_counter()
        complexity_score = check_params(params, complexity_score)
        who = attribution(user, task_name, session, tags)
        rid = request_id or uuid.uuid4().hex
        prompt = prepare(task, messages)
        cached = RouterCache.open(self, prompt.messages, _call_params(dict(params), max_tokens,
            tools, tool_choice, response_format), {"deployments": deployments, "strategy":
            strategy, "required_quality": required_quality, "max_cost": max_cost}, tags,
            confidential)  # fmt: skip
        if cached is not None and (hit := await cached.lookup(rid)) is not None:
            return hit
        strat = self.strategy if strategy is None else get_strategy(strategy)
        await self._refresh_health()
        prompt, decision = self._decide(
            prompt, strat, rid, allow_trim,
            complexity_score=complexity_score, required_quality=required_quality,
            max_cost=max_cost, max_latency_ms=max_latency_ms, confidential=confidential,
            tags=tags, max_tokens=max_tokens, needs_tools=bool(tools),
            needs_json=response_format is not None, only=deployments,
        )  # fmt: skip
        if decision.warnings:
            logger.warning(
                "request %s: %s", rid, "; ".join(decision.warnings),
                extra={"event": "router.warning", "request_id": rid},
            )  # fmt: skip
        call_params = _call_params(params, max_tokens, tools, tool_choice, response_format)
        attempts: list[Attempt] = []
        with _tracer().start_as_current_span(
            ROUTE_SPAN,
            attributes={"aipowertools.request_id": rid, "aipowertools.router.strategy": strat.name},
        ) as span:
            attributed = CURRENT.set(who)
            try:
                cand, completion = await self._executor.run(
                    decision, strat, prompt.messages, call_params, prompt.tokens, attempts
                )
            finally:
                CURRENT.reset(attributed)
            d = cand.deployment
            if span.is_recording():
                span.set_attributes(
                    {
                        "aipowertools.router.deployment": d.name,
                        "aipowertools.router.attempts": len(attempts),
                        "aipowertools.router.confidence": decision.confidence,
                        "aipowertools.cost_usd": sum(a.cost_usd for a in attempts),
                    }
                )
        self._remember(rid, d.name)
        result = RouteResult(
            content=completion.content,
            tool_calls=completion.tool_calls,
            provider=d.provider,
            model=d.model,
            deployment=d.name,
            cost=sum(a.cost_usd for a in attempts),
            latency_ms=(time.perf_counter() - start) * 1000.0,
            decision=decision,
            attempts=attempts,
            request_id=rid,
            finish_reason=completion.finish_reason,
            completion=completion,
            catalog_model=d.catalog_model or d.model,
        )
        self._hand_to_span(who, result)
        if logger.isEnabledFor(logging.INFO):
            logger.info(
                "routed %s to %s: $%.6f in %.0f ms after %d attempt(s)",
                rid, d.name, result.cost, result.latency_ms, len(attempts),
                extra={"event": "router.route", "request_id": rid, "deployment": d.name,
                       "cost_usd": result.cost, "latency_ms": result.latency_ms,
                       "attempts": len(attempts), "strategy": decision.strategy,
                       "confidence": decision.confidence},
            )  # fmt: skip
        if cached is not None:
            await cached.store(result)
        return result

    def stream(
        self,
        task: str | None = None,
        *,
        messages: Sequence[Mapping[str, Any]] | None = None,
        strategy: Strategy | str | None = None,
        complexity_score: float | None = None,
        required_quality: float | None = None,
        max_cost: float | None = None,
        max_latency_ms: float | None = None,
        confidential: bool | None = None,
        tags: Sequence[str] = (),
        max_tokens: int | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: Any = None,
        response_format: Any = None,
        deployments: Sequence[str] | None = None,
        allow_trim: bool | None = None,
        request_id: str | None = None,
        user: str | None = None,
        task_name: str | None = None,
        session: str | None = None,
        **params: Any,
    ) -> RouteStream:
        """Route one request and stream the answer (``async for chunk in router.stream(...)``).

        Takes the arguments of :meth:`route`. The router fails over to the next candidate
        only before the first token arrives; after that an error reaches the caller. The
        returned :class:`RouteStream` holds the ``decision`` from the start and the full
        ``result`` (cost, usage, latency) once the stream is exhausted.
        """
        complexity_score = check_params(params, complexity_score)
        who = attribution(user, task_name, session, tags)
        rid = request_id or uuid.uuid4().hex
        prompt = prepare(task, messages)
        strat = self.strategy if strategy is None else get_strategy(strategy)
        prompt, decision = self._decide(
            prompt, strat, rid, allow_trim,
            complexity_score=complexity_score, required_quality=required_quality,
            max_cost=max_cost, max_latency_ms=max_latency_ms, confidential=confidential,
            tags=tags, max_tokens=max_tokens, needs_tools=bool(tools),
            needs_json=response_format is not None, only=deployments,
        )  # fmt: skip
        call_params = _call_params(params, max_tokens, tools, tool_choice, response_format)
        cached = RouterCache.open(self, prepare(task, messages).messages, call_params,
            {"deployments": deployments, "strategy": strategy, "required_quality":
            required_quality, "max_cost": max_cost}, tags, confidential)  # fmt: skip
        return RouteStream(self, decision, prompt, call_params, cached, who=who)

    def route_sync(self, task: str | None = None, **kwargs: Any) -> RouteResult:
        """:meth:`route` for synchronous code (runs on a background event loop)."""
        return run_sync(self.route(task, **kwargs))

    def stream_sync(self, task: str | None = None, **kwargs: Any) -> Iterator[Any]:
        """:meth:`stream` for synchronous code: yields the same chunks."""
        stream = self.stream(task, **kwargs)
        return iterate_sync(stream.__aiter__())

    def budget_status(self) -> tuple[float | None, float]:
        """(USD left this month or None without a budget, fraction of it spent), read now.

        Routing reads the same figures through a 0.5 s cache; this refreshes the cache.
        """
        if self._accounting is None:
            return None, 0.0
        self._accounting._view_at = -1.0
        return self._accounting.budget_view()

    # ------------------------------------------------------------------ feedback
    def _remember(self, request_id: str, deployment: str) -> None:
        served = self._served
        served[request_id] = deployment
        if len(served) > _FEEDBACK_MEMORY:
            served.popitem(last=False)

    def record_feedback(self, request_id: str, score: float) -> None:
        """Tell the router how good an answer was (0..1); it shifts that deployment's quality.

        The learned quality is ``(prior x 5 + sum of scores) / (5 + number of scores)``.
        Feedback is accepted for the last 10,000 requests.
        """
        if not 0.0 <= score <= 1.0:
            raise ConfigurationError(f"feedback score must be in [0, 1], got {score}")
        name = self._served.get(request_id)
        if name is None:
            raise ConfigurationError(
                f"unknown request id {request_id!r}: feedback is kept for the last "
                f"{_FEEDBACK_MEMORY} routed requests of this router"
            )
        state = self.engine.states.get(name)
        if state is not None:
            state.feedback(score)

    def _hand_to_span(self, who: Attribution, result: RouteResult) -> None:
        """Give the enclosing ``track_call`` span the finished request (one row for it)."""
        if who.span is None:
            return
        tracker = self._accounting.tracker if self._accounting is not None else None
        who.span.add_call(
            tracker,
            model=result.catalog_model or result.model,
            usage=result.usage,
            cost_usd=result.cost,
            request_id=result.request_id,
            provider=result.provider,
            latency_ms=result.latency_ms,
        )

    def _stream_parts(self) -> tuple[Executor, Accounting | None, Observer | None]:
        return self._executor, self._accounting, self._observer

    async def _after_stream(self, request_id: str, deployment: str) -> None:
        self._remember(request_id, deployment)

    def __repr__(self) -> str:
        names = ", ".join(d.name for d in self.deployments)
        return f"LLMRouter([{names}], strategy={self.strategy.name!r})"


TRANSPORT_ENV = "AIPOWERTOOLS_ROUTER_TRANSPORT"


def default_transport() -> Transport:
    """The transport of a router given none: ``AIPOWERTOOLS_ROUTER_TRANSPORT`` decides.

    ``direct`` (the default) is :class:`OpenAICompatibleTransport` (``openai/`` calls posted
    directly, everything else through litellm); ``litellm`` sends every call through litellm.
    """
    choice = os.environ.get(TRANSPORT_ENV, "").strip().lower() or "direct"
    if choice == "direct":
        return OpenAICompatibleTransport()
    if choice == "litellm":
        return LiteLLMTransport()
    raise ConfigurationError(
        f"{TRANSPORT_ENV}={choice!r} is not a transport: use 'direct' (OpenAI-format calls "
        "posted directly, the rest through litellm) or 'litellm' (every call through litellm)"
    )


def _shared_health(url: str | None, refresh_s: float) -> SharedHealth | None:
    """The shared health publisher / reader for ``health_store`` (None: per process)."""
    if refresh_s <= 0:
        raise ConfigurationError(f"health_refresh_s must be positive, got {refresh_s}")
    if url is None:
        return None
    parsed = parse_store_url(url, default="memory://")
    if parsed.scheme == "memory":
        return None
    if parsed.scheme != "redis":
        raise ConfigurationError(
            f"health_store {parsed.masked()!r}: deployment health is shared through Redis "
            "only (redis://host:6379/0), or kept per process with memory:// or None; "
            f"{parsed.scheme}:// is not supported here (PostgreSQL is not needed for it)"
        )
    if importlib.util.find_spec("redis") is None:
        raise ConfigurationError(
            "health_store='redis://...' needs the redis package: "
            "pip install 'aipowertools-router[redis]'"
        )
    from aipowertools.router._shared_health import SharedHealth

    return SharedHealth(parsed, refresh_s=refresh_s)


def _tracer() -> Any:
    """The OpenTelemetry tracer of the router (a no-op until an SDK is installed)."""
    return _telemetry.tracer()


def _call_params(
    params: dict[str, Any],
    max_tokens: int | None,
    tools: Sequence[Mapping[str, Any]] | None,
    tool_choice: Any,
    response_format: Any,
) -> dict[str, Any]:
    if max_tokens is not None:
        params["max_tokens"] = max_tokens
    if tools:
        params["tools"] = list(tools)
        if tool_choice is not None:
            params["tool_choice"] = tool_choice
    if response_format is not None:
        params["response_format"] = response_format
    return params
