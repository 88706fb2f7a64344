"""Cost, structured events and OpenTelemetry spans for a LangChain app.

Runs against the local provider simulator (no network, no keys): a prompt | ChatOpenAI chain
is invoked and streamed with CostCallbackHandler and LoggingCallbackHandler attached through
the run config; then a hard budget refuses a call before it reaches the provider.

    python examples/callbacks_langchain.py
"""

from __future__ import annotations

from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from aipowertools.callbacks import StructuredLogger
from aipowertools.callbacks.langchain import CostCallbackHandler, LoggingCallbackHandler
from aipowertools.core import CostTracker
from aipowertools.core.errors import BudgetExceededError
from aipowertools.testing import SimModel, Simulator


def main() -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))

    with Simulator(
        models=[SimModel("gpt-4o-mini", reply="Recursion is a function calling itself.")]
    ) as sim:
        model = ChatOpenAI(
            model="gpt-4o-mini",
            base_url=sim.base_url("openai"),
            api_key="sk-simulator",
            stream_usage=True,  # ask for usage on streams too (exact cost, not an estimate)
        )
        chain = ChatPromptTemplate.from_messages([("user", "Explain {topic} in one line")]) | model

        tracker = CostTracker(store="memory://")
        log = StructuredLogger("example.langchain", store="memory://")
        config = {
            "callbacks": [
                CostCallbackHandler(tracker),
                LoggingCallbackHandler(log, tracer_provider=provider),
            ],
            "metadata": {"user": "ann", "task": "explain"},
        }
        print("invoke:", chain.invoke({"topic": "recursion"}, config=config).content)
        streamed = "".join(
            str(c.content) for c in chain.stream({"topic": "streams"}, config=config)
        )
        print("stream:", streamed)

        records = list(tracker.records())
        stats = sim.stats()
        print(
            f"ledger: {len(records)} calls, {sum(r.input_tokens for r in records)} in / "
            f"{sum(r.output_tokens for r in records)} out tokens, ${tracker.total_usd():.6f}"
        )
        print(
            f"simulator saw: {stats.served} calls, {stats.prompt_tokens} in / "
            f"{stats.completion_tokens} out"
        )
        print("cost per user:", {u: f"${c:.6f}" for u, c in tracker.cost_per_user().items()})

        for event in log.query(event_type="chat_model_end"):
            print(
                f"event chat_model_end: {event['duration_ms']:.1f} ms, ttft={event['ttft_ms']}, "
                f"tokens={event['input_tokens']}+{event['output_tokens']}"
            )
        for span in spans.get_finished_spans():
            if span.name.startswith("chat "):
                tokens = span.attributes["gen_ai.usage.input_tokens"]
                parent = "yes" if span.parent else "no"
                print(f"span {span.name!r}: input_tokens={tokens}, parent={parent}")

        # A hard budget: the worst case of this call does not fit, so it never reaches the provider.
        strict = CostTracker(budget_usd=0.00001, store="memory://")
        before = sim.stats().requests
        try:
            model.invoke(
                "Write a long essay",
                max_tokens=4000,
                config={"callbacks": [CostCallbackHandler(strict)]},
            )
        except BudgetExceededError as exc:
            print("refused:", exc)
        print("provider calls during refusal:", sim.stats().requests - before)
        tracker.close()
        strict.close()
        log.close()


if __name__ == "__main__":
    main()
