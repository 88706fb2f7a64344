"""Routing strategies: how the eligible candidates are ordered, and how they are called.

A strategy orders the candidates that passed every filter; the router then calls them in one
of three modes: ``sequential`` (first, then fail over down the list), ``race`` (first, hedged
to the next after a delay) or ``parallel`` (the first ``n`` at once, a scorer picks).
Custom strategies subclass :class:`Strategy` and override :meth:`Strategy.order`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

from aipowertools.core.errors import ConfigurationError

if TYPE_CHECKING:
    from aipowertools.router._engine import Candidate, RouteRequest
    from aipowertools.router._types import Completion

Mode = Literal["sequential", "race", "parallel"]


class Strategy:
    """Base class: order the eligible candidates; subclass and override :meth:`order`.

    Attributes:
        name: short name shown in decisions and logs.
        mode: ``"sequential"``, ``"race"`` or ``"parallel"``.
    """

    name = "custom"
    mode: Mode = "sequential"

    def order(
        self, candidates: list[Candidate], request: RouteRequest, floor: float
    ) -> list[Candidate]:
        """Return ``candidates`` best first (may drop some); the default keeps their order."""
        return candidates

    def reason(self, chosen: Candidate, floor: float, meets_floor: bool) -> str:
        """One sentence saying why ``chosen`` came first."""
        return f"first in the {self.name} order"


def _by_cost(c: Candidate) -> tuple[float, float, float]:
    return (c.cost_usd, -c.quality, c.latency_ms)


class CostOptimal(Strategy):
    """Cheapest deployment whose quality meets the floor; local (free) ones first."""

    name = "cost_optimal"

    def order(
        self, candidates: list[Candidate], request: RouteRequest, floor: float
    ) -> list[Candidate]:
        """Those meeting the floor by cost, then the rest by quality (best first)."""
        good = [c for c in candidates if c.quality >= floor]
        if len(good) == len(candidates):
            good.sort(key=_by_cost)
            return good
        rest = [c for c in candidates if c.quality < floor]
        good.sort(key=_by_cost)
        rest.sort(key=lambda c: (-c.quality, c.cost_usd))
        return good + rest

    def reason(self, chosen: Candidate, floor: float, meets_floor: bool) -> str:
        """Why the cheapest-good-enough deployment came first."""
        if meets_floor:
            return f"cheapest deployment meeting the quality floor {floor:.2f}"
        return f"no deployment meets the quality floor {floor:.2f}; best quality available"


class QualityFirst(Strategy):
    """Highest quality first, cost breaking ties."""

    name = "quality_first"

    def order(
        self, candidates: list[Candidate], request: RouteRequest, floor: float
    ) -> list[Candidate]:
        """By quality (best first), then cost, then latency."""
        return sorted(candidates, key=lambda c: (-c.quality, c.cost_usd, c.latency_ms))

    def reason(self, chosen: Candidate, floor: float, meets_floor: bool) -> str:
        """Why the best-quality deployment came first."""
        return f"highest quality ({chosen.quality:.2f}) among the eligible deployments"


class LatencyOptimal(Strategy):
    """Fastest predicted latency first, among those meeting the quality floor."""

    name = "latency_optimal"

    def order(
        self, candidates: list[Candidate], request: RouteRequest, floor: float
    ) -> list[Candidate]:
        """Those meeting the floor by latency, then the rest by latency."""
        return sorted(candidates, key=lambda c: (c.quality < floor, c.latency_ms, c.cost_usd))

    def reason(self, chosen: Candidate, floor: float, meets_floor: bool) -> str:
        """Why the fastest deployment came first."""
        return f"lowest predicted latency ({chosen.latency_ms:.0f} ms)"


class Weighted(Strategy):
    """Random pick by deployment ``weight``; the others follow as fallbacks, cheapest first."""

    name = "weighted"

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def order(
        self, candidates: list[Candidate], request: RouteRequest, floor: float
    ) -> list[Candidate]:
        """One weighted draw first, the rest by cost."""
        weights = [c.deployment.weight for c in candidates]
        if not candidates or sum(weights) <= 0:
            return sorted(candidates, key=_by_cost)
        first = self._rng.choices(candidates, weights=weights)[0]
        return [first, *sorted((c for c in candidates if c is not first), key=_by_cost)]

    def reason(self, chosen: Candidate, floor: float, meets_floor: bool) -> str:
        """Why this deployment was drawn."""
        return f"weighted draw (weight {chosen.deployment.weight:g})"


class LeastBusy(Strategy):
    """Fewest calls in flight relative to capacity; latency breaks ties."""

    name = "least_busy"

    def order(
        self, candidates: list[Candidate], request: RouteRequest, floor: float
    ) -> list[Candidate]:
        """By load (in-flight / max_concurrency), then latency."""
        return sorted(
            candidates,
            key=lambda c: (
                c.state.inflight / (c.deployment.max_concurrency or 1),
                c.latency_ms,
            ),
        )

    def reason(self, chosen: Candidate, floor: float, meets_floor: bool) -> str:
        """Why the least loaded deployment came first."""
        return f"least busy ({chosen.state.inflight} calls in flight)"


class Fallback(Strategy):
    """The deployments in the order they were given (a fallback chain)."""

    name = "fallback"

    def reason(self, chosen: Candidate, floor: float, meets_floor: bool) -> str:
        """Why the first healthy deployment of the chain came first."""
        return "first healthy deployment of the fallback chain"


class Race(Strategy):
    """Send to the best, hedge to the next if no answer after a delay; first answer wins.

    Args:
        base: strategy that orders the candidates (``cost_optimal`` by default).
        hedge_after: seconds to wait before hedging, or ``"p95"`` / ``"p90"`` / ``"p50"`` of
            the first deployment's observed latency (its cold-start guess until observed).
        max_hedges: how many extra deployments may be raced.
    """

    name = "race"
    mode: Mode = "race"

    def __init__(
        self,
        base: Strategy | str = "cost_optimal",
        *,
        hedge_after: float | Literal["p50", "p90", "p95"] = "p95",
        max_hedges: int = 1,
    ) -> None:
        self.base = get_strategy(base)
        if isinstance(hedge_after, str) and hedge_after not in ("p50", "p90", "p95"):
            raise ConfigurationError(
                f"Race hedge_after must be seconds or 'p50'/'p90'/'p95', got {hedge_after!r}"
            )
        if not isinstance(hedge_after, str) and hedge_after < 0:
            raise ConfigurationError("Race hedge_after must not be negative")
        if max_hedges < 1:
            raise ConfigurationError("Race max_hedges must be at least 1")
        self.hedge_after = hedge_after
        self.max_hedges = max_hedges

    def order(
        self, candidates: list[Candidate], request: RouteRequest, floor: float
    ) -> list[Candidate]:
        """The base strategy's order."""
        return self.base.order(candidates, request, floor)

    def reason(self, chosen: Candidate, floor: float, meets_floor: bool) -> str:
        """The base reason, plus the hedge."""
        return f"{self.base.reason(chosen, floor, meets_floor)}; hedged after {self.hedge_after}"

    def delay_s(self, first: Candidate) -> float:
        """Seconds to wait for ``first`` before hedging."""
        if not isinstance(self.hedge_after, str):
            return self.hedge_after
        state = first.state
        if state.samples < 5:
            return 2.0 * first.latency_ms / 1000.0
        if self.hedge_after == "p50":
            return state.p50_ms / 1000.0
        if self.hedge_after == "p90":
            return state.p90_ms / 1000.0
        return state.p95_ms / 1000.0


def _longest(results: Sequence[tuple[Candidate, Completion]]) -> int:
    best = max(
        range(len(results)), key=lambda i: (results[i][0].quality, len(results[i][1].content))
    )
    return best


class ParallelBest(Strategy):
    """Call the first ``n`` candidates at once; ``scorer`` picks among the answers.

    Args:
        n: how many deployments to call.
        base: strategy that orders the candidates (``quality_first`` by default).
        scorer: ``(answers) -> index of the winner``, each answer a (candidate, completion)
            pair; by default the highest-quality deployment's answer, the longest on ties.
    """

    name = "parallel_best"
    mode: Mode = "parallel"

    def __init__(
        self,
        n: int = 2,
        *,
        base: Strategy | str = "quality_first",
        scorer: Callable[[Sequence[tuple[Candidate, Completion]]], int] | None = None,
    ) -> None:
        if n < 2:
            raise ConfigurationError("ParallelBest needs n >= 2 deployments to compare")
        self.n = n
        self.base = get_strategy(base)
        self.scorer = scorer or _longest

    def order(
        self, candidates: list[Candidate], request: RouteRequest, floor: float
    ) -> list[Candidate]:
        """The base strategy's order."""
        return self.base.order(candidates, request, floor)

    def reason(self, chosen: Candidate, floor: float, meets_floor: bool) -> str:
        """Parallel call of the top ``n``."""
        return f"{self.n} deployments called at once, the scorer picks the answer"


_NAMED: dict[str, Callable[[], Strategy]] = {
    "cost_optimal": CostOptimal,
    "quality_first": QualityFirst,
    "latency_optimal": LatencyOptimal,
    "weighted": Weighted,
    "least_busy": LeastBusy,
    "fallback": Fallback,
    "race": Race,
    "parallel_best": ParallelBest,
}
STRATEGY_NAMES = tuple(sorted(_NAMED))


def get_strategy(strategy: Strategy | str) -> Strategy:
    """A strategy instance from a name (see ``STRATEGY_NAMES``) or an instance."""
    if isinstance(strategy, Strategy):
        return strategy
    factory = _NAMED.get(strategy)
    if factory is None:
        raise ConfigurationError(
            f"unknown routing strategy {strategy!r}; use one of {', '.join(STRATEGY_NAMES)} "
            "or a Strategy instance"
        )
    return factory()
