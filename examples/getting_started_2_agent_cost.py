"""Getting started 2/3: what an agent costs, with the cost handler on the agent.

``CostCallbackHandler`` records every model call of the agent (tool-calling turns included)
into a ``CostTracker``; ``config["metadata"]`` attributes it to a user and a task.
Without ``OPENAI_API_KEY`` (and under ``nox -s examples``) it runs against the simulator.
``python examples/getting_started_2_agent_cost.py``
"""

import os
from contextlib import ExitStack
from typing import Any

from aipowertools.testing import SimModel, Simulator, ToolCall


def scripted(request: Any) -> Any:
    """The simulated model: call the tool once, then answer from its result."""
    if request.messages[-1].get("role") != "tool":
        return ToolCall("get_weather", {"city": "Paris"})
    return "It is 18 C and sunny in Paris."


with ExitStack() as stack:
    if os.environ.get("AIPOWERTOOLS_EXAMPLE") or not os.environ.get("OPENAI_API_KEY"):
        sim = stack.enter_context(Simulator(models=[SimModel("gpt-4o-mini", reply=scripted)]))
        os.environ.update(OPENAI_API_KEY="sk-sim", OPENAI_BASE_URL=sim.base_url("openai"))

    # --- paste from here -------------------------------------------------------------
    from langchain.agents import create_agent
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    from aipowertools.callbacks.langchain import CostCallbackHandler
    from aipowertools.core import CostTracker

    @tool
    def get_weather(city: str) -> str:
        """Current weather in a city."""
        return f"18 C and sunny in {city}"

    tracker = CostTracker(store="memory://")  # or the default: a SQLite ledger on disk
    agent = create_agent(ChatOpenAI(model="gpt-4o-mini", max_retries=0), tools=[get_weather])
    result = agent.invoke(
        {"messages": [("user", "What's the weather in Paris?")]},
        config={
            "callbacks": [CostCallbackHandler(tracker)],
            "metadata": {"user_id": "alice", "task": "weather"},
        },
    )
    print(result["messages"][-1].content)
    for row in tracker.records():
        print(f"  {row.model}: {row.input_tokens} in / {row.output_tokens} out, "
              f"${row.cost_usd:.6f} (user {row.user}, task {row.task})")  # fmt: skip
    print(f"total: ${tracker.total_usd():.6f}")
    # --- to here ---------------------------------------------------------------------
