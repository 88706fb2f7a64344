"""Embedders (LangChain, LlamaIndex or a callable) and the numpy nearest-neighbour search."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np

from aipowertools.core.errors import ConfigurationError

Vector = Sequence[float]


class Embedder:
    """One interface over a LangChain ``Embeddings``, a LlamaIndex ``BaseEmbedding`` or a callable.

    A callable takes the text and returns its vector; an ``async def`` callable works in
    async code (and is run to completion in sync code).
    """

    def __init__(self, source: Any) -> None:
        self.source = source
        sync: Callable[[str], Vector] | None = None
        asyn: Callable[[str], Awaitable[Vector]] | None = None
        if hasattr(source, "embed_query"):  # LangChain Embeddings
            sync = source.embed_query
            asyn = getattr(source, "aembed_query", None)
        elif hasattr(source, "get_query_embedding"):  # LlamaIndex BaseEmbedding
            sync = source.get_query_embedding
            asyn = getattr(source, "aget_query_embedding", None)
        elif inspect.iscoroutinefunction(source) or inspect.iscoroutinefunction(
            getattr(source, "__call__", None)  # noqa: B004 - an object with async __call__
        ):
            asyn = source
        elif callable(source):
            sync = source
        else:
            raise ConfigurationError(
                f"semantic must be a LangChain Embeddings, a LlamaIndex BaseEmbedding or a "
                f"callable text -> vector, got {type(source).__name__}"
            )
        self._sync = sync
        self._async = asyn

    def embed(self, text: str) -> np.ndarray:
        """The unit-length float32 embedding of ``text``."""
        if self._sync is not None:
            return unit(self._sync(text))
        assert self._async is not None
        return unit(asyncio.run(_await(self._async(text))))

    async def aembed(self, text: str) -> np.ndarray:
        """Async :meth:`embed`."""
        if self._async is not None:
            return unit(await self._async(text))
        assert self._sync is not None
        return unit(await asyncio.to_thread(self._sync, text))


async def _await(value: Awaitable[Vector]) -> Vector:
    return await value


def unit(vector: Vector) -> np.ndarray:
    """``vector`` as float32 scaled to length 1 (a zero vector stays zero)."""
    array = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(array))
    return array / norm if norm > 0 else array


def nearest(query: np.ndarray, stored: list[tuple[str, bytes]]) -> tuple[str, float] | None:
    """The stored key most similar (cosine) to ``query``, with its similarity."""
    keys: list[str] = []
    rows: list[np.ndarray] = []
    for key, blob in stored:
        row = np.frombuffer(blob, dtype=np.float32)
        if row.shape == query.shape:  # another embedder's vectors never match
            keys.append(key)
            rows.append(row)
    if not rows:
        return None
    scores = np.vstack(rows) @ query
    best = int(np.argmax(scores))
    return keys[best], float(scores[best])
