"""Fixtures for the response cache on real Redis and PostgreSQL servers."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from aipowertools.cache import LLMCache


class Clock:
    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def words(text: str) -> list[float]:
    """Deterministic bag-of-words embedding."""
    vector = np.zeros(64, dtype=np.float32)
    for word in text.lower().replace("?", " ").split():
        vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % 64] += 1.0
    return vector.tolist()


@pytest.fixture(params=["redis", "postgresql"])
def server_url(request: pytest.FixtureRequest) -> str:
    fixture = "redis_url" if request.param == "redis" else "postgres_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make(server_url: str, clock: Clock) -> Iterator[Callable[..., LLMCache]]:
    namespace = "t" + uuid.uuid4().hex[:12]
    made: list[LLMCache] = []

    def factory(**kwargs: object) -> LLMCache:
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("namespace", namespace)
        cache = LLMCache(server_url, **kwargs)  # type: ignore[arg-type]
        made.append(cache)
        return cache

    yield factory
    for cache in made:
        cache.clear()
        cache.close()
