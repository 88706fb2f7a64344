"""What a routed call returns: the answer, where it came from, what it cost, and why."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aipowertools.core.errors import AIPowerToolsError, BudgetExceededError

if TYPE_CHECKING:
    from aipowertools.router._engine import Decision
    from aipowertools.router._types import Completion, ToolCall


@dataclass
class Attempt:
    """One call to one deployment made for a request (failed, cancelled and hedged ones too).

    Attributes:
        deployment: deployment name.
        ok: the call returned an answer.
        latency_ms: wall time of the call.
        cost_usd: what it cost (estimated from the prompt for cancelled calls).
        input_tokens: prompt tokens (estimated when the provider did not say).
        output_tokens: completion tokens.
        cached_input_tokens: prompt tokens read from the provider's cache (part of input).
        cache_creation_tokens: prompt tokens written to the provider's cache (part of input).
        reasoning_tokens: hidden reasoning tokens (part of output).
        error_kind: ``ErrorKind`` value of the failure, ``"cancelled"`` for a lost race.
        hedge: started as a hedge (race) or in parallel (parallel_best).
        attempt_id: unique id of this attempt.
        ledger_key: the ledger record's request id: the request id for the answer that was
            used, the attempt id for every other attempt.
    """

    deployment: str
    ok: bool
    latency_ms: float
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0
    error_kind: str | None = None
    hedge: bool = False
    attempt_id: str = ""
    ledger_key: str = ""


@dataclass
class RouteResult:
    """The answer to a routed request.

    Attributes:
        content: the answer's text.
        tool_calls: tool calls the model asked for.
        provider: provider of the deployment that answered (``openai``, ``ollama_chat``...).
        model: model string of that deployment.
        deployment: its name.
        cost: USD spent on this request, every attempt included.
        latency_ms: wall time of the whole request.
        decision: where the router sent it and why.
        attempts: every call made for it, in start order.
        request_id: id for :meth:`LLMRouter.record_feedback` and the ledger.
        finish_reason: why the model stopped.
        completion: the winning deployment's full :class:`Completion`.
        catalog_model: the catalog name of the model that answered (for pricing lookups).
        cache: with a response cache: ``"hit"`` or ``"semantic"`` (answered from it, $0),
            ``"miss"`` (answered by a provider, then cached); None without a cache.
    """

    content: str
    tool_calls: list[ToolCall]
    provider: str
    model: str
    deployment: str
    cost: float
    latency_ms: float
    decision: Decision
    attempts: list[Attempt]
    request_id: str
    finish_reason: str | None
    completion: Completion = field(repr=False)
    catalog_model: str | None = None
    cache: str | None = None
    chunks: list[Any] | None = field(default=None, repr=False)  # a cached stream's replay

    @property
    def usage(self) -> Any:
        """Token usage of the winning call, as ``aipowertools.core.Usage``."""
        from aipowertools.core import Usage

        c = self.completion
        return Usage(
            input_tokens=c.input_tokens,
            output_tokens=c.output_tokens,
            cached_input_tokens=c.cached_input_tokens,
            cache_creation_tokens=c.cache_creation_tokens,
            reasoning_tokens=c.reasoning_tokens,
        )

    @property
    def input_tokens(self) -> int:
        """Prompt tokens of the winning call."""
        return self.completion.input_tokens

    @property
    def output_tokens(self) -> int:
        """Completion tokens of the winning call."""
        return self.completion.output_tokens


class NoDeploymentError(AIPowerToolsError):
    """No deployment passed the filters for a request; ``rejected`` says why for each.

    Relax a constraint (``max_cost``, ``max_latency_ms``, ``required_quality``), add a
    deployment that fits, or wait for a cooling-down deployment to come back.
    """

    def __init__(self, rejected: list[tuple[str, str]]) -> None:
        self.rejected = dict(rejected)
        reasons = "; ".join(f"{name}: {why}" for name, why in rejected) or "no deployments"
        super().__init__(
            f"no deployment can take this request ({reasons}). Relax a constraint, add a "
            "deployment that fits, or wait for a cooling-down one to come back."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (list(self.rejected.items()),))


_WORST = re.compile(r"^worst case \$([0-9.]+) > budget left \$(-?[0-9.]+)")


class NoDeploymentWithinBudgetError(NoDeploymentError, BudgetExceededError):
    """No deployment can take the request, and the budget is (one of) the reasons.

    Both a :class:`NoDeploymentError` (``rejected`` says why for each deployment) and a
    :class:`~aipowertools.core.errors.BudgetExceededError` (``scope``, ``limit_usd``,
    ``spent_usd``, ``requested_usd``: the cheapest worst case the budget refused), so a
    caller catching budget refusals catches every one, whichever layer refused.
    """

    def __init__(self, rejected: list[tuple[str, str]], limit_usd: float | None = None) -> None:
        message = NoDeploymentError(rejected).args[0]
        AIPowerToolsError.__init__(self, message)
        self.rejected = dict(rejected)
        worst = [
            (float(m[1]), float(m[2])) for why in self.rejected.values() if (m := _WORST.match(why))
        ]
        requested, remaining = min(worst) if worst else (0.0, 0.0)
        limit = limit_usd if limit_usd is not None else remaining
        self.scope = "global"
        self.limit_usd = limit
        self.spent_usd = max(0.0, limit - remaining)
        self.requested_usd = requested

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (list(self.rejected.items()), self.limit_usd))


def no_deployment(
    rejected: list[tuple[str, str]], limit_usd: float | None = None
) -> NoDeploymentError:
    """The error for an empty decision: budget-typed when the budget refused any deployment."""
    if any(_WORST.match(why) for _, why in rejected):
        return NoDeploymentWithinBudgetError(rejected, limit_usd)
    return NoDeploymentError(rejected)
