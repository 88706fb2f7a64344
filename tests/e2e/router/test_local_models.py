"""LocalModelManager against the simulator's Ollama and llama.cpp endpoints."""

from __future__ import annotations

import asyncio

import pytest

from aipowertools.core.errors import ConfigurationError
from aipowertools.router import LLMRouter, LocalModelManager
from aipowertools.testing import SimModel, Simulator

pytestmark = pytest.mark.filterwarnings(
    "ignore:Item .* is using the `ReadOnly` qualifier:UserWarning"
)


async def test_discovers_routes_and_forgets_servers() -> None:
    with Simulator(models=[SimModel("llama3", reply="local answer"), SimModel("qwen2")]) as sim:
        router = LLMRouter(monitor=False)
        manager = LocalModelManager(
            router,
            ollama_urls=[sim.base_url("ollama")],
            llamacpp_urls=[sim.url],
            interval_s=0.05,
            timeout_s=1.0,
        )
        added, removed = await manager.refresh()
        host = sim.url.split("//")[1]
        assert sorted(added) == sorted(
            [
                f"ollama/llama3:latest@{host}",
                f"ollama/qwen2:latest@{host}",
                f"llamacpp/llama3@{host}",
                f"llamacpp/qwen2@{host}",
            ]
        )
        assert removed == []
        assert all(d.local and d.input_cost_per_token == 0.0 for d in router.deployments)
        assert manager.servers == {sim.base_url("ollama"): True, sim.url: True}
        # A confidential request goes to a discovered local model, over the Ollama API.
        result = await router.route(
            task="secret", confidential=True, deployments=[f"ollama/llama3:latest@{host}"]
        )
        assert result.content == "local answer"
        assert result.provider == "ollama_chat"
        llama = await router.route(task="hi", deployments=[f"llamacpp/llama3@{host}"])
        assert llama.content == "local answer"
        # Background checks notice the server going away, then coming back.
        await manager.start()
        assert manager.running
        sim.down()
        for _ in range(100):
            await asyncio.sleep(0.02)
            if not router.deployments:
                break
        assert router.deployments == []
        assert manager.servers[sim.url] is False
        sim.up()
        for _ in range(100):
            await asyncio.sleep(0.02)
            if len(router.deployments) == 4:
                break
        assert len(router.deployments) == 4
        await manager.stop()
        assert not manager.running


async def test_keeps_deployments_it_did_not_add() -> None:
    with Simulator(models=[SimModel("llama3")]) as sim:
        from aipowertools.router import Deployment

        mine = Deployment(
            "openai/gpt-4o-mini", name="mine", input_cost_per_token=1e-7, output_cost_per_token=1e-7
        )
        router = LLMRouter([mine], monitor=False)
        async with LocalModelManager(
            router, ollama_urls=[sim.base_url("ollama")], interval_s=60
        ) as manager:
            assert {d.name for d in router.deployments} == {"mine", *manager.found}
            sim.down()
            await manager.refresh()
        assert [d.name for d in router.deployments] == ["mine"]


def test_bad_configuration() -> None:
    router = LLMRouter(monitor=False)
    with pytest.raises(ConfigurationError, match="ollama_urls"):
        LocalModelManager(router)
    with pytest.raises(ConfigurationError, match="> 0"):
        LocalModelManager(router, ollama_urls=["http://x"], interval_s=0)
