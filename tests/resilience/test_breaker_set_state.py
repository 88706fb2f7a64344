"""``CircuitBreaker.set_state``: the roadmap's ``setState`` (force a state)."""

import pytest

from aipowertools.core.errors import CircuitOpenError, ConfigurationError
from aipowertools.resilience import CircuitBreaker, CircuitState, StateChange


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_set_state_forces_each_state_and_reports_transitions():
    clock = Clock()
    changes: list[StateChange] = []
    b = CircuitBreaker("forced", recovery_timeout=10, clock=clock, on_state_change=changes.append)
    b.set_state("open")
    assert b.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError) as info:
        b.call(lambda: "x")
    assert info.value.retry_at == pytest.approx(1010.0)
    clock.now += 5
    b.set_state(CircuitState.OPEN)  # forcing open again restarts the timeout, no transition
    with pytest.raises(CircuitOpenError) as info:
        b.enter()
    assert info.value.retry_at == pytest.approx(1015.0)
    b.set_state("half_open")
    assert b.state is CircuitState.HALF_OPEN
    b.set_state("half_open")  # no transition
    probe = b.enter()
    assert probe.probe
    probe.finish(None)
    assert b.state is CircuitState.CLOSED
    b.set_state("half_open")
    b.set_state("closed")
    assert b.state is CircuitState.CLOSED
    assert b.call(lambda: "ok") == "ok"
    b.set_state("closed")  # already closed: nothing emitted
    assert [(c.old.value, c.new.value) for c in changes] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
        ("closed", "half_open"),
        ("half_open", "closed"),
    ]


@pytest.mark.parametrize("bad", ["half-open", "OPEN", "", None, 1])
def test_set_state_rejects_anything_else(bad):
    b = CircuitBreaker("bad-state")
    with pytest.raises(ConfigurationError, match="state must be one of"):
        b.set_state(bad)
    assert b.state is CircuitState.CLOSED
