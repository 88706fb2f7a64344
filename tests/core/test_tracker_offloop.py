"""The first tracked call never runs token counting (and litellm's import) on the event loop."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from aipowertools.core import CostTracker


async def test_areserve_counts_tokens_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    import aipowertools.core as core

    seen: list[int] = []

    def counting(messages: Any, model: str, max_tokens: int) -> float:
        seen.append(threading.get_ident())
        return 0.5

    monkeypatch.setattr(core, "estimate_cost", counting)
    tracker = CostTracker(store="memory://", budget_usd=10.0)
    loop_thread = threading.get_ident()
    res = await tracker.areserve(model="gpt-4o", messages="hello", max_tokens=10)
    assert res.amount_usd == 0.5
    assert seen
    assert loop_thread not in seen
    # a given estimate needs no counting: no thread hop
    res2 = await tracker.areserve(0.25)
    assert res2.amount_usd == 0.25
    assert len(seen) == 1
    tracker.close()
