"""LlamaIndex: a FunctionAgent whose LLM is a ResilientLLM (function calling kept).

The simulator answers the agent's first model call with a 429 and its second with a 502; the
wrapper retries both, and the agent calls its tool and answers.

Runs against the local provider simulator (no network, no keys):

    python examples/llama_index_function_agent.py
"""

from __future__ import annotations

import asyncio

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.llms.openai import OpenAI

from aipowertools.resilience import CircuitBreaker, RateLimiter, RetryEvent, RetryPolicy
from aipowertools.resilience.llama_index import ResilientLLM
from aipowertools.testing import Fault, SimModel, Simulator, ToolCall


def get_weather(city: str) -> str:
    """Current weather of a city."""
    return f"sunny and 24 C in {city}"


def on_retry(event: RetryEvent) -> None:
    print(f"  retry after attempt {event.attempt}: {event.kind.value}")


async def main() -> None:
    script = [ToolCall("get_weather", {"city": "Lisbon"}), "Lisbon is sunny, 24 C."]
    with Simulator(models=[SimModel("gpt-4o-mini", reply=script)]) as sim:
        sim.schedule("gpt-4o-mini", [Fault("rate_limit", retry_after=0.2), None, "bad_gateway"])
        llm = ResilientLLM(
            OpenAI(
                model="gpt-4o-mini",
                api_base=sim.base_url("openai"),
                api_key="sk-sim",
                max_retries=0,
            ),
            rate_limiter=RateLimiter(requests_per_minute=600, tokens_per_minute=100_000),
            retry=RetryPolicy(max_attempts=4, base_delay=0.05, on_retry=on_retry),
            circuit_breaker=CircuitBreaker("gpt-4o-mini"),
        )
        print(f"function calling model: {llm.metadata.is_function_calling_model}")
        agent = FunctionAgent(tools=[get_weather], llm=llm, system_prompt="Use the tools.")
        response = await agent.run(user_msg="What is the weather in Lisbon?")
        for call in response.tool_calls:
            print(f"tool {call.tool_name}({call.tool_kwargs}) -> {call.tool_output.content}")
        print(f"answer: {response}")
        stats = sim.stats().by_model["gpt-4o-mini"]
        print(f"the provider saw {stats.requests} requests, {stats.served} answered")


if __name__ == "__main__":
    asyncio.run(main())
