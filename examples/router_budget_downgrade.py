"""Budget-aware downgrade: the quality floor relaxes as the monthly budget is spent.

The curve (``downgrade_factor``: 1.0 until half is spent, then down to 0.6 when all of it is)
moves hard questions from the strong model to a cheaper one instead of failing.

``python examples/router_budget_downgrade.py`` (simulator; no network, no keys)
"""

import asyncio

from aipowertools.core import CostTracker
from aipowertools.router import Deployment, LLMRouter, downgrade_factor
from aipowertools.testing import SimModel, Simulator


async def main() -> None:
    with Simulator(
        models=[SimModel("gpt-4o", reply="strong"), SimModel("mini", reply="cheap")]
    ) as sim:
        tracker = CostTracker(store="memory://")
        router = LLMRouter(
            [
                Deployment(
                    "openai/gpt-4o",
                    name="strong",
                    api_key="sk-sim",
                    local=False,
                    api_base=sim.base_url("openai", "gpt-4o"),
                    quality=0.9,
                ),
                Deployment(
                    "openai/gpt-4o-mini",
                    name="cheap",
                    api_key="sk-sim",
                    local=False,
                    api_base=sim.base_url("openai", "mini"),
                    quality=0.72,
                ),
            ],
            cost_tracker=tracker,
            budget_usd_per_month=10.0,
            monitor=False,
        )
        for spent in (0.0, 4.0, 6.0, 8.0, 9.5):
            if spent:
                tracker.record(
                    model="gpt-4o",
                    cost_usd=spent - tracker.total_usd(),
                    request_id=f"earlier-{spent}",
                )
            left, fraction = router.budget_status()  # re-read now (routing caches it 0.5 s)
            r = await router.route(task="hard question", complexity_score=0.8, max_tokens=200)
            print(
                f"spent {fraction:4.0%} of $10, ${left:.2f} left (floor x"
                f"{downgrade_factor(fraction):.2f}): floor {r.decision.quality_floor:.2f} "
                f"-> {r.deployment}"
            )


asyncio.run(main())
