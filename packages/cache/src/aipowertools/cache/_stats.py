"""What the cache did in this process: hits, misses and what they saved, per scope and model."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass(frozen=True)
class CacheStats:
    """Counters of one cache (or one scope / model of it) since it was created.

    Attributes:
        hits: lookups answered from the cache (semantic ones included).
        semantic_hits: hits by similarity rather than by exact key.
        misses: lookups the cache could not answer.
        errors: store failures (the lookups among them are also counted as misses).
        input_tokens_saved: prompt tokens the hits did not send.
        output_tokens_saved: completion tokens the hits did not pay for.
        saved_usd: what the hits would have cost at catalog prices.
        by_scope: the same counters per scope.
        by_model: the same counters per model.

    Example:
        >>> CacheStats(hits=3, misses=1).hit_rate
        0.75
    """

    hits: int = 0
    semantic_hits: int = 0
    misses: int = 0
    errors: int = 0
    input_tokens_saved: int = 0
    output_tokens_saved: int = 0
    saved_usd: float = 0.0
    by_scope: dict[str, CacheStats] = field(default_factory=dict, repr=False)
    by_model: dict[str, CacheStats] = field(default_factory=dict, repr=False)

    @property
    def lookups(self) -> int:
        """Hits plus misses."""
        return self.hits + self.misses

    @property
    def hit_rate(self) -> float:
        """Hits over lookups (0.0 before any lookup)."""
        return self.hits / self.lookups if self.lookups else 0.0

    @property
    def tokens_saved(self) -> int:
        """Input plus output tokens saved."""
        return self.input_tokens_saved + self.output_tokens_saved


_FIELDS = 7  # hits, semantic, misses, errors, input, output, usd


class StatsCounter:
    """Thread-safe counters keyed by (scope, model)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, str], list[float]] = {}
        self._errors = 0

    def add(
        self,
        scope: str,
        model: str,
        *,
        hits: int = 0,
        semantic: int = 0,
        misses: int = 0,
        input_tokens: int = 0,
        output_tokens: int = 0,
        saved_usd: float = 0.0,
    ) -> None:
        with self._lock:
            row = self._rows.setdefault((scope, model), [0.0] * _FIELDS)
            row[0] += hits
            row[1] += semantic
            row[2] += misses
            row[4] += input_tokens
            row[5] += output_tokens
            row[6] += saved_usd

    def error(self) -> None:
        with self._lock:
            self._errors += 1

    def reset(self) -> None:
        with self._lock:
            self._rows.clear()
            self._errors = 0

    def snapshot(self) -> CacheStats:
        with self._lock:
            rows = {k: list(v) for k, v in self._rows.items()}
        by_scope: dict[str, list[float]] = {}
        by_model: dict[str, list[float]] = {}
        total = [0.0] * _FIELDS
        total[3] = self._errors
        for (scope, model), row in rows.items():
            for target in (
                by_scope.setdefault(scope, [0.0] * _FIELDS),
                by_model.setdefault(model, [0.0] * _FIELDS),
                total,
            ):
                for i, value in enumerate(row):
                    target[i] += value
        return _stats(
            total,
            by_scope={k: _stats(v) for k, v in sorted(by_scope.items())},
            by_model={k: _stats(v) for k, v in sorted(by_model.items())},
        )


def _stats(
    row: list[float],
    by_scope: dict[str, CacheStats] | None = None,
    by_model: dict[str, CacheStats] | None = None,
) -> CacheStats:
    return CacheStats(
        hits=int(row[0]),
        semantic_hits=int(row[1]),
        misses=int(row[2]),
        errors=int(row[3]),
        input_tokens_saved=int(row[4]),
        output_tokens_saved=int(row[5]),
        saved_usd=row[6],
        by_scope=by_scope or {},
        by_model=by_model or {},
    )
