"""LlamaIndex: CachedLLM in front of any LLM, and RouterLLM with the router's cache.

Runs against the built-in simulator: no network, no keys. ``python examples/cache_llama_index.py``
"""

from __future__ import annotations

from llama_index.core.base.llms.types import ChatMessage
from llama_index.llms.openai import OpenAI

from aipowertools.cache import LLMCache
from aipowertools.cache.llama_index import CachedLLM
from aipowertools.router import Deployment, LLMRouter
from aipowertools.router.llama_index import RouterLLM
from aipowertools.testing import SimModel, Simulator


def main() -> None:
    with Simulator(models=[SimModel("gpt-4o-mini", reply="echo")]) as sim:
        print("1. CachedLLM around any LlamaIndex LLM:")
        llm = CachedLLM(
            OpenAI(model="gpt-4o-mini", api_key="sk-sim", api_base=sim.base_url("openai")),
            LLMCache("memory://", ttl=3600),
        )
        question = [ChatMessage(role="user", content="What is the capital of France?")]
        for _ in range(2):
            response = llm.chat(question)
            print(
                f"   {response.message.content!r} cache={response.additional_kwargs.get('cache')}"
            )
        print(f"   provider calls: {sim.stats().requests}")

        print("2. RouterLLM: the router answers from its cache before routing:")
        router = LLMRouter(
            [Deployment("openai/gpt-4o-mini", api_key="sk-sim", api_base=sim.base_url("openai"))],
            cache=LLMCache("memory://"), monitor=False,
        )  # fmt: skip
        routed = RouterLLM(router=router)
        for _ in range(2):
            response = routed.chat(question)
            print(f"   {response.message.content!r} cache={response.raw['cache']}")
        print(f"   provider calls: {sim.stats().requests}")


if __name__ == "__main__":
    main()
