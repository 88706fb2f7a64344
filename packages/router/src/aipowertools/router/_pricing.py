"""What a routed call costs: core's one cost function, fed with the deployment's prices.

The router never multiplies tokens by prices itself. Each deployment is priced by
:func:`aipowertools.core.cost` with a :class:`~aipowertools.core.ModelInfo`: the catalog's
entry for its model (cache-read, cache-write, reasoning and tiered prices included), with
the deployment's own ``input_cost_per_token`` / ``output_cost_per_token`` when they were set
to something else. A model the catalog does not know is priced at the deployment's two
prices. The worst case a budget reservation holds comes from the same prices, through
:func:`aipowertools.core.worst_case_rates`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aipowertools.core import ModelInfo, Usage, cost, worst_case_rates

if TYPE_CHECKING:
    from aipowertools.router._deployment import Deployment


def model_info(d: Deployment) -> ModelInfo:
    """The prices ``d`` is billed at (cached on the deployment until its prices change)."""
    info: ModelInfo | None = d.pricing
    pin = float(d.input_cost_per_token or 0.0)
    pout = float(d.output_cost_per_token or 0.0)
    if info is not None and info.input_cost_per_token == pin and info.output_cost_per_token == pout:
        return info
    if info is None:
        info = ModelInfo(
            id=d.catalog_model or d.model,
            provider=d.provider,
            litellm_model=d.model,
            input_cost_per_token=pin,
            output_cost_per_token=pout,
            local=bool(d.local),
        )
    else:
        # The deployment's own prices win; its tiers and cache prices stay the catalog's.
        info = info.model_copy(update={"input_cost_per_token": pin, "output_cost_per_token": pout})
    d.pricing = info
    return info


def usage_of(counts: Any) -> Usage:
    """A :class:`Usage` from anything with the five token-count attributes (clamped)."""
    input_tokens = int(counts.input_tokens or 0)
    output_tokens = int(counts.output_tokens or 0)
    cached = min(int(counts.cached_input_tokens or 0), input_tokens)
    creation = min(int(counts.cache_creation_tokens or 0), input_tokens - cached)
    reasoning = min(int(counts.reasoning_tokens or 0), output_tokens)
    return Usage(input_tokens, output_tokens, cached, creation, reasoning)


def call_cost(d: Deployment, usage: Usage) -> float:
    """USD for ``usage`` on ``d``, by core's :func:`~aipowertools.core.cost`."""
    return cost(usage, model_info(d))


# id(info) -> (info, prompt rate, output rate) for models without price tiers, whose worst
# rates do not depend on the prompt: the decision engine asks for them on every request.
_FLAT: dict[int, tuple[ModelInfo, float, float]] = {}


def worst_cost(d: Deployment, prompt_bound: int, max_tokens: int) -> float:
    """The most a call to ``d`` can cost: what its budget reservation holds.

    ``prompt_bound`` is the prompt already bounded by core's ``prompt_upper_bound`` (the
    documented margin for estimated counts and provider framing); prices are the worst of
    :func:`aipowertools.core.worst_case_rates` for that prompt.
    """
    info = model_info(d)
    if info.price_tiers:
        rin, rout = worst_case_rates(info, prompt_bound)
    else:
        flat = _FLAT.get(id(info))
        if flat is None or flat[0] is not info:
            if len(_FLAT) > 4096:
                _FLAT.clear()
            flat = _FLAT[id(info)] = (info, *worst_case_rates(info, prompt_bound))
        rin, rout = flat[1], flat[2]
    return prompt_bound * rin + max_tokens * rout
