"""Cost, events and spans for LlamaIndex with one line: ``instrument(tracker=..., logger=...)``.

Runs against the local provider simulator (no network, no keys): chat, stream_chat and a
query engine over a tiny vector index (MockEmbedding), all recorded into one ledger.

    python examples/callbacks_llama_index.py
"""

from __future__ import annotations

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import ChatMessage
from llama_index.llms.openai import OpenAI

from aipowertools.callbacks import StructuredLogger
from aipowertools.callbacks.llama_index import instrument
from aipowertools.core import CostTracker
from aipowertools.testing import SimModel, Simulator


def main() -> None:
    tracker = CostTracker(store="memory://")
    log = StructuredLogger("example.llama_index", store="memory://")
    handle = instrument(tracker=tracker, logger=log, user="ann")
    try:
        with Simulator(
            models=[SimModel("gpt-4o-mini", reply="Paris is the capital of France.")]
        ) as sim:
            llm = OpenAI(
                model="gpt-4o-mini",
                api_base=sim.base_url("openai"),
                api_key="sk-simulator",
                # usage on streams: LlamaIndex reads it from the last chunk's raw response
                additional_kwargs={"stream_options": {"include_usage": True}},
            )
            question = [ChatMessage(role="user", content="Capital of France?")]
            print("chat:", llm.chat(question).message.content)
            print("stream_chat:", "".join(r.delta or "" for r in llm.stream_chat(question)))

            index = VectorStoreIndex.from_documents(
                [
                    Document(text="Paris is the capital of France."),
                    Document(text="Rome is in Italy."),
                ],
                embed_model=MockEmbedding(embed_dim=8),
            )
            print(
                "query engine:",
                index.as_query_engine(llm=llm, similarity_top_k=1).query("Capital?"),
            )

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
            names = [e["event"] for e in log.query()]
            print("events:", sorted(set(names)))
    finally:
        handle.uninstrument()
        tracker.close()
        log.close()


if __name__ == "__main__":
    main()
