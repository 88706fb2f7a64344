"""Privacy routing: requests tagged ``confidential`` only ever reach local deployments.

``python examples/router_privacy.py`` (simulator; no network, no keys)
"""

import asyncio

from aipowertools.router import Deployment, LLMRouter, NoDeploymentError
from aipowertools.testing import SimModel, Simulator


async def main() -> None:
    with Simulator(
        models=[SimModel("gpt-4o", reply="cloud answer"), SimModel("llama3", reply="local answer")]
    ) as sim:
        router = LLMRouter(
            [
                Deployment(
                    "openai/gpt-4o",
                    name="cloud-gpt-4o",
                    api_key="sk-sim",
                    local=False,
                    api_base=sim.base_url("openai", "gpt-4o"),
                ),
                Deployment(
                    "ollama_chat/llama3",
                    name="local-llama3",
                    api_base=sim.base_url("ollama", "llama3"),
                ),
            ],
            monitor=False,
        )
        public = await router.route(task="Explain TCP slow start.", required_quality=0.8)
        print(f"public request      -> {public.deployment}: {public.content}")
        private = await router.route(
            task="Summarise this patient record: ...", tags=["confidential"]
        )
        print(f"confidential request -> {private.deployment}: {private.content}")
        print(f"   why the cloud was skipped: {dict(private.decision.rejected)}")
        try:
            await router.route(task="Patient record ...", confidential=True, required_quality=0.9)
        except NoDeploymentError as exc:
            print(f"confidential + quality 0.9 -> refused, never sent to the cloud: {exc.rejected}")
        assert sim.stats().by_model["gpt-4o"].requests == 1


asyncio.run(main())
