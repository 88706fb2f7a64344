"""The decision engine: filter deployments, score them, let a strategy order them.

Pure and synchronous: it reads the deployments (resolved, with prices and limits), their live
:class:`DeploymentState` and a :class:`RouteRequest`, and returns a :class:`Decision`. Nothing
here calls a provider, so it is tested and benchmarked on its own. The hot path is one loop over
precomputed tuples; the explanation text is built only when someone reads it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aipowertools.core import prompt_upper_bound
from aipowertools.core.errors import ConfigurationError
from aipowertools.router._complexity import downgrade_factor, quality_floor
from aipowertools.router._deployment import Deployment
from aipowertools.router._health import DeploymentState, HealthPolicy
from aipowertools.router._pricing import worst_cost
from aipowertools.router._strategies import Strategy

#: Weight of the quality prior against feedback scores (as if it were this many ratings).
PRIOR_WEIGHT = 5.0


@dataclass
class RouteRequest:
    """What the engine needs to know about one call (the messages are summarised).

    Attributes:
        prompt_tokens: estimated prompt tokens.
        messages: how many messages the prompt has (for the provider-framing margin of the
            worst case a reservation holds).
        max_tokens: the caller's output cap, or None.
        expected_output_tokens: output tokens assumed for cost estimates without a cap.
        needs_tools / needs_vision / needs_json: capabilities the call uses.
        complexity: task difficulty 0..1.
        required_quality: hard quality floor, or None (then complexity sets a soft one).
        max_cost_usd: hard cap on the estimated cost of the call.
        max_latency_ms: hard cap on the predicted latency.
        confidential: may only go to local deployments.
        budget_remaining_usd: what the monthly budget has left (None: no budget).
        budget_fraction_spent: share of the monthly budget spent (drives the downgrade curve).
        only: restrict to these deployment names.
    """

    prompt_tokens: int
    max_tokens: int | None = None
    messages: int = 1
    expected_output_tokens: int = 512
    needs_tools: bool = False
    needs_vision: bool = False
    needs_json: bool = False
    complexity: float = 0.5
    required_quality: float | None = None
    max_cost_usd: float | None = None
    max_latency_ms: float | None = None
    confidential: bool = False
    budget_remaining_usd: float | None = None
    budget_fraction_spent: float = 0.0
    only: frozenset[str] | None = None


class Candidate:
    """A deployment that passed every filter, with its estimates for this request."""

    __slots__ = ("cost_usd", "deployment", "latency_ms", "quality", "state", "worst_cost_usd")

    def __init__(
        self,
        deployment: Deployment,
        state: DeploymentState,
        cost_usd: float,
        worst_cost_usd: float,
        latency_ms: float,
        quality: float,
    ) -> None:
        self.deployment = deployment
        self.state = state
        self.cost_usd = cost_usd
        self.worst_cost_usd = worst_cost_usd
        self.latency_ms = latency_ms
        self.quality = quality

    def __repr__(self) -> str:
        return (
            f"Candidate({self.deployment.name!r}, cost=${self.cost_usd:.6f}, "
            f"latency={self.latency_ms:.0f}ms, quality={self.quality:.2f})"
        )


@dataclass
class Decision:
    """Where a request goes and why.

    Attributes:
        candidates: eligible deployments, in the order they will be tried.
        rejected: ``(deployment name, reason)`` for every deployment filtered out.
        strategy: name of the strategy that ordered the candidates.
        complexity: the task complexity used.
        quality_floor: the quality floor applied (after any budget downgrade).
        confidence: 0..1, how clear-cut the choice was and how much was observed.
        reason: why the first candidate came first.
        warnings: things the caller should know (near the context window, ...).
        request_id: the request this decision was made for.
    """

    candidates: list[Candidate]
    rejected: list[tuple[str, str]]
    strategy: str
    complexity: float
    quality_floor: float
    confidence: float
    reason: str
    warnings: list[str] = field(default_factory=list)
    request_id: str = ""
    _explanation: str | None = field(default=None, repr=False)

    @property
    def chosen(self) -> Deployment | None:
        """The first deployment to try (None when nothing is eligible)."""
        return self.candidates[0].deployment if self.candidates else None

    @property
    def explanation(self) -> str:
        """A human-readable account of the choice (built on first read)."""
        if self._explanation is None:
            self._explanation = self._explain()
        return self._explanation

    def _explain(self) -> str:
        if not self.candidates:
            text = "no deployment is eligible"
        else:
            first = self.candidates[0]
            text = (
                f"{first.deployment.name}: {self.reason} (strategy {self.strategy}, complexity "
                f"{self.complexity:.2f}, quality {first.quality:.2f}, est. ${first.cost_usd:.6f}, "
                f"~{first.latency_ms:.0f} ms, confidence {self.confidence:.2f})"
            )
            if len(self.candidates) > 1:
                others = ", ".join(c.deployment.name for c in self.candidates[1:4])
                more = len(self.candidates) - 4
                text += f"; fallbacks: {others}" + (f" and {more} more" if more > 0 else "")
        if self.rejected:
            shown = "; ".join(f"{n} ({r})" for n, r in self.rejected[:5])
            more = len(self.rejected) - 5
            text += f"; filtered out: {shown}" + (f" and {more} more" if more > 0 else "")
        if self.warnings:
            text += "; warning: " + "; ".join(self.warnings)
        return text

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary (for logs and ``response_metadata``)."""
        return {
            "request_id": self.request_id,
            "deployment": self.chosen.name if self.chosen else None,
            "strategy": self.strategy,
            "confidence": round(self.confidence, 3),
            "complexity": round(self.complexity, 3),
            "quality_floor": round(self.quality_floor, 3),
            "candidates": [c.deployment.name for c in self.candidates],
            "rejected": dict(self.rejected),
            "explanation": self.explanation,
        }


# One precomputed row per deployment: the filter loop reads tuples, not attributes.
_Row = tuple[
    Deployment,  # 0
    DeploymentState,  # 1
    float,  # 2 input $/token
    float,  # 3 output $/token
    int,  # 4 context window
    int,  # 5 max output tokens
    bool,  # 6 tools
    bool,  # 7 vision
    bool,  # 8 json
    bool,  # 9 local
    float,  # 10 quality prior
    float,  # 11 cold-start latency
    int,  # 12 max concurrency (0 = unlimited)
]

PrivacyPolicy = Callable[[Deployment, RouteRequest], bool]


class DecisionEngine:
    """Filters, scores and orders deployments for a request.

    Args:
        deployments: resolved deployments (prices, window and capabilities filled in).
        states: live state per deployment name (created when missing).
        health: thresholds for new states.
        privacy_policy: extra ``(deployment, request) -> allowed`` check, e.g. keep requests
            tagged with customer data away from some providers.
        downgrade: budget curve, ``fraction spent -> factor`` applied to the soft quality floor.
    """

    def __init__(
        self,
        deployments: Sequence[Deployment],
        states: dict[str, DeploymentState] | None = None,
        *,
        health: HealthPolicy | None = None,
        privacy_policy: PrivacyPolicy | None = None,
        downgrade: Callable[[float], float] = downgrade_factor,
    ) -> None:
        self.health = health or HealthPolicy()
        self.states: dict[str, DeploymentState] = states if states is not None else {}
        self.privacy_policy = privacy_policy
        self.downgrade = downgrade
        self._rows: list[_Row] = []
        self.set_deployments(deployments)

    @property
    def deployments(self) -> list[Deployment]:
        """The deployments, in the order given."""
        return [row[0] for row in self._rows]

    def set_deployments(self, deployments: Sequence[Deployment]) -> None:
        """Replace the deployment set (states of names kept are kept)."""
        rows: list[_Row] = []
        seen: set[str] = set()
        for d in deployments:
            if d.name in seen:
                raise ConfigurationError(
                    f"two deployments are named {d.name!r}; give each a unique name="
                )
            seen.add(d.name)
            if d.input_cost_per_token is None or d.output_cost_per_token is None:
                raise ConfigurationError(
                    f"deployment {d.name!r} has no price: the catalog does not know "
                    f"{d.catalog_model or d.model!r}. Pass input_cost_per_token= and "
                    "output_cost_per_token= (0 for free), or catalog_model= naming a known model."
                )
            state = self.states.get(d.name)
            if state is None:
                state = self.states[d.name] = DeploymentState(self.health)
            rows.append(
                (
                    d,
                    state,
                    float(d.input_cost_per_token),
                    float(d.output_cost_per_token),
                    int(d.context_window or 8192),
                    int(d.max_output_tokens or 4096),
                    bool(d.supports_tools),
                    bool(d.supports_vision),
                    bool(d.supports_json),
                    bool(d.local),
                    float(d.quality if d.quality is not None else 0.5),
                    float(d.latency_ms if d.latency_ms is not None else 800.0),
                    int(d.max_concurrency or 0),
                )
            )
        for name in [n for n in self.states if n not in seen]:
            del self.states[name]
        self._rows = rows

    def largest_window(self) -> int:
        """The largest context window among the deployments (0 when there are none)."""
        return max((row[4] for row in self._rows), default=0)

    def decide(self, request: RouteRequest, strategy: Strategy, request_id: str = "") -> Decision:
        """Filter, score and order the deployments for ``request`` with ``strategy``."""
        now = time.monotonic()
        prompt = request.prompt_tokens
        bound = prompt_upper_bound(prompt, estimated=True, messages=request.messages)
        cap = request.max_tokens
        out_est = cap if cap is not None else request.expected_output_tokens
        needed_window = prompt + (cap if cap is not None else 1)
        required = request.required_quality
        max_cost = request.max_cost_usd
        max_latency = request.max_latency_ms
        budget = request.budget_remaining_usd
        only = request.only
        privacy = self.privacy_policy
        eligible: list[Candidate] = []
        rejected: list[tuple[str, str]] = []
        append = eligible.append
        for (
            d,
            st,
            pin,
            pout,
            window,
            max_out,
            tools,
            vision,
            js,
            local,
            q0,
            lat0,
            conc,
        ) in self._rows:
            if only is not None and d.name not in only:
                rejected.append((d.name, "not in the caller's list"))
                continue
            if request.confidential and not local:
                rejected.append((d.name, "confidential request, cloud deployment"))
                continue
            if privacy is not None and not privacy(d, request):
                rejected.append((d.name, "privacy policy"))
                continue
            if request.needs_tools and not tools:
                rejected.append((d.name, "no tool calling"))
                continue
            if request.needs_vision and not vision:
                rejected.append((d.name, "no image input"))
                continue
            if request.needs_json and not js:
                rejected.append((d.name, "no structured output"))
                continue
            if needed_window > window:
                rejected.append((d.name, f"context window {window} < {needed_window} tokens"))
                continue
            if not st.available(now):
                rejected.append((d.name, st.unavailable_reason(now)))
                continue
            if conc and st.inflight >= conc:
                rejected.append((d.name, f"at max concurrency {conc}"))
                continue
            worst = (
                worst_cost(d, bound, cap if cap is not None else max_out) if pin or pout else 0.0
            )
            if budget is not None and worst > budget:
                rejected.append((d.name, f"worst case ${worst:.6f} > budget left ${budget:.6f}"))
                continue
            cost = prompt * pin + min(out_est, max_out) * pout
            if max_cost is not None and cost > max_cost:
                rejected.append((d.name, f"est. ${cost:.6f} > max_cost ${max_cost:.6f}"))
                continue
            n = st.feedback_n
            quality = (q0 * PRIOR_WEIGHT + st.feedback_sum) / (PRIOR_WEIGHT + n) if n else q0
            if required is not None and quality < required:
                rejected.append((d.name, f"quality {quality:.2f} < required {required:.2f}"))
                continue
            latency = st.p50_ms if st.samples >= 3 else lat0
            if max_latency is not None and latency > max_latency:
                rejected.append((d.name, f"~{latency:.0f} ms > max_latency_ms {max_latency:.0f}"))
                continue
            append(Candidate(d, st, cost, worst, latency, quality))

        if required is not None:
            floor = required
        else:
            floor = quality_floor(request.complexity)
            if request.budget_fraction_spent > 0.5:
                floor *= self.downgrade(request.budget_fraction_spent)
        ordered = strategy.order(eligible, request, floor) if eligible else eligible
        if not ordered:
            return Decision(
                [], rejected, strategy.name, request.complexity, floor, 0.0,
                "no deployment is eligible", request_id=request_id,
            )  # fmt: skip
        first = ordered[0]
        meets = first.quality >= floor
        decision = Decision(
            ordered,
            rejected,
            strategy.name,
            request.complexity,
            floor,
            _confidence(ordered, floor, meets),
            strategy.reason(first, floor, meets),
            request_id=request_id,
        )
        window = first.deployment.context_window or 0
        if window and prompt + out_est > 0.9 * window:
            decision.warnings.append(
                f"prompt {prompt} + output {out_est} tokens is within 10% of "
                f"{first.deployment.name}'s {window}-token window"
            )
        return decision


def _confidence(ordered: list[Candidate], floor: float, meets: bool) -> float:
    """How sure the choice is: meeting the floor, the quality margin, and observed data.

    ``0.5`` base; ``+0.25`` when the first candidate meets the floor; up to ``+0.15`` for its
    quality margin over the floor (full at 0.15); ``+0.1`` when its latency was observed (at
    least 3 calls) rather than guessed; ``-0.1`` when it is the only candidate (no fallback).
    """
    first = ordered[0]
    confidence = 0.5
    if meets:
        confidence += 0.25 + min(0.15, first.quality - floor)
    if first.state.samples >= 3:
        confidence += 0.1
    if len(ordered) == 1:
        confidence -= 0.1
    return min(1.0, max(0.0, confidence))
