"""``remaining_tokens`` / ``retry_after``: the roadmap's getRemainingTokens / getRetryAfter."""

import math

import pytest

from aipowertools.core.errors import ConfigurationError
from aipowertools.resilience import Limit, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_remaining_tokens_and_retry_after_follow_the_window():
    clock = Clock()
    limiter = RateLimiter(
        limits=[Limit("tokens", 1000, 60.0), Limit("requests", 10, 60.0)],
        smooth=False,
        clock=clock,
    )
    assert limiter.remaining_tokens("k") == 1000.0
    assert limiter.retry_after("k", tokens=1000) == 0.0
    assert limiter.try_acquire("k", tokens=700) is not None
    clock.now += 10
    assert limiter.try_acquire("k", tokens=200) is not None
    assert limiter.remaining_tokens("k") == 100.0
    assert limiter.retry_after("k", tokens=100) == 0.0
    assert limiter.retry_after("k", tokens=300) == pytest.approx(50.0)  # the 700 expire
    assert limiter.retry_after("k", tokens=1000) == pytest.approx(60.0)  # both expire
    assert limiter.remaining_tokens("k") == 100.0  # peeking reserved nothing
    clock.now += 50
    assert limiter.remaining_tokens("k") == 800.0
    assert limiter.retry_after("k", tokens=800) == 0.0


def test_retry_after_counts_requests_and_a_learned_pause():
    clock = Clock()
    limiter = RateLimiter(requests_per_minute=2, smooth=False, clock=clock)
    assert limiter.remaining_tokens() == math.inf  # no token limit
    limiter.try_acquire()
    limiter.try_acquire()
    assert limiter.retry_after() == pytest.approx(60.0)
    limiter.observe("default", retry_after=90)
    assert limiter.retry_after() == pytest.approx(90.0)
    assert limiter.remaining_tokens() == 0.0


def test_bad_arguments_are_typed_errors():
    limiter = RateLimiter(tokens_per_minute=100)
    with pytest.raises(ConfigurationError):
        limiter.retry_after("k", tokens=-1)
    with pytest.raises(ConfigurationError):
        limiter.retry_after("k", tokens=101)
    with pytest.raises(ConfigurationError):
        limiter.remaining_tokens("")
