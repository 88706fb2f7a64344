"""Per-deployment live state: in-flight calls, observed latency, error rate, cooldown, feedback.

The state is a circuit breaker with cooldown: ``failure_threshold`` consecutive failures, an
error rate above ``error_rate_threshold`` over the last ``window`` calls, or a p95 latency above
``latency_threshold_ms`` open it for ``cooldown_s`` (doubling on each failed trial, up to
``max_cooldown_s``). After the cooldown exactly one trial call is let through (half-open); its
success closes the circuit. A 429 with Retry-After parks the deployment until then without
counting as a failure of the deployment.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from aipowertools.core.errors import ConfigurationError

_RING = 64


@dataclass(frozen=True)
class HealthPolicy:
    """Thresholds that put a deployment in cooldown.

    Args:
        failure_threshold: consecutive failures that open the circuit.
        error_rate_threshold: error rate over the last ``window`` calls that opens it.
        min_samples: calls needed before the error rate counts.
        window: number of recent calls the error rate is computed over.
        cooldown_s: first cooldown, in seconds.
        max_cooldown_s: longest cooldown after repeated failed trials.
        latency_threshold_ms: p95 latency above which the deployment cools down (off if None).
    """

    failure_threshold: int = 5
    error_rate_threshold: float = 0.5
    min_samples: int = 10
    window: int = 20
    cooldown_s: float = 30.0
    max_cooldown_s: float = 300.0
    latency_threshold_ms: float | None = None

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.window < 1 or self.min_samples < 1:
            raise ConfigurationError(
                "HealthPolicy failure_threshold, window and min_samples must be at least 1"
            )
        if not 0.0 < self.error_rate_threshold <= 1.0:
            raise ConfigurationError("HealthPolicy error_rate_threshold must be in (0, 1]")
        if self.cooldown_s < 0 or self.max_cooldown_s < self.cooldown_s:
            raise ConfigurationError("HealthPolicy needs 0 <= cooldown_s <= max_cooldown_s")


class DeploymentState:
    """Live, mutable facts about one deployment (one event loop mutates it; reads are cheap)."""

    __slots__ = (
        "_cooldown",
        "_lat_i",
        "_latencies",
        "_out_i",
        "_outcomes",
        "_p50",
        "_p90",
        "_p95",
        "_stale",
        "calls",
        "consecutive_failures",
        "failures",
        "feedback_n",
        "feedback_sum",
        "inflight",
        "open_reason",
        "open_until",
        "parked_reason",
        "parked_until",
        "policy",
        "probing",
    )

    def __init__(self, policy: HealthPolicy) -> None:
        self.policy = policy
        self.inflight = 0
        self.calls = 0
        self.failures = 0
        self.consecutive_failures = 0
        self.open_until = 0.0
        self.open_reason = ""
        self.parked_until = 0.0
        self.parked_reason = "Retry-After"
        self.probing = False
        self.feedback_sum = 0.0
        self.feedback_n = 0
        self._cooldown = policy.cooldown_s
        self._latencies: list[float] = []
        self._lat_i = 0
        self._outcomes: list[bool] = []
        self._out_i = 0
        self._p50 = 0.0
        self._p90 = 0.0
        self._p95 = 0.0
        self._stale = False

    # ------------------------------------------------------------------ availability
    def available(self, now: float) -> bool:
        """Whether a call may be sent now (closed circuit, or half-open with no trial out)."""
        if now < self.parked_until:
            return False
        if self.open_until == 0.0:
            return True
        return now >= self.open_until and not self.probing

    def unavailable_reason(self, now: float) -> str:
        """Why :meth:`available` is false, for explanations."""
        if now < self.parked_until:
            return f"rate limited for {self.parked_until - now:.1f} s more ({self.parked_reason})"
        if now < self.open_until:
            return f"circuit open for {self.open_until - now:.1f} s more ({self.open_reason})"
        return "circuit half-open, trial call in flight"

    def begin(self, now: float) -> None:
        """A call starts (marks the half-open trial)."""
        self.inflight += 1
        if self.open_until and now >= self.open_until:
            self.probing = True

    # ------------------------------------------------------------------ outcomes
    def _push_outcome(self, ok: bool) -> None:
        window = self.policy.window
        if len(self._outcomes) < window:
            self._outcomes.append(ok)
        else:
            self._outcomes[self._out_i] = ok
            self._out_i = (self._out_i + 1) % window

    def success(self, latency_ms: float) -> None:
        """A call finished well after ``latency_ms``."""
        self.inflight = max(0, self.inflight - 1)
        self.calls += 1
        self.consecutive_failures = 0
        self._push_outcome(True)
        if len(self._latencies) < _RING:
            self._latencies.append(latency_ms)
        else:
            self._latencies[self._lat_i] = latency_ms
            self._lat_i = (self._lat_i + 1) % _RING
        self._stale = True
        if self.open_until:
            self.open_until = 0.0
            self.open_reason = ""
            self.probing = False
            self._cooldown = self.policy.cooldown_s
        threshold = self.policy.latency_threshold_ms
        if (
            threshold is not None
            and len(self._latencies) >= self.policy.min_samples
            and self.p95_ms > threshold
        ):
            self._open(time.monotonic(), f"p95 latency {self.p95_ms:.0f} ms > {threshold:.0f} ms")
            # Forget the slow samples, or the trial call could never close the circuit.
            self._latencies.clear()
            self._lat_i = 0

    def failure(self, now: float, *, counts: bool = True, retry_after: float | None = None) -> None:
        """A call failed; ``counts`` is false for failures that are not the deployment's fault."""
        self.inflight = max(0, self.inflight - 1)
        if retry_after and now + retry_after > self.parked_until:
            self.parked_until = now + retry_after
            self.parked_reason = "Retry-After"
        if not counts:
            if self.probing:
                self.probing = False
            return
        self.calls += 1
        self.failures += 1
        self.consecutive_failures += 1
        self._push_outcome(False)
        if self.probing:
            self.probing = False
            self._cooldown = min(self._cooldown * 2, self.policy.max_cooldown_s)
            self._open(now, "trial call failed")
            return
        policy = self.policy
        if self.consecutive_failures >= policy.failure_threshold:
            self._open(now, f"{self.consecutive_failures} consecutive failures")
            return
        if len(self._outcomes) >= policy.min_samples:
            rate = self.error_rate
            if rate >= policy.error_rate_threshold:
                self._open(now, f"error rate {rate:.0%} over the last {len(self._outcomes)} calls")

    def apply_remote(
        self,
        *,
        open_until: float = 0.0,
        open_reason: str = "",
        parked_until: float = 0.0,
        parked_reason: str = "",
    ) -> bool:
        """Take another router's view: unavailable until the given monotonic times, if later.

        Opens the circuit until ``open_until`` / parks the deployment until ``parked_until``
        when that is later than what this state holds; after it the usual half-open trial
        applies. Returns True when something changed.
        """
        changed = False
        if open_until > self.open_until:
            self.open_until = open_until
            self.open_reason = open_reason
            changed = True
        if parked_until > self.parked_until:
            self.parked_until = parked_until
            self.parked_reason = parked_reason
            changed = True
        return changed

    def cancelled(self) -> None:
        """A call was cancelled (lost a race); it says nothing about health."""
        self.inflight = max(0, self.inflight - 1)
        self.probing = False

    def _open(self, now: float, reason: str) -> None:
        self.open_until = now + self._cooldown
        self.open_reason = reason
        self._outcomes.clear()
        self._out_i = 0
        self.consecutive_failures = 0

    # ------------------------------------------------------------------ statistics
    @property
    def error_rate(self) -> float:
        """Share of failures among the recent calls (0 when there were none)."""
        n = len(self._outcomes)
        return (n - sum(self._outcomes)) / n if n else 0.0

    def _refresh(self) -> None:
        ordered = sorted(self._latencies)
        n = len(ordered)
        self._p50 = ordered[(n - 1) // 2]
        self._p90 = ordered[min(n - 1, round(0.90 * (n - 1)))]
        self._p95 = ordered[min(n - 1, round(0.95 * (n - 1)))]
        self._stale = False

    @property
    def samples(self) -> int:
        """Number of latency samples held (at most 64)."""
        return len(self._latencies)

    @property
    def p50_ms(self) -> float:
        """Median observed latency (0 before the first success)."""
        if self._stale:
            self._refresh()
        return self._p50

    @property
    def p90_ms(self) -> float:
        """90th percentile of observed latency (0 before the first success)."""
        if self._stale:
            self._refresh()
        return self._p90

    @property
    def p95_ms(self) -> float:
        """95th percentile of observed latency (0 before the first success)."""
        if self._stale:
            self._refresh()
        return self._p95

    def feedback(self, score: float) -> None:
        """Record a user's 0..1 judgement of an answer from this deployment."""
        self.feedback_sum += score
        self.feedback_n += 1
