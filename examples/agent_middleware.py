"""LangChain create_agent with the suite's middleware: log, budget, resilience, routing.

Every model call of the agent is logged with its cost (AgentLogMiddleware), reserved and
settled against a budget (BudgetMiddleware), rate limited, retried and guarded by a breaker
(ResilienceMiddleware), and routed on its own (RouterMiddleware: the planning step to the
strong model, the summary of the tool's result to the cheap one). The simulator serves both
models and answers the strong one's first call with a 429, so the router fails that step over
to the cheap one.

Runs against the local provider simulator (no network, no keys):

    python examples/agent_middleware.py
"""

from __future__ import annotations

from typing import Any

from langchain.agents import create_agent
from langgraph.checkpoint.memory import InMemorySaver

from aipowertools.callbacks import StructuredLogger
from aipowertools.callbacks.langchain import AgentLogMiddleware, BudgetMiddleware
from aipowertools.core import CostTracker
from aipowertools.resilience import CircuitBreaker, RateLimiter, RetryPolicy
from aipowertools.resilience.langchain import ResilienceMiddleware
from aipowertools.router import Deployment, LLMRouter
from aipowertools.router.langchain import RouterChatModel, RouterMiddleware
from aipowertools.testing import Fault, SimModel, SimRequest, Simulator, ToolCall


def get_weather(city: str) -> str:
    """Current weather of a city."""
    return f"sunny and 24 C in {city}"


def reply(request: SimRequest) -> Any:
    """Call the tool first; answer once its result is in the conversation."""
    if request.messages[-1].get("role") != "tool":
        return ToolCall("get_weather", {"city": "Lisbon"})
    return "Lisbon is sunny, 24 C."


def hard_first(request: Any) -> float:
    """Planning (no tool result yet) is hard; summarising a tool result is easy."""
    return 0.1 if any(m.type == "tool" for m in request.messages) else 0.9


def main() -> None:
    models = [SimModel("cheap-model", reply=reply), SimModel("strong-model", reply=reply)]
    with Simulator(models=models) as sim:
        sim.fail_next("strong-model", 1, Fault("rate_limit", retry_after=0.05))

        def deployment(name: str, quality: float, price: float) -> Deployment:
            return Deployment(
                f"openai/{name}", name=name, api_base=sim.base_url("openai", model=name),
                api_key="sk-sim", local=False, supports_tools=True, quality=quality,
                input_cost_per_token=price, output_cost_per_token=4 * price,
            )  # fmt: skip

        router = LLMRouter(
            [deployment("cheap-model", 0.6, 1e-7), deployment("strong-model", 0.95, 5e-6)],
            catalog={},
            monitor=False,
        )
        tracker = CostTracker(budget_usd=1.0, store="memory://")
        logger = StructuredLogger("agent", store="memory://")
        agent = create_agent(
            RouterChatModel(router=router),
            [get_weather],
            middleware=[
                AgentLogMiddleware(logger),
                BudgetMiddleware(tracker),
                ResilienceMiddleware(
                    rate_limiter=RateLimiter(tokens_per_minute=100_000),
                    retry=RetryPolicy(max_attempts=3, base_delay=0.05),
                    circuit_breaker=CircuitBreaker("agent-model"),
                ),
                RouterMiddleware(router, complexity=hard_first),
            ],
            checkpointer=InMemorySaver(),
        )
        state = agent.invoke(
            {"messages": [{"role": "user", "content": "What is the weather in Lisbon?"}]},
            {"configurable": {"thread_id": "demo-thread"}},
        )
        print(f"answer: {state['messages'][-1].content}")
        for event in logger.query("agent_model_call"):
            print(
                f"step {event['step']}: {event['deployment']:<12} "
                f"{event['input_tokens']:>4} in / {event['output_tokens']:>3} out  "
                f"${event['cost_usd']:.6f}  thread={event['thread_id']}"
            )
        end = logger.query("agent_end")[0]
        print(f"agent run {end['agent_run_id']}: {end['model_calls']} model calls, "
              f"{end['tool_calls']} tool call, ${end['cost_usd']:.6f}")  # fmt: skip
        print(f"budget: ${tracker.spent_usd():.6f} spent of $1.00, "
              f"{len(tracker.records())} ledger records")  # fmt: skip
        print(f"provider saw: {[(r.model, r.status) for r in sim.requests]}")


if __name__ == "__main__":
    main()
