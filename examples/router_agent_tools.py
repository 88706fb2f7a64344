"""An agent with two tools on ``RouterChatModel`` (``langchain.agents.create_agent``).

Only tool-capable deployments qualify for the tool-calling turns; the answer to the tool
results is routed like any other call. ``python examples/router_agent_tools.py`` (simulator)
"""

from typing import Any

from langchain.agents import create_agent
from langchain_core.tools import tool

from aipowertools.router import Deployment, LLMRouter
from aipowertools.router.langchain import RouterChatModel
from aipowertools.testing import SimModel, Simulator, ToolCall


@tool
def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"18 C and sunny in {city}"


@tool
def get_time(city: str) -> str:
    """Local time in a city."""
    return f"14:05 in {city}"


def scripted(request: Any) -> Any:
    """Simulated model: call both tools, then answer from their results."""
    results = [m["content"] for m in request.messages if m["role"] == "tool"]
    if request.tools and not results:
        return [ToolCall("get_weather", {"city": "Paris"}), ToolCall("get_time", {"city": "Paris"})]
    return "In Paris: " + "; ".join(results)


with Simulator(models=[SimModel("gpt-4o-mini", reply=scripted)]) as sim:
    router = LLMRouter(
        [
            Deployment(
                "openai/gpt-4o-mini",
                name="mini",
                api_key="sk-sim",
                local=False,
                api_base=sim.base_url("openai", "gpt-4o-mini"),
            ),
            Deployment(
                "openai/no-tools",
                name="no-tools",
                api_key="sk-sim",
                local=False,
                api_base=sim.base_url("openai", "gpt-4o-mini"),
                supports_tools=False,
                input_cost_per_token=0.0,
                output_cost_per_token=0.0,
                quality=0.9,
            ),
        ],
        monitor=False,
    )
    agent = create_agent(RouterChatModel(router=router), tools=[get_weather, get_time])
    state = agent.invoke({"messages": [("user", "Weather and time in Paris?")]})
    for message in state["messages"]:
        meta = message.response_metadata
        calls = [c["name"] for c in getattr(message, "tool_calls", [])]
        who = f" [{meta['deployment']}, ${meta['cost_usd']:.6f}]" if "deployment" in meta else ""
        print(f"{message.type:>5}: {message.content or calls}{who}")
