"""Exact cost of a call from its usage, and the worst-case estimate used for reservations."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aipowertools.core._errors import ConfigurationError
from aipowertools.core._usage import Usage

if TYPE_CHECKING:
    from aipowertools.core._catalog import ModelCatalog, ModelInfo

#: An estimated prompt token count (a character-based or foreign tokenizer's count) may be
#: this much below what the provider bills; reservations hold ``ceil(count x margin)``.
ESTIMATE_MARGIN = 1.25
#: Tokens a provider may add around each message (role markers, separators) that a counter
#: of the message text does not see, exact tokenizers included: chat framing differs per
#: provider. Reservations add them per message ...
FRAMING_TOKENS_PER_MESSAGE = 4
#: ... and this many once per call (the primer of the reply).
FRAMING_TOKENS_PER_CALL = 3


def _info(model: str | ModelInfo, catalog: ModelCatalog | None) -> ModelInfo:
    from aipowertools.core._catalog import ModelInfo, default_catalog

    if isinstance(model, ModelInfo):
        return model
    return (catalog or default_catalog()).get(model)  # a typed error for non-strings


def _rates(info: ModelInfo, prompt_tokens: int) -> tuple[float, float, float, float]:
    """Input, output, cache-read and cache-creation prices for a prompt of this size."""
    rates = [
        info.input_cost_per_token,
        info.output_cost_per_token,
        info.cache_read_input_token_cost,
        info.cache_creation_input_token_cost,
    ]
    for tier in info.price_tiers:  # sorted ascending; the highest threshold passed wins
        if prompt_tokens > tier.above_tokens:
            for i, value in enumerate(
                (
                    tier.input_cost_per_token,
                    tier.output_cost_per_token,
                    tier.cache_read_input_token_cost,
                    tier.cache_creation_input_token_cost,
                )
            ):
                if value is not None:
                    rates[i] = value
    input_rate = float(rates[0] or 0.0)
    read = rates[2] if rates[2] is not None else input_rate
    create = rates[3] if rates[3] is not None else input_rate
    return input_rate, float(rates[1] or 0.0), float(read), float(create)


def cost(
    usage: Usage | Any, model: str | ModelInfo, *, catalog: ModelCatalog | None = None
) -> float:
    """The cost in USD of a call, from its token usage and the model's prices.

    Cached-input tokens are billed at the cache-read price, cache-creation tokens at the
    cache-write price (each falling back to the input price when the model has none),
    reasoning tokens at the reasoning price when the model has one (else as output), and
    tiered prices (e.g. above 200k prompt tokens) apply to the whole call, as providers
    bill. For models from litellm's map the result equals litellm's ``completion_cost``.

    Args:
        usage: A :class:`Usage`, or anything :meth:`Usage.from_any` understands.
        model: A catalog id, litellm model name, or a :class:`ModelInfo`.
        catalog: The catalog to resolve ``model`` in; defaults to :func:`default_catalog`.

    Returns:
        The cost in USD.

    Raises:
        UnknownModelError: The model is not in the catalog (never a silent $0).
        ConfigurationError: ``usage`` holds no token usage.

    Example:
        >>> round(cost(Usage(input_tokens=1000, output_tokens=500), "gpt-4o-mini"), 6)
        0.00045
    """
    info = _info(model, catalog)
    u = usage if isinstance(usage, Usage) else Usage.from_any(usage)
    input_rate, output_rate, read_rate, create_rate = _rates(info, u.input_tokens)
    uncached = max(u.input_tokens - u.cached_input_tokens - u.cache_creation_tokens, 0)
    prompt_cost = (
        uncached * input_rate
        + u.cached_input_tokens * read_rate
        + u.cache_creation_tokens * create_rate
    )
    reasoning_rate = info.output_cost_per_reasoning_token
    if reasoning_rate is not None and u.reasoning_tokens:
        completion_cost = (
            u.output_tokens - u.reasoning_tokens
        ) * output_rate + u.reasoning_tokens * reasoning_rate
    else:
        completion_cost = u.output_tokens * output_rate
    return prompt_cost + completion_cost


def prompt_upper_bound(tokens: int, *, estimated: bool, messages: int = 1) -> int:
    """The most prompt tokens a provider can bill for a prompt counted as ``tokens``.

    An estimated count is raised by :data:`ESTIMATE_MARGIN` (25 %); every count, exact or
    not, gets :data:`FRAMING_TOKENS_PER_MESSAGE` per message and
    :data:`FRAMING_TOKENS_PER_CALL` for the provider's chat framing. A provider that bills
    more than this is settled at what it billed: the ledger and the budget take the real
    cost, and the overrun is logged as a settle above its reservation.

    Args:
        tokens: the counted prompt tokens.
        estimated: whether ``tokens`` is an estimate rather than the model's own tokenizer.
        messages: how many chat messages the prompt has.

    Returns:
        The upper bound in tokens.

    Example:
        >>> prompt_upper_bound(8, estimated=True, messages=1)
        17
    """
    bound = math.ceil(tokens * ESTIMATE_MARGIN) if estimated else tokens
    return bound + FRAMING_TOKENS_PER_MESSAGE * max(messages, 1) + FRAMING_TOKENS_PER_CALL


def worst_case_cost(
    model: str | ModelInfo,
    prompt_tokens: int,
    max_tokens: int,
    *,
    estimated: bool,
    messages: int = 1,
    catalog: ModelCatalog | None = None,
) -> float:
    """The most a call can cost: what a budget reservation holds for it.

    The prompt is bounded by :func:`prompt_upper_bound` and billed at the dearer of the
    uncached input and cache-write prices; ``max_tokens`` at the dearer of the output and
    reasoning prices; tiered prices for a prompt of the bounded size apply.

    Args:
        model: A catalog id, litellm model name, or a :class:`ModelInfo`.
        prompt_tokens: the counted prompt tokens.
        max_tokens: the most output tokens the call may produce.
        estimated: whether ``prompt_tokens`` is an estimate.
        messages: how many chat messages the prompt has.
        catalog: The catalog to resolve ``model`` in; defaults to :func:`default_catalog`.

    Returns:
        An upper bound of the cost in USD.
    """
    info = _info(model, catalog)
    prompt = prompt_upper_bound(prompt_tokens, estimated=estimated, messages=messages)
    prompt_rate, output_rate = worst_case_rates(info, prompt)
    return prompt * prompt_rate + max_tokens * output_rate


def worst_case_rates(info: ModelInfo, prompt_tokens: int) -> tuple[float, float]:
    """USD per prompt token and per output token a call can be billed at, at most.

    The dearer of the input and cache-write prices (cache writes can cost more than plain
    input, as on Anthropic), and of the output and reasoning prices, in the price tier of a
    prompt of ``prompt_tokens`` (already bounded by :func:`prompt_upper_bound`).
    """
    input_rate, output_rate, _read, create_rate = _rates(info, prompt_tokens)
    reasoning_rate = info.output_cost_per_reasoning_token or 0.0
    return max(input_rate, create_rate), max(output_rate, reasoning_rate)


def estimate_cost(
    messages: str | Sequence[Any],
    model: str | ModelInfo,
    max_tokens: int | None = None,
    *,
    catalog: ModelCatalog | None = None,
) -> float:
    """The worst-case cost of a call, for budget reservations.

    Prompt tokens counted with :func:`count_tokens` and bounded by
    :func:`prompt_upper_bound` (estimated counts raised by 25 %, chat framing added) at the
    dearer of the input and cache-write prices, plus ``max_tokens`` at the higher of the
    output and reasoning prices, with tiered prices applied (:func:`worst_case_cost`). The
    real cost (:func:`cost`) is never higher unless the provider bills beyond that margin.

    Args:
        messages: The prompt: a string or chat messages.
        model: A catalog id, litellm model name, or a :class:`ModelInfo`.
        max_tokens: The most output tokens the call may produce; defaults to the model's
            maximum output.
        catalog: The catalog to resolve ``model`` in; defaults to :func:`default_catalog`.

    Returns:
        An upper bound of the cost in USD.

    Raises:
        UnknownModelError: The model is not in the catalog.
        ConfigurationError: ``max_tokens`` is negative, or not given and the model's
            maximum output is unknown.
    """
    from aipowertools.core._tokens import count_tokens

    info = _info(model, catalog)
    if max_tokens is None:
        max_tokens = info.max_output_tokens
        if max_tokens is None:
            raise ConfigurationError(
                f"max_tokens is needed to bound the cost of {info.id!r}, whose maximum output "
                "is unknown; pass max_tokens=..."
            )
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0:
        raise ConfigurationError(f"max_tokens must be a whole number >= 0, got {max_tokens!r}")
    counted = count_tokens(messages, info.id, catalog=catalog)
    n = 1 if isinstance(messages, str) else len(messages)
    return worst_case_cost(
        info, counted.tokens, max_tokens, estimated=counted.estimated, messages=n
    )
