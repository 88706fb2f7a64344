"""LlamaIndex: PromptCompressor dedupes and compresses retrieved nodes to a token budget."""

from __future__ import annotations

import pytest
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from aipowertools.core import count_tokens
from aipowertools.core.errors import UnknownModelError
from aipowertools.prompts.llama_index import PromptCompressor

FACTS = [
    "Refunds take 14 days to reach the original card.",
    "Shipping is free for orders above 80 dollars inside the European Union.",
    "The Lyon warehouse ships every order within two working days.",
    "Gift cards can never be exchanged for cash at any store.",
    "Support answers tickets between 9 and 17 from Monday to Friday.",
]


def overlapping_nodes() -> list[NodeWithScore]:
    chunks = [" ".join(FACTS[i : i + 3]) for i in range(3)]  # each repeats the last two
    return [NodeWithScore(node=TextNode(text=c), score=1.0 - i / 10) for i, c in enumerate(chunks)]


def test_overlapping_chunks_are_deduped_losslessly() -> None:
    nodes = overlapping_nodes()
    out = PromptCompressor(model="gpt-4o-mini").postprocess_nodes(nodes)
    joined = " ".join(n.node.get_content() for n in out)
    for fact in FACTS:
        assert joined.count(fact) == 1
    assert out[0] is nodes[0]  # unchanged nodes pass through as they are
    assert nodes[1].node.get_content().startswith(FACTS[1])  # the retriever's node is intact
    assert [n.score for n in out] == [1.0, 0.9, 0.8]
    duplicate = [
        nodes[0],
        NodeWithScore(node=TextNode(text=nodes[0].node.get_content()), score=0.5),
    ]
    assert len(PromptCompressor(model="gpt-4o-mini").postprocess_nodes(duplicate)) == 1
    assert PromptCompressor(model="gpt-4o-mini").postprocess_nodes([]) == []


def test_compression_meets_the_budget_and_prefers_what_the_query_needs() -> None:
    nodes = overlapping_nodes()
    compressor = PromptCompressor(model="gpt-4o-mini", max_tokens=30)
    out = compressor.postprocess_nodes(nodes, QueryBundle("how long do refunds take?"))
    texts = [n.node.get_content() for n in out]
    assert sum(count_tokens(t, "gpt-4o-mini").tokens for t in texts) <= 30
    assert any(FACTS[0] in t for t in texts)
    tiny = PromptCompressor(model="gpt-4o-mini", max_tokens=1).postprocess_nodes(nodes)
    assert tiny == []
    plenty = PromptCompressor(model="gpt-4o-mini", max_tokens=10_000).postprocess_nodes(nodes)
    assert len(plenty) == 3


def test_unknown_model_is_the_catalogs_error() -> None:
    with pytest.raises(UnknownModelError):
        PromptCompressor(model="gpt-4o-mimi").postprocess_nodes(overlapping_nodes())
    assert PromptCompressor.class_name() == "AIPowerToolsPromptCompressor"
