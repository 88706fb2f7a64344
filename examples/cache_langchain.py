"""LangChain: set_llm_cache(LangChainCache(...)) in front of any chat model.

Runs against the built-in simulator: no network, no keys. ``python examples/cache_langchain.py``
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from langchain_core.globals import set_llm_cache
from langchain_openai import ChatOpenAI

from aipowertools.cache import LLMCache
from aipowertools.cache.langchain import LangChainCache
from aipowertools.core import CostTracker
from aipowertools.testing import SimModel, Simulator


def main() -> None:
    with (
        Simulator(models=[SimModel("gpt-4o-mini", reply="echo")]) as sim,
        tempfile.TemporaryDirectory() as tmp,
    ):
        tracker = CostTracker(store="memory://")
        cache = LangChainCache(
            LLMCache(f"diskcache://{Path(tmp) / 'cache'}", ttl=3600, cost_tracker=tracker)
        )
        set_llm_cache(cache)  # or ChatOpenAI(cache=cache) for one model
        llm = ChatOpenAI(model="gpt-4o-mini", api_key="sk-sim", base_url=sim.base_url("openai"))
        for _ in range(3):
            reply = llm.invoke("What is the capital of France?")
            print(f"{reply.content!r}")
        stats = cache.cache.stats()
        print(f"provider calls: {sim.stats().requests}, cache hits: {stats.hits}")
        print(f"saved ${tracker.saved_usd():.8f} at gpt-4o-mini prices")
        set_llm_cache(None)


if __name__ == "__main__":
    main()
