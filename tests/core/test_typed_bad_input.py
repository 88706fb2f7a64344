"""Bad input to the cost and session APIs is a ConfigurationError naming the argument."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from aipowertools.core import CostTracker
from aipowertools.core.errors import ConfigurationError
from aipowertools.sessions import Session

tracker = CostTracker(store="memory://", budget_usd=1.0)
session = Session("bad-input", store="memory://")


def _deep() -> list[Any]:
    root: list[Any] = []
    cur = root
    for _ in range(100_000):
        nxt: list[Any] = []
        cur.append(nxt)
        cur = nxt
    return root


@pytest.mark.parametrize(
    ("call", "names"),
    [
        (lambda: tracker.release("x"), "release()"),
        (lambda: tracker.reserve(0.1, ttl_s=-5), "ttl_s"),
        (lambda: tracker.reserve(0.1, ttl_s="5"), "ttl_s"),
        (lambda: tracker.spent_usd(period="week"), "period"),
        (lambda: tracker.reserved_usd(period="week"), "period"),
        (lambda: tracker.add_budget(5, scope=123), "scope"),
        (lambda: Session("a", store="memory://", lock_timeout="5"), "lock_timeout"),
        (lambda: session.append(["a"], 1), "key"),
        (lambda: session.update("k", None), "update()"),
        (lambda: session.set("deep", _deep()), "nested"),
    ],
)
def test_bad_input_is_typed(call: Callable[[], Any], names: str) -> None:
    with pytest.raises(ConfigurationError, match=names.replace("(", r"\(").replace(")", r"\)")):
        call()
