"""Hypothesis fuzz of the public session, cost and logger APIs.

Invariants: whatever JSON-shaped value a user stores reads back exactly (keys named like our
own envelope tag included); bad input is refused with a typed AIPowerToolsError, never a raw
TypeError / ValueError from deep inside; logging never raises.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aipowertools.core import CostTracker
from aipowertools.core.errors import AIPowerToolsError
from aipowertools.sessions import Session

from .conftest import Tally

_FUZZ = settings(
    max_examples=60, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip

keys = st.one_of(st.sampled_from(["__aipt__", "v", "role", "content"]), st.text(max_size=8))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20),
)  # fmt: skip
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=12,
)


@_FUZZ
@given(value=json_values, item=json_values)
def test_session_values_round_trip(value: Any, item: Any, tally: Tally) -> None:
    tally.tried()
    s = Session(f"fuzz-{uuid.uuid4().hex[:8]}", store="memory://")
    s.set("value", value)
    s.append("list", item)
    s.append("list", value)
    assert s.get("value") == value
    assert s.get("list") == [item, value]
    tally.survived()


@_FUZZ
@given(
    cost=st.one_of(st.floats(allow_nan=True), st.integers(), st.text(max_size=4), st.none()),
    model=st.one_of(st.text(max_size=12), st.integers(), st.none()),
    tags=st.one_of(st.lists(st.text(max_size=6), max_size=3), st.integers()),
)
def test_cost_record_is_typed(cost: Any, model: Any, tags: Any, tally: Tally) -> None:
    tally.tried()
    tracker = CostTracker(store="memory://")
    try:
        tracker.record(model=model, cost_usd=cost, tags=tags)
    except AIPowerToolsError:
        tally.refused()
    else:
        assert isinstance(cost, (int, float))
        assert math.isfinite(cost)
        assert cost >= 0
        tally.survived()


@_FUZZ
@given(
    event=st.text(min_size=1, max_size=20),
    fields=st.dictionaries(st.text(max_size=8), json_values, max_size=4),
)
def test_logger_never_raises(event: str, fields: dict[str, Any], tally: Tally) -> None:
    from aipowertools.callbacks import StructuredLogger

    tally.tried()
    log = StructuredLogger("fuzz", store=None)
    safe = {k: v for k, v in fields.items() if k.isidentifier()}
    log.info(event, **safe)
    log.close(timeout=1.0)
    tally.survived()
