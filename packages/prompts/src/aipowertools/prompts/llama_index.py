"""LlamaIndex adapter: a node postprocessor that dedupes and compresses retrieved nodes.

Example:
    >>> from llama_index.core.schema import NodeWithScore, TextNode
    >>> from aipowertools.prompts.llama_index import PromptCompressor
    >>> text = "Refunds take 14 days to reach the card. Shipping is free above 80 dollars."
    >>> nodes = [NodeWithScore(node=TextNode(text=text), score=s) for s in (0.9, 0.8)]
    >>> kept = PromptCompressor(model="gpt-4o-mini").postprocess_nodes(nodes)
    >>> len(kept)  # the second node repeated the first
    1

Use it as ``index.as_query_engine(node_postprocessors=[PromptCompressor(...)])``.
"""

from __future__ import annotations

import re

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from aipowertools.prompts._compress import Document, drop_to_target, score_sentences
from aipowertools.prompts._context import ContextManager
from aipowertools.prompts._lossless import NEAR_DUPLICATE, lossless

__all__ = ["PromptCompressor"]

_SEPARATOR = "\n\n\ue002{}\ue002\n\n"
_SPLIT = re.compile(r"\s*\ue002(\d+)\ue002\s*")


class PromptCompressor(BaseNodePostprocessor):
    """Dedupes retrieved nodes losslessly, then compresses them to ``max_tokens`` if given.

    Overlapping chunks repeat sentences; the first occurrence (in retrieval order, best
    first) is kept. Sentences are then dropped by the compressor's documented score
    (relevance to the query first) until the nodes' text fits ``max_tokens`` by ``model``'s
    counter; when sentences are not enough, the lowest-scored nodes go. Nodes left empty
    are removed. The retriever's nodes are not modified: changed ones are copies.
    """

    model: str = Field(description="Catalog model whose tokenizer counts the budget.")
    max_tokens: int | None = Field(default=None, description="Token budget for all nodes.")
    near_duplicate: float = Field(default=NEAR_DUPLICATE, gt=0, le=1)
    _manager: ContextManager = PrivateAttr(default_factory=ContextManager)

    @classmethod
    def class_name(cls) -> str:
        """LlamaIndex's serialisation name."""
        return "AIPowerToolsPromptCompressor"

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if not nodes:
            return []
        self._manager.estimate_tokens("", self.model)  # an unknown model fails here
        texts = [n.node.get_content(metadata_mode=MetadataMode.NONE) for n in nodes]
        joined = "".join(_SEPARATOR.format(i) + text for i, text in enumerate(texts))
        cleaned = lossless(joined, near=self.near_duplicate)
        pieces = _SPLIT.split(cleaned)
        new_texts = list(texts)
        for i in range(1, len(pieces) - 1, 2):
            new_texts[int(pieces[i])] = pieces[i + 1].strip()
        if self.max_tokens is not None:
            new_texts = self._compress(new_texts, query_bundle)
        out: list[NodeWithScore] = []
        for node, old, new in zip(nodes, texts, new_texts, strict=True):
            if not new.strip():
                continue
            if new == old:
                out.append(node)
                continue
            copy = node.node.model_copy()
            copy.set_content(new)
            out.append(NodeWithScore(node=copy, score=node.score))
        return out

    def _count(self, texts: list[str]) -> int:
        return sum(self._manager.estimate_tokens(t, self.model).tokens for t in texts if t)

    def _compress(self, texts: list[str], query_bundle: QueryBundle | None) -> list[str]:
        budget = self.max_tokens or 0
        documents = [Document(t) for t in texts]
        query = query_bundle.query_str if query_bundle is not None else None
        sentences = score_sentences(documents, query)
        result, tokens, _ = drop_to_target(documents, sentences, self._count, budget)
        while tokens > budget and any(result):
            last = max(i for i, t in enumerate(result) if t)  # the lowest-ranked node
            result[last] = ""
            tokens = self._count(result)
        return result
