"""A mergeable quantile sketch with bounded relative error (DDSketch-style).

Used by :class:`~aipowertools.core.ProviderMonitor` for latency and time-to-first-token
quantiles: sketches of consecutive time buckets merge (and un-merge) exactly by adding
(subtracting) bucket counts, so a sliding window never keeps a sorted list of samples.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from aipowertools.core._errors import ConfigurationError

__all__ = ["LatencySketch"]


class LatencySketch:
    """A mergeable quantile sketch with relative accuracy ``alpha`` (DDSketch-style).

    A positive value ``x`` falls in bucket ``ceil(log_gamma(x))`` with
    ``gamma = (1 + alpha) / (1 - alpha)``; any quantile is answered within ``alpha`` relative
    error, and two sketches with the same ``alpha`` merge exactly by adding bucket counts.
    """

    __slots__ = ("_gamma_ln", "alpha", "buckets", "count", "max", "min", "total", "zeros")

    def __init__(self, alpha: float = 0.01) -> None:
        if not 0 < alpha < 1:
            raise ConfigurationError(f"sketch accuracy alpha must be in (0, 1), got {alpha}")
        self.alpha = alpha
        self._gamma_ln = math.log((1 + alpha) / (1 - alpha))
        self.buckets: dict[int, int] = {}
        self.zeros = 0
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, value: float, weight: int = 1) -> None:
        """Add ``value`` (negative values count as 0) ``weight`` times."""
        value = max(float(value), 0.0)
        if value <= 1e-9:
            self.zeros += weight
        else:
            key = math.ceil(math.log(value) / self._gamma_ln)
            self.buckets[key] = self.buckets.get(key, 0) + weight
        self.count += weight
        self.total += value * weight
        self.min = min(self.min, value)
        self.max = max(self.max, value)

    def merge(self, other: LatencySketch) -> None:
        """Add ``other``'s samples to this sketch (same ``alpha`` required)."""
        if other.alpha != self.alpha:
            raise ConfigurationError("cannot merge sketches with different accuracy")
        for key, n in other.buckets.items():
            self.buckets[key] = self.buckets.get(key, 0) + n
        self.zeros += other.zeros
        self.count += other.count
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def subtract(self, other: LatencySketch) -> None:
        """Remove ``other``'s samples (previously merged in) from this sketch.

        Used to slide a window: min and max are kept as outer bounds until the sketch empties.
        """
        for key, n in other.buckets.items():
            left = self.buckets.get(key, 0) - n
            if left > 0:
                self.buckets[key] = left
            else:
                self.buckets.pop(key, None)
        self.zeros = max(0, self.zeros - other.zeros)
        self.count = max(0, self.count - other.count)
        self.total = max(0.0, self.total - other.total) if self.count else 0.0
        if self.count == 0:
            self.min, self.max = math.inf, -math.inf

    def quantiles(self, qs: Iterable[float]) -> list[float | None]:
        """Several quantiles (each in 0..1) in one pass over the sorted buckets."""
        wanted = list(qs)
        for q in wanted:
            if not 0 <= q <= 1:
                raise ConfigurationError(f"quantile must be in [0, 1], got {q}")
        out: list[float | None] = [None] * len(wanted)
        if self.count == 0:
            return out
        keys = sorted(self.buckets)
        index = 0
        seen = self.zeros
        for i in sorted(range(len(wanted)), key=wanted.__getitem__):
            rank = wanted[i] * (self.count - 1)
            if rank < self.zeros:
                out[i] = 0.0
                continue
            while index < len(keys) and seen + self.buckets[keys[index]] <= rank:
                seen += self.buckets[keys[index]]
                index += 1
            if index == len(keys):  # pragma: no cover - rank < count lands in a bucket
                out[i] = self.max
                continue
            # Bucket (gamma^(k-1), gamma^k]: its midpoint in relative terms.
            key = keys[index]
            estimate = 2 * math.exp(key * self._gamma_ln) / (1 + math.exp(self._gamma_ln))
            out[i] = min(max(estimate, self.min), self.max)
        return out

    def quantile(self, q: float) -> float | None:
        """Return the ``q`` quantile (0..1), or ``None`` when empty."""
        return self.quantiles((q,))[0]

    @property
    def mean(self) -> float | None:
        """Mean of the samples, or ``None`` when empty."""
        return self.total / self.count if self.count else None
