"""Hedged requests: a slow answer is raced against a second deployment.

``Race`` sends to the best deployment and, if it has not answered after a delay, to the next
one too; the first answer wins and the loser is cancelled (its prompt tokens are still counted
in the cost).

``python examples/router_hedged_requests.py`` (simulator; no network, no keys)
"""

import asyncio

from aipowertools.router import Deployment, LLMRouter, Race
from aipowertools.testing import Fault, SimModel, Simulator


async def main() -> None:
    with Simulator(
        models=[
            SimModel("primary", reply="from primary", ttft_ms=20),
            SimModel("backup", reply="from backup", ttft_ms=20),
        ]
    ) as sim:
        # Every 4th call to the primary stalls for 2 s before its first token.
        sim.schedule(
            "primary",
            [Fault("slow_first_token", delay_s=2.0) if i % 4 == 0 else None for i in range(1, 12)],
        )
        deployments = [
            Deployment(
                f"openai/{name}",
                name=name,
                api_key="sk-sim",
                local=False,
                input_cost_per_token=1e-6,
                output_cost_per_token=4e-6,
                api_base=sim.base_url("openai", name),
            )
            for name in ("primary", "backup")
        ]
        router = LLMRouter(deployments, strategy=Race("fallback", hedge_after=0.15), monitor=False)
        await router.route(task="warm up", strategy="fallback")  # loads litellm; not timed
        for i in range(8):
            r = await router.route(task=f"question {i}")
            hedged = " (hedged, loser cancelled)" if len(r.attempts) > 1 else ""
            print(f"call {i}: {r.content!r} in {r.latency_ms:5.0f} ms, ${r.cost:.7f}{hedged}")


asyncio.run(main())
