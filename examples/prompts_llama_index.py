"""LlamaIndex: dedupe and compress retrieved nodes to a token budget before synthesis.

Runs against the local provider simulator (no network, no keys):

    python examples/prompts_llama_index.py
"""

from __future__ import annotations

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.node_parser import TokenTextSplitter
from llama_index.llms.openai import OpenAI

from aipowertools.prompts.llama_index import PromptCompressor
from aipowertools.testing import SimModel, Simulator

TEXT = " ".join(
    [
        "Refunds take 14 days to reach the original card.",
        "Shipping is free for orders above 80 dollars inside the European Union.",
        "The Lyon warehouse ships every order within two working days.",
        "Gift cards can never be exchanged for cash at any store.",
        "Support answers tickets between 9 and 17 from Monday to Friday.",
    ]
    * 3
)


def main() -> None:
    with Simulator(models=[SimModel("gpt-4o-mini", reply="Refunds take 14 days.")]) as sim:
        llm = OpenAI(model="gpt-4o-mini", api_base=sim.base_url(), api_key="sk-sim", max_retries=0)
        splitter = TokenTextSplitter(chunk_size=40, chunk_overlap=10)
        index = VectorStoreIndex.from_documents(
            [Document(text=TEXT)],
            embed_model=MockEmbedding(embed_dim=8),
            transformations=[splitter],
        )
        compressor = PromptCompressor(model="gpt-4o-mini", max_tokens=60)
        engine = index.as_query_engine(
            llm=llm, similarity_top_k=6, node_postprocessors=[compressor]
        )
        response = engine.query("How long do refunds take?")
        retrieved = index.as_retriever(similarity_top_k=6).retrieve("How long do refunds take?")
        before = sum(len(n.node.get_content()) for n in retrieved)
        after = sum(len(n.node.get_content()) for n in response.source_nodes)
        print(response.response)
        kept = len(response.source_nodes)
        print(f"{len(retrieved)} nodes, {before} chars -> {kept} nodes, {after} chars")


if __name__ == "__main__":
    main()
