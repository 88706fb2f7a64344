"""The router with a response cache: hits answer before routing, budget and rate limits.

Runs against the built-in simulator: no network, no keys. ``python examples/cache_router.py``
"""

from __future__ import annotations

import asyncio

from aipowertools.cache import LLMCache
from aipowertools.core import CostTracker
from aipowertools.router import Deployment, LLMRouter
from aipowertools.router.langchain import RouterChatModel
from aipowertools.testing import SimModel, Simulator


async def main() -> None:
    with Simulator(models=[SimModel("gpt-4o-mini", reply="echo")]) as sim:
        tracker = CostTracker(budget_usd=10.0, store="memory://")
        router = LLMRouter(
            [Deployment("openai/gpt-4o-mini", api_key="sk-sim", api_base=sim.base_url("openai"))],
            cost_tracker=tracker, cache=LLMCache("memory://", ttl=3600), monitor=False,
        )  # fmt: skip
        for _ in range(3):
            result = await router.route("What is the capital of France?", temperature=0)
            print(f"{result.content!r}: cache={result.cache}, ${result.cost:.8f}")
        chunks = [c.content async for c in router.stream("What is the capital of France?",
                                                        temperature=0)]  # fmt: skip
        print(f"streamed from the cache in {len(chunks)} chunks")
        llm = RouterChatModel(router=router)
        message = await llm.ainvoke("What is the capital of France?", temperature=0)
        print(f"RouterChatModel response_metadata['cache'] = {message.response_metadata['cache']}")
        print(f"provider calls: {sim.stats().requests}")
        print(f"ledger: spent ${tracker.total_usd():.8f}, saved ${tracker.saved_usd():.8f}")


if __name__ == "__main__":
    asyncio.run(main())
