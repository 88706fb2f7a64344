"""The measured claim: pruning fits every conversation that can fit, on every curated model.

For each curated catalog model, 1,000 seeded conversations (random lengths, tool calls with
their results, pinned messages, system messages, large and small turns, random output
reservations) are pruned. An oracle written here, independent of the implementation, says
which messages must be kept and whether a fit is possible at all. The test asserts that:

* when a fit is possible, ``prune`` returns a request that fits the window with the reserved
  output (checked again on a sample with core's count of the whole list), keeping every
  system message, pinned message and the last user turn, with no tool call separated from
  its result;
* when no fit is possible, it raises ``ContextOverflowError`` saying how many tokens the kept
  messages need.

The counts are tallied and printed; the docs quote them.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from aipowertools.core import count_tokens, default_catalog
from aipowertools.prompts import ContextManager, ContextOverflowError

CONVERSATIONS = 1_000
RECOUNT_EVERY = 40
WORDS = [
    "router",
    "budget",
    "window",
    "token",
    "cache",
    "prompt",
    "history",
    "summary",
    "answer",
    "question",
    "tool",
    "weather",
    "paris",
    "invoice",
    "refund",
    "policy",
    "order",
    "status",
    "model",
    "latency",
    "python",
    "error",
    "retry",
    "context",
    "code",
    "function",
    "result",
    "customer",
    "account",
    "shipping",
    "delivery",
    "database",
    "query",
    "index",
    "vector",
]

_pool_rng = random.Random(1234)
# Texts from one word to a few thousand tokens; sizes are log-uniform.
POOL = [
    f"[t{i}] "
    + " ".join(_pool_rng.choice(WORDS) for _ in range(int(2 ** _pool_rng.uniform(0, 11.5))))
    for i in range(160)
]


def _conversation(rng: random.Random) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    serial = 0

    def text() -> str:
        return rng.choice(POOL)

    if rng.random() < 0.8:
        messages.append({"role": "system", "content": text()})
    for _ in range(rng.randint(0, 30)):
        roll = rng.random()
        if roll < 0.15:
            call_ids = [f"call_{serial + k}" for k in range(rng.randint(1, 3))]
            serial += len(call_ids)
            messages.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": cid,
                            "type": "function",
                            "function": {
                                "name": "lookup",
                                "arguments": f'{{"q": "{text()[:40]}"}}',
                            },
                        }
                        for cid in call_ids
                    ],
                }
            )
            messages += [
                {"role": "tool", "tool_call_id": cid, "content": text()} for cid in call_ids
            ]
        elif roll < 0.2:
            messages.append({"role": "system", "content": text()})
        else:
            role = "user" if roll < 0.6 else "assistant"
            message: dict[str, Any] = {"role": role, "content": text()}
            if rng.random() < 0.06:
                message["pinned"] = True
            messages.append(message)
    messages.append({"role": "user", "content": text()})
    if rng.random() < 0.2:  # an agent step in flight: a call and its result after the user turn
        cid = "call_tail"
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": cid, "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            }
        )
        messages.append({"role": "tool", "tool_call_id": cid, "content": text()})
    return messages


def _must_keep(messages: list[dict[str, Any]]) -> set[int]:
    """The oracle: what the policy promises to keep, with tool exchanges kept whole."""
    last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
    keep = {i for i, m in enumerate(messages) if m["role"] == "system" or m.get("pinned")}
    keep.add(last_user)
    if messages[-1]["role"] == "tool":  # the in-flight exchange after the user turn
        keep |= {len(messages) - 2, len(messages) - 1}
    return keep


def _exchanges(messages: list[dict[str, Any]]) -> dict[str, int]:
    return {call["id"]: i for i, m in enumerate(messages) for call in m.get("tool_calls") or ()}


@pytest.mark.parametrize("model", default_catalog().ids())
def test_prune_fits_whenever_a_fit_exists(model: str) -> None:
    manager = ContextManager()
    info = default_catalog().get(model)
    assert info.context_window is not None
    rng = random.Random(f"claim-{model}")
    tally: Counter[str] = Counter()
    for n in range(CONVERSATIONS):
        messages = _conversation(rng)
        window = info.context_window
        # the default reservation, or one that leaves 0..12,000 tokens whatever the window
        default = rng.random() < 0.25
        max_output = None if default else max(0, window - rng.randint(0, 12_000))
        _, reserve = manager._reserve(model, max_output)
        room = window - reserve
        sizes = [manager.estimate_tokens([m], model).tokens - 3 for m in messages]
        keep = _must_keep(messages)
        calls = _exchanges(messages)
        # the oracle's closure: a kept call keeps its results and a kept result its call
        for i, m in enumerate(messages):
            if m["role"] == "tool" and (i in keep or calls[m["tool_call_id"]] in keep):
                keep |= {i, calls[m["tool_call_id"]]}
        for i, m in enumerate(messages):
            if m.get("tool_calls") and i in keep:
                keep |= {
                    j
                    for j, r in enumerate(messages)
                    if r.get("tool_call_id") in {c["id"] for c in m["tool_calls"]}
                }
        needed = 3 + sum(sizes[i] for i in keep)
        if needed > room:
            with pytest.raises(ContextOverflowError) as caught:
                manager.prune(messages, model, max_output=max_output)
            assert caught.value.needed_tokens == needed
            assert caught.value.available_tokens == room
            assert f"need {needed} tokens" in str(caught.value)
            tally["no fit, said why"] += 1
            continue
        result = manager.prune(messages, model, max_output=max_output)
        assert result.tokens <= room, (n, result.tokens, room)
        assert not keep.intersection(result.dropped), n
        expected = [
            {k: v for k, v in m.items() if k != "pinned"}
            for i, m in enumerate(messages)
            if i not in result.dropped
        ]
        assert result.messages == expected, n
        ids = {c["id"] for m in result.messages for c in m.get("tool_calls") or ()}
        answered = {m["tool_call_id"] for m in result.messages if m["role"] == "tool"}
        assert ids == answered, n  # no call without its result, no result without its call
        if n % RECOUNT_EVERY == 0:  # the whole list, counted by core in one go
            assert count_tokens(result.messages, model).tokens == result.tokens
        tally["pruned to fit" if result.pruned else "fitted as is"] += 1
    assert sum(tally.values()) == CONVERSATIONS
    assert tally["pruned to fit"] > 100, tally
    assert tally["no fit, said why"] > 20, tally
    print(f"{model}: {dict(tally)}")
