"""A shared store goes down: the rate limiter, the circuit breaker and the router keep going.

The limiter and the breaker point at a Redis that does not answer (a closed port). Both fall
back to this process's state with the same limits and thresholds and would go back to Redis
within a second of it answering; a router whose limiter store is down keeps every deployment
healthy. Runs against the provider simulator.

python examples/resilience_store_outage.py
"""

from __future__ import annotations

import asyncio
import logging
import socket

from aipowertools.resilience import CircuitBreaker, RateLimiter
from aipowertools.router import Deployment, LLMRouter
from aipowertools.testing import SimModel, Simulator


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    down = f"redis://127.0.0.1:{closed_port()}/0"

    limiter = RateLimiter(requests_per_minute=3, store=down)
    admitted = [await limiter.atry_acquire("model") is not None for _ in range(5)]
    print(f"limiter with its store down: admitted {admitted.count(True)} of 5 (limit 3/min)")

    breaker = CircuitBreaker("search-api", failure_threshold=2, store=down)

    async def search() -> str:
        return "results"

    answers = [await breaker.acall(search) for _ in range(3)]
    print(f"breaker with its store down: {len(answers)} of 3 calls went through")

    with Simulator(models=[SimModel("gpt-4o-mini", reply="fine")]) as sim:
        router = LLMRouter(
            [Deployment("openai/gpt-4o-mini", name="a", api_key="sk-sim", local=False, rpm=100,
                        api_base=sim.base_url("openai", "gpt-4o-mini"))],
            monitor=False, rate_limit_store=down,
        )  # fmt: skip
        results = [await router.route(task="hello") for _ in range(5)]
        state = router.engine.states["a"]
        print(
            f"router with its limiter store down: {len(results)} of 5 answered, "
            f"deployment failures counted: {state.failures}"
        )


if __name__ == "__main__":
    asyncio.run(main())
