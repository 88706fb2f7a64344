"""Getting started 3/3: the router as LlamaIndex's ``Settings.llm``.

Every LlamaIndex component that takes an LLM (chat engines, query engines, agents) then
routes through it. Without ``OPENAI_API_KEY`` (and under ``nox -s examples``) it runs
against the simulator. ``python examples/getting_started_3_llama_index.py``
"""

import os
from contextlib import ExitStack

from aipowertools.testing import SimModel, Simulator

with ExitStack() as stack:
    if os.environ.get("AIPOWERTOOLS_EXAMPLE") or not os.environ.get("OPENAI_API_KEY"):
        models = [SimModel("gpt-4o-mini", reply="Hello from LlamaIndex."), SimModel("gpt-4o")]
        sim = stack.enter_context(Simulator(models=models))
        os.environ.update(OPENAI_API_KEY="sk-sim", OPENAI_BASE_URL=sim.base_url("openai"))

    # --- paste from here -------------------------------------------------------------
    from llama_index.core import Settings
    from llama_index.core.llms import ChatMessage

    from aipowertools.router import LLMRouter
    from aipowertools.router.llama_index import RouterLLM

    Settings.llm = RouterLLM(router=LLMRouter(cloud_providers=["openai"]))
    response = Settings.llm.chat([ChatMessage(role="user", content="Say hello.")])
    print(response.message.content)
    print(f"  via {response.raw['deployment']}, ${response.raw['cost_usd']:.6f}")
    # --- to here ---------------------------------------------------------------------
