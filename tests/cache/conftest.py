from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from aipowertools.cache import LLMCache


class Clock:
    """A settable clock for TTLs."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class WordEmbedder:
    """Deterministic bag-of-words embedder: texts sharing words are similar, others are not."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, text: str) -> list[float]:
        self.calls += 1
        vector = np.zeros(64, dtype=np.float32)
        for word in text.lower().replace("?", " ").replace(",", " ").split():
            vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % 64] += 1.0
        return vector.tolist()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "diskcache"])
def embedded_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"diskcache://{tmp_path / 'cache'}"


@pytest.fixture
def make(embedded_url: str, clock: Clock) -> Iterator[object]:
    made: list[LLMCache] = []

    def factory(**kwargs: object) -> LLMCache:
        kwargs.setdefault("clock", clock)
        cache = LLMCache(embedded_url, **kwargs)  # type: ignore[arg-type]
        made.append(cache)
        return cache

    yield factory
    for cache in made:
        cache.close()
