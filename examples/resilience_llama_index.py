"""LlamaIndex: ResilientLLM around an OpenAI LLM, and our limiter as its rate_limiter.

Runs against the local provider simulator (no network, no keys):

    python examples/resilience_llama_index.py
"""

from __future__ import annotations

import asyncio

from llama_index.core.llms import ChatMessage
from llama_index.llms.openai import OpenAI

from aipowertools.resilience import CircuitBreaker, RateLimiter, RetryEvent, RetryPolicy
from aipowertools.resilience.llama_index import LlamaRateLimiter, ResilientLLM
from aipowertools.testing import SimModel, Simulator


def on_retry(event: RetryEvent) -> None:
    print(
        f"  retry after attempt {event.attempt}: {event.kind.value}, sleeping {event.sleep:.2f} s"
    )


async def main() -> None:
    with Simulator(models=[SimModel("gpt-4o-mini", reply="Bonjour !")]) as sim:
        limiter = RateLimiter(requests_per_second=5, tokens_per_minute=50_000)
        llm = OpenAI(
            model="gpt-4o-mini",
            api_base=sim.base_url("openai"),
            api_key="sk-sim",
            max_retries=0,
            rate_limiter=LlamaRateLimiter(limiter, key="openai"),
        )
        resilient = ResilientLLM(
            llm,
            rate_limiter=limiter,
            limiter_key="gpt-4o-mini",
            tokens=500,
            retry=RetryPolicy(max_attempts=4, base_delay=0.05, on_retry=on_retry),
            circuit_breaker=CircuitBreaker("gpt-4o-mini"),
        )
        print("1. one 503, then an answer:")
        sim.fail_next("gpt-4o-mini", 1, "unavailable")
        reply = await resilient.achat([ChatMessage(role="user", content="Say hello in French")])
        print(f"  answer: {reply.message.content}")

        print("2. eight concurrent calls through a 5 requests/s limit:")
        loop = asyncio.get_running_loop()
        start = loop.time()
        replies = await asyncio.gather(*(resilient.acomplete(f"hello {i}") for i in range(8)))
        print(f"  {len(replies)} answers in {loop.time() - start:.2f} s")

        print("3. streaming:")
        print("  " + "".join(c.delta or "" for c in resilient.stream_complete("hello")))
        usage = limiter.get_stats("gpt-4o-mini").keys["gpt-4o-mini"].usage
        print(f"limiter usage (used, capacity): {usage}")


if __name__ == "__main__":
    asyncio.run(main())
