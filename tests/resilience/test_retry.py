import asyncio
import random
import statistics

import pytest

from aipowertools.core.errors import (
    AuthenticationError,
    ConfigurationError,
    ContentPolicyError,
    ContextWindowExceededError,
    ErrorKind,
    PermanentProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    TransientProviderError,
)
from aipowertools.resilience import ErrorHandler, RetryEvent, RetryPolicy, retry

TABLE = [
    (RateLimitedError("429", retry_after=0.01), ErrorKind.RATE_LIMITED, 3),
    (ProviderTimeoutError("slow"), ErrorKind.TIMEOUT, 3),
    (TransientProviderError("503"), ErrorKind.TRANSIENT, 3),
    (TimeoutError("read timed out"), ErrorKind.TIMEOUT, 3),
    (ContextWindowExceededError("too long"), ErrorKind.CONTEXT_WINDOW, 1),
    (AuthenticationError("401"), ErrorKind.AUTHENTICATION, 1),
    (ContentPolicyError("refused"), ErrorKind.CONTENT_POLICY, 1),
    (PermanentProviderError("400"), ErrorKind.PERMANENT, 1),
]


@pytest.mark.parametrize(("error", "kind", "attempts"), TABLE, ids=[k for _, k, _ in TABLE])
def test_classification_table(error, kind, attempts):
    calls = []
    events: list[RetryEvent] = []

    @retry(max_attempts=3, base_delay=0.001, on_retry=events.append)
    def fail():
        calls.append(1)
        raise error

    with pytest.raises(type(error)):
        fail()
    assert len(calls) == attempts
    assert all(e.kind is kind for e in events)
    assert len(events) == attempts - 1


@pytest.mark.parametrize(("error", "kind", "attempts"), TABLE, ids=[k for _, k, _ in TABLE])
async def test_classification_table_async(error, kind, attempts):
    calls = []

    @retry(max_attempts=3, base_delay=0.001)
    async def fail():
        calls.append(1)
        raise error

    with pytest.raises(type(error)):
        await fail()
    assert len(calls) == attempts


class FakeTime:
    """tenacity's clock and sleep, moved by hand: a retry's verdict never depends on load."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    import tenacity
    import tenacity.nap

    fake = FakeTime()
    monkeypatch.setattr(tenacity, "time", fake)  # attempt timestamps and the deadline
    monkeypatch.setattr(tenacity.nap, "time", fake)  # the default sleep
    return fake


def test_retry_after_is_honoured(fake_time: FakeTime):
    calls: list[float] = []

    @retry(max_attempts=2, base_delay=0.001, jitter=False)
    def limited():
        calls.append(fake_time.now)
        if len(calls) == 1:
            raise RateLimitedError("429", retry_after=0.3)
        return "ok"

    assert limited() == "ok"
    assert fake_time.slept == [pytest.approx(0.3)]
    assert calls[1] - calls[0] >= 0.3


def test_deadline_never_sleeps_past_it(fake_time: FakeTime):
    calls = []

    @retry(max_attempts=10, base_delay=0.2, jitter=False, deadline=0.5)
    def slow():
        calls.append(fake_time.now)
        fake_time.now += 0.05  # each attempt takes 50 ms
        raise TransientProviderError("503")

    with pytest.raises(TransientProviderError):
        slow()
    # fails at 0.05 (+0.2 fits), at 0.30 (+0.4 would end at 0.70, past 0.5): stops there
    assert calls == [0.0, pytest.approx(0.25)]
    assert fake_time.slept == [0.2]
    assert fake_time.now < 0.5


def test_strategies_and_caps():
    exp = RetryPolicy(base_delay=1, max_delay=5, jitter=False)
    assert [exp.backoff(a) for a in range(1, 5)] == [1, 2, 4, 5]
    fib = RetryPolicy(strategy="fibonacci", base_delay=1, jitter=False)
    assert [fib.backoff(a) for a in range(1, 7)] == [1, 1, 2, 3, 5, 8]
    assert RetryPolicy(strategy="constant", base_delay=2).backoff(9) == 2
    assert RetryPolicy(strategy="linear", base_delay=2).backoff(3) == 6
    assert RetryPolicy(strategy=lambda n: n / 10).backoff(3) == pytest.approx(0.3)


@pytest.mark.parametrize("jitter", ["full", "equal", "decorrelated"])
def test_jitter_spreads_100_simultaneous_retries(jitter):
    policy = RetryPolicy(base_delay=1.0, max_delay=30, jitter=jitter, rng=random.Random(7))
    sleeps = [policy.delay(3, TransientProviderError("503"), previous=2.0) for _ in range(100)]
    spread = max(sleeps) - min(sleeps)
    # `pytest -s -k jitter` prints the figure the closing notes quote.
    print(f"{jitter} jitter, 100 retries at attempt 3: {min(sleeps):.2f}-{max(sleeps):.2f} s")
    # without jitter all 100 would sleep exactly 4 s and hit the provider together
    assert spread > 1.0, (jitter, spread)
    assert len({round(s, 3) for s in sleeps}) > 90
    assert statistics.pstdev(sleeps) > 0.3
    assert RetryPolicy(jitter=False).delay(3) == 4.0


def test_retry_on_and_fallbacks():
    seen = []

    @retry(max_attempts=3, base_delay=0.001, retry_on=ValueError, fallback_value="sorry")
    def bad():
        seen.append(1)
        raise ValueError("x")

    assert bad() == "sorry"
    assert len(seen) == 3

    @retry(max_attempts=2, base_delay=0.001, retry_on=[ErrorKind.PERMANENT], fallback=lambda x: x)
    def perm(x):
        raise PermanentProviderError("400")

    assert perm(5) == 5
    pred = RetryPolicy(retry_on=lambda e: "again" in str(e))
    assert pred.should_retry(RuntimeError("again"))
    assert not pred.should_retry(RuntimeError("no"))
    assert RetryPolicy(retry_on=ErrorKind.TIMEOUT).should_retry(TimeoutError())
    assert not RetryPolicy().should_retry(KeyboardInterrupt())


async def test_async_fallback_and_hook():
    events = []

    async def hook(e):
        events.append(e.attempt)

    async def fb():
        return "fallback"

    policy = RetryPolicy(max_attempts=3, base_delay=0.001, fallback=fb).add_hook(hook)

    async def boom():
        raise TransientProviderError("503")

    assert await policy.acall(boom) == "fallback"
    assert events == [1, 2]


def test_bare_decorator_and_retrying_loop():
    @retry
    def ok():
        return 1

    assert ok() == 1
    n = 0
    for attempt in RetryPolicy(max_attempts=3, base_delay=0.001).retrying():
        with attempt:
            n += 1
            if n < 2:
                raise TransientProviderError("503")
    assert n == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"base_delay": -1},
        {"deadline": 0},
        {"strategy": "quadratic"},
        {"jitter": "wild"},
        {"fallback": print, "fallback_value": 1},
    ],
)
def test_bad_policy_is_typed(kwargs):
    with pytest.raises(ConfigurationError):
        RetryPolicy(**kwargs)


def test_error_handler_aliases():
    assert ErrorHandler.RateLimitError is RateLimitedError
    assert isinstance(AuthenticationError("x"), ErrorHandler.PermanentError)
    assert not isinstance(TransientProviderError("x"), ErrorHandler.PermanentError)
    assert ErrorHandler.classify(TimeoutError()) is ErrorKind.TIMEOUT

    @ErrorHandler.retry(max_attempts=2)
    async def f():
        return 3

    assert asyncio.run(f()) == 3
