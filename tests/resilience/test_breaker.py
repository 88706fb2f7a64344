import asyncio

import pytest

from aipowertools.core.errors import (
    AuthenticationError,
    CircuitOpenError,
    ConfigurationError,
    StoreURLError,
    TransientProviderError,
)
from aipowertools.resilience import CircuitBreaker, CircuitState, StateChange, circuit_breaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fail():
    raise TransientProviderError("503")


def test_state_machine_closed_open_half_open_closed():
    clock = Clock()
    changes: list[StateChange] = []
    b = CircuitBreaker(
        "svc",
        failure_threshold=3,
        recovery_timeout=10,
        success_threshold=2,
        half_open_max_calls=2,
        clock=clock,
        on_state_change=changes.append,
    )
    for _ in range(3):
        with pytest.raises(TransientProviderError):
            b.call(fail)
    assert b.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError) as info:
        b.call(lambda: "x")
    assert info.value.retry_at == pytest.approx(1010.0)
    clock.now += 10
    p1, p2 = b.enter(), b.enter()  # two probes allowed
    with pytest.raises(CircuitOpenError):
        b.enter()  # a third is not
    assert b.snapshot().probes_in_flight == 2
    p1.finish(None)
    assert b.state is CircuitState.HALF_OPEN
    p2.finish(None)
    assert b.state is CircuitState.CLOSED
    assert [(c.old.value, c.new.value) for c in changes] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]


def test_failed_probe_reopens_and_window_forgets_old_failures():
    clock = Clock()
    b = CircuitBreaker("w", failure_threshold=2, recovery_timeout=5, window=30, clock=clock)
    with pytest.raises(TransientProviderError):
        b.call(fail)
    clock.now += 31  # outside the window
    with pytest.raises(TransientProviderError):
        b.call(fail)
    assert b.state is CircuitState.CLOSED
    with pytest.raises(TransientProviderError):
        b.call(fail)
    assert b.state is CircuitState.OPEN
    clock.now += 5
    with pytest.raises(TransientProviderError):
        b.call(fail)  # the probe fails
    assert b.state is CircuitState.OPEN
    b.reset()
    assert b.state is CircuitState.CLOSED


def test_failure_rate_threshold_and_non_counted_errors():
    b = CircuitBreaker("r", failure_threshold=100, failure_rate_threshold=0.5, minimum_requests=4)
    b.call(lambda: 1)
    for _ in range(5):  # the caller's own bad requests never open the circuit
        with pytest.raises(AuthenticationError):
            b.call(lambda: (_ for _ in ()).throw(AuthenticationError("401")))
    assert b.state is CircuitState.CLOSED
    b.call(lambda: 1)
    with pytest.raises(TransientProviderError):
        b.call(fail)
    assert b.state is CircuitState.CLOSED  # 1 of 3: below minimum_requests
    with pytest.raises(TransientProviderError):
        b.call(fail)
    assert b.state is CircuitState.OPEN  # 2 of 4 = 50 %


def test_counted_is_configurable():
    b = CircuitBreaker("c", failure_threshold=1, counted=[KeyError])
    with pytest.raises(TransientProviderError):
        b.call(fail)
    assert b.state is CircuitState.CLOSED
    with pytest.raises(KeyError):
        b.call(lambda: {}["x"])
    assert b.state is CircuitState.OPEN
    p = CircuitBreaker("p", counted=lambda e: isinstance(e, ValueError))
    assert p.is_counted(ValueError())
    assert not p.is_counted(TransientProviderError("x"))


async def test_async_decorator_and_listener_errors_are_contained():
    calls = []

    @circuit_breaker(failure_threshold=1, recovery_timeout=60)
    async def flaky():
        calls.append(1)
        raise TransientProviderError("503")

    flaky.breaker.add_listener(lambda change: 1 / 0)  # type: ignore[attr-defined]
    with pytest.raises(TransientProviderError):
        await flaky()
    with pytest.raises(CircuitOpenError):
        await flaky()
    assert len(calls) == 1

    @circuit_breaker("named")
    def ok():
        return "ok"

    assert ok() == "ok"
    assert await CircuitBreaker().acall(asyncio.sleep, 0, "x") == "x"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"failure_threshold": 0},
        {"recovery_timeout": 0},
        {"failure_rate_threshold": 1.5},
        {"store": "sqlite:///x"},
    ],
)
def test_bad_breaker_config(kwargs):
    with pytest.raises((ConfigurationError, StoreURLError)):
        CircuitBreaker("x", **kwargs)


def test_available_does_not_take_a_probe():
    clock = Clock()
    b = CircuitBreaker("av", failure_threshold=1, recovery_timeout=10, clock=clock)
    assert b.available()
    with pytest.raises(TransientProviderError):
        b.call(fail)
    assert not b.available()
    clock.now += 10
    assert b.available()
    assert b.available()  # asking twice took nothing
    probe = b.enter()
    assert b.state is CircuitState.HALF_OPEN
    assert not b.available()  # the one probe slot is taken
    probe.finish(None)
    assert b.available()
    assert b.state is CircuitState.CLOSED


async def test_async_enter_and_finish_handle():
    b = CircuitBreaker("handle", failure_threshold=1)
    call = await b.aenter()
    await call.afinish(TransientProviderError("503"))
    await call.afinish(None)  # reported once only
    assert b.state is CircuitState.OPEN
