"""allow_trim goes through aipowertools.prompts.ContextManager: the newest user turn is kept."""

from __future__ import annotations

from typing import Any

import pytest

from aipowertools.core.errors import ContextWindowExceededError
from aipowertools.prompts import ContextOverflowError
from aipowertools.router import LLMRouter

from .conftest import FakeTransport, dep


def router(transport: FakeTransport, *deps: object, **kw: object) -> LLMRouter:
    return LLMRouter(list(deps), transport=transport, catalog={}, **kw)  # type: ignore[arg-type]


async def test_a_last_user_turn_larger_than_every_window_is_never_trimmed_away(
    transport: FakeTransport,
) -> None:
    # Issue 18: allow_trim=True used to drop the only user message and send an empty
    # conversation, answered as if nothing was wrong. No fit is a ContextWindowExceededError.
    r = router(transport, dep("small", window=300), allow_trim=True)
    history = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "old question"},
        {"role": "assistant", "content": "old answer"},
        {"role": "user", "content": "summarise this: " + "x" * 2_000},
    ]
    with pytest.raises(ContextWindowExceededError) as caught:
        await r.route(messages=history, max_tokens=50)
    assert isinstance(caught.value, ContextOverflowError)
    assert "last user turn" in str(caught.value)
    assert caught.value.needed_tokens > caught.value.available_tokens == 250
    assert transport.calls == []  # nothing was sent


async def test_trim_keeps_tool_exchanges_whole_and_the_agent_step_in_flight(
    transport: FakeTransport,
) -> None:
    r = router(transport, dep("small", window=400))
    history: list[dict[str, Any]] = [{"role": "system", "content": "tools allowed"}]
    for i in range(6):
        history += [
            {"role": "user", "content": f"question {i} " + "q" * 200},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": f"c{i}", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": f"c{i}", "content": "r" * 200},
        ]
    await r.route(messages=history, allow_trim=True, max_tokens=50)
    sent = transport.messages[-1]
    calls = {c["id"] for m in sent for c in m.get("tool_calls") or ()}
    results = {m["tool_call_id"] for m in sent if m["role"] == "tool"}
    assert calls == results  # every call with its result, no orphan result
    assert "c5" in calls  # the step in flight
    assert "c0" not in calls  # the oldest went first
    assert sent[0]["content"] == "tools allowed"
    assert sent[-3]["content"].startswith("question 5")
