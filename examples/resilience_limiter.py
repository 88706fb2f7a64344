"""Plain Python: priorities, fairness and statistics of the RateLimiter, plus @retry.

python examples/resilience_limiter.py
"""

from __future__ import annotations

import asyncio
import time

from aipowertools.core.errors import TransientProviderError
from aipowertools.resilience import Limit, RateLimiter, retry


async def main() -> None:
    # 20 requests per 200 ms: high priority jumps a queue of low-priority work.
    limiter = RateLimiter(limits=[Limit("requests", 20, 0.2)], aging_seconds=5)
    waits: dict[str, list[float]] = {"high": [], "low": []}

    async def request(priority: str, user: str) -> None:
        start = time.monotonic()
        await limiter.acquire("model", priority=priority, user=user)
        waits[priority].append(time.monotonic() - start)

    lows = [asyncio.create_task(request("low", f"user{i % 3}")) for i in range(200)]
    await asyncio.sleep(0.05)
    stats = limiter.get_stats()
    print(f"queued: {stats.queued}, estimated wait {stats.estimated_wait_seconds:.2f} s")
    highs = [asyncio.create_task(request("high", "vip")) for _ in range(20)]
    await asyncio.gather(*lows, *highs)
    for name, values in waits.items():
        values.sort()
        print(f"{name:>4}: n={len(values)} p95 wait {values[int(0.95 * len(values)) - 1]:.2f} s")

    calls = {"n": 0}

    @retry(max_attempts=4, base_delay=0.05, jitter="full")
    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise TransientProviderError("503 from the provider")
        return "ok"

    print(f"retry: {flaky()} after {calls['n']} attempts")


if __name__ == "__main__":
    asyncio.run(main())
