"""``Store``: LangGraph long-term memory (``BaseStore``) on the sessions' stores."""

from __future__ import annotations

import array
import math
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
)
from langgraph.store.base.embed import ensure_embeddings, get_text_at_path, tokenize_path

from aipowertools.core.errors import ConfigurationError
from aipowertools.sessions._codec import Codec
from aipowertools.sessions._graph_engines import GraphEngine, open_graph_engine
from aipowertools.sessions._graph_sql import StoredItem
from aipowertools.sessions._seal import Sealer, frame, unframe

_SEP = "\x1f"  # between namespace labels in a stored prefix
_FORBIDDEN = ("\x1e", "\x1f")


def _prefix(namespace: tuple[str, ...]) -> str:
    for label in namespace:
        if any(c in label for c in _FORBIDDEN):
            raise InvalidNamespaceError(
                f"namespace label {label!r} holds a control character this store reserves"
            )
    return _SEP.join(namespace)


def _namespace(prefix: str) -> tuple[str, ...]:
    return tuple(prefix.split(_SEP)) if prefix else ()


def _when(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def _compare(value: Any, wanted: Any) -> bool:
    """LangGraph's filter semantics: a value, or ``{"$op": value}`` comparisons."""
    if isinstance(wanted, dict) and wanted and all(k.startswith("$") for k in wanted):
        return all(_apply(value, op, arg) for op, arg in wanted.items())
    return bool(value == wanted)


def _apply(value: Any, op: str, arg: Any) -> bool:
    try:
        if op == "$eq":
            return bool(value == arg)
        if op == "$ne":
            return bool(value != arg)
        if op == "$gt":
            return bool(value > arg)
        if op == "$gte":
            return bool(value >= arg)
        if op == "$lt":
            return bool(value < arg)
        if op == "$lte":
            return bool(value <= arg)
    except TypeError:  # None or mismatched types never match a comparison
        return False
    raise ConfigurationError(f"filter operator {op!r} is not one of $eq $ne $gt $gte $lt $lte")


def _lookup(value: dict[str, Any], dotted: str) -> Any:
    if dotted in value:
        return value[dotted]
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)  # type: ignore[assignment]
    return value


def _cosine(query: Sequence[float], vectors: Sequence[Sequence[float]]) -> list[float]:
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is nearly always there
        qn = math.sqrt(sum(q * q for q in query)) or 1.0
        out = []
        for v in vectors:
            vn = math.sqrt(sum(x * x for x in v)) or 1.0
            out.append(sum(q * x for q, x in zip(query, v, strict=False)) / (qn * vn))
        return out
    if not vectors:
        return []
    q = np.asarray(query, dtype=np.float32)
    m = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(m, axis=1) * (np.linalg.norm(q) or 1.0)
    norms[norms == 0] = 1.0
    return [float(x) for x in (m @ q) / norms]


def _matches(condition: MatchCondition, ns: tuple[str, ...]) -> bool:
    path = condition.path
    if len(path) > len(ns):
        return False
    part = ns[: len(path)] if condition.match_type == "prefix" else ns[len(ns) - len(path) :]
    return all(p == "*" or p == n for p, n in zip(path, part, strict=True))


class Store(BaseStore):
    """LangGraph ``BaseStore`` (long-term memory) on the embedded store, Redis or PostgreSQL.

    Items are JSON documents in hierarchical namespaces, stored with the sessions
    :class:`~aipowertools.sessions.Codec` (so compression and encryption apply). ``get``,
    ``put``, ``delete``, ``search`` (filters with ``$eq $ne $gt $gte $lt $lte``, ``limit``,
    ``offset``), ``list_namespaces`` (prefix/suffix with ``*``, ``max_depth``) and their async
    forms work on every backend, with TTLs in minutes as LangGraph defines them.

    Semantic search: with ``index={"dims": ..., "embed": ...}``, ``put`` embeds the indexed
    fields and stores the vectors (encrypted with the item); ``search(query=...)`` ranks the
    items of the namespace prefix by cosine similarity, computed here with numpy over the
    candidates the filter leaves. That is exact (no approximate index) and costs O(items under
    the prefix) per query on every backend, Redis and PostgreSQL included: neither server
    computes vectors here (plain Redis has no vector type; pgvector is not required). Keep
    searched namespaces to thousands of items, or use a vector database for millions.

    Args:
        store: a store URL, as for :class:`CheckpointSaver`.
        codec: the sessions codec (compression, encryption, type registry) for item values.
        index: LangGraph ``IndexConfig`` (``dims``, ``embed``, ``fields``) to enable
            semantic search.
        ttl: LangGraph ``TTLConfig`` (``default_ttl`` minutes, ``refresh_on_read``).
        prefix: table / key prefix.
        clock: time source (tests inject one).

    Example:
        >>> store = Store("memory://docs")
        >>> store.put(("users", "u1"), "prefs", {"tone": "brief"})
        >>> store.get(("users", "u1"), "prefs").value
        {'tone': 'brief'}
    """

    supports_ttl = True

    def __init__(
        self,
        store: str | None = None,
        *,
        codec: Codec | None = None,
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
        prefix: str = "aipt_lg",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine: GraphEngine = open_graph_engine(store, prefix)
        self._plans = self._engine.plans
        self._codec = codec or Codec()
        self._sealer = Sealer(self._codec)
        self._clock = clock
        self.ttl_config = ttl
        self.index_config = index
        self.embeddings = None
        self._fields: list[tuple[str, str | list[str]]] = []
        if index is not None:
            if "dims" not in index or "embed" not in index:
                raise ConfigurationError("index needs 'dims' and 'embed' (see IndexConfig)")
            self.embeddings = ensure_embeddings(index["embed"])
            self._fields = [
                (f, f if f == "$" else tokenize_path(f)) for f in (index.get("fields") or ["$"])
            ]

    # -- encoding -----------------------------------------------------------------------------

    def _texts(self, op: PutOp) -> list[str]:
        if self.embeddings is None or op.index is False or op.value is None:
            return []
        fields: list[tuple[str, str | list[str]]] = (
            self._fields if op.index is None else [(f, tokenize_path(f)) for f in op.index]
        )
        texts: list[str] = []
        for _, tokens in fields:
            texts += get_text_at_path(op.value, tokens)
        return texts

    def _record(self, value: Any, vectors: Sequence[Sequence[float]]) -> bytes:
        packed = array.array("f", [x for v in vectors for x in v]).tobytes()
        return frame(
            [self._codec.encode(dict(value)), self._sealer.seal(packed) if packed else b""]
        )

    def _decode(self, stored: StoredItem) -> tuple[Item, list[list[float]]]:
        value, packed = unframe(stored.record, "store item")
        vectors: list[list[float]] = []
        if packed:
            flat = array.array("f")
            flat.frombytes(self._sealer.unseal(packed, "store item vectors"))
            dims = int(self.index_config["dims"]) if self.index_config else len(flat)
            vectors = [list(flat[i : i + dims]) for i in range(0, len(flat), dims)]
        item = Item(
            value=self._codec.decode(value, "store item"),
            key=stored.key,
            namespace=_namespace(stored.prefix),
            created_at=_when(stored.created_at),
            updated_at=_when(stored.updated_at),
        )
        return item, vectors

    def _refresh(self, wanted: bool) -> bool:
        default = (self.ttl_config or {}).get("refresh_on_read", True)
        return bool(wanted and default)

    @staticmethod
    def _ttl_seconds(minutes: float | None) -> float | None:
        if minutes is None:
            return None
        if not minutes > 0:
            raise ConfigurationError(f"ttl={minutes!r} must be a positive number of minutes")
        return float(minutes) * 60.0

    # -- operations (each a list of engine plans, run by batch / abatch) ----------------------

    def _search(
        self, op: SearchOp, found: list[StoredItem], query_vector: list[float] | None
    ) -> list[SearchItem]:
        candidates = []
        for stored in found:
            item, vectors = self._decode(stored)
            if op.filter and not all(
                _compare(_lookup(item.value, k), v) for k, v in op.filter.items()
            ):
                continue
            candidates.append((item, vectors))
        if query_vector is None:
            window = candidates[op.offset : op.offset + op.limit]
            return [self._search_item(i, None) for i, _ in window]
        scored: list[tuple[float, Item]] = []
        scoreless: list[Item] = []
        for item, vectors in candidates:
            if vectors:
                scored.append((max(_cosine(query_vector, vectors)), item))
            else:
                scoreless.append(item)
        scored.sort(key=lambda s: s[0], reverse=True)
        ranked: list[tuple[float | None, Item]] = [(s, i) for s, i in scored]
        ranked += [(None, i) for i in scoreless]
        return [self._search_item(i, s) for s, i in ranked[op.offset : op.offset + op.limit]]

    @staticmethod
    def _search_item(item: Item, score: float | None) -> SearchItem:
        return SearchItem(
            namespace=item.namespace,
            key=item.key,
            value=item.value,
            created_at=item.created_at,
            updated_at=item.updated_at,
            score=score,
        )

    @staticmethod
    def _list_namespaces(op: ListNamespacesOp, prefixes: list[str]) -> list[tuple[str, ...]]:
        spaces = [_namespace(p) for p in prefixes]
        if op.match_conditions:
            spaces = [s for s in spaces if all(_matches(c, s) for c in op.match_conditions)]
        if op.max_depth is not None:
            spaces = sorted({s[: op.max_depth] for s in spaces})
        else:
            spaces = sorted(set(spaces))
        return spaces[op.offset : op.offset + op.limit]

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run ``ops`` in order (each op sees the effect of the ones before it)."""
        results: list[Result] = []
        run = self._engine.run
        for op in ops:
            now = self._clock()
            if isinstance(op, GetOp):
                found = run(self._plans.item_get(_prefix(op.namespace), op.key, now))
                if found is not None and found.ttl is not None and self._refresh(op.refresh_ttl):
                    run(self._plans.item_touch([(found.prefix, found.key)], now))
                results.append(None if found is None else self._decode(found)[0])
            elif isinstance(op, SearchOp):
                rows = run(self._plans.item_scan(_prefix(op.namespace_prefix), now))
                vector = None
                if op.query and self.embeddings is not None:
                    vector = self.embeddings.embed_query(op.query)
                hits = self._search(op, rows, vector)
                self._touch_hits(op, rows, hits, now, run)
                results.append(hits)
            elif isinstance(op, ListNamespacesOp):
                results.append(self._list_namespaces(op, run(self._plans.item_prefixes(now))))
            elif isinstance(op, PutOp):
                self._put(op, now, run, self._embed(op))
                results.append(None)
            else:
                raise ConfigurationError(f"unknown store operation {type(op).__name__}")
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Async :meth:`batch` (native async on PostgreSQL and Redis)."""
        results: list[Result] = []
        arun = self._engine.arun
        for op in ops:
            now = self._clock()
            if isinstance(op, GetOp):
                found = await arun(self._plans.item_get(_prefix(op.namespace), op.key, now))
                if found is not None and found.ttl is not None and self._refresh(op.refresh_ttl):
                    await arun(self._plans.item_touch([(found.prefix, found.key)], now))
                results.append(None if found is None else self._decode(found)[0])
            elif isinstance(op, SearchOp):
                rows = await arun(self._plans.item_scan(_prefix(op.namespace_prefix), now))
                vector = None
                if op.query and self.embeddings is not None:
                    vector = await self.embeddings.aembed_query(op.query)
                hits = self._search(op, rows, vector)
                keys = self._hit_keys(op, rows, hits)
                if keys:
                    await arun(self._plans.item_touch(keys, now))
                results.append(hits)
            elif isinstance(op, ListNamespacesOp):
                prefixes = await arun(self._plans.item_prefixes(now))
                results.append(self._list_namespaces(op, prefixes))
            elif isinstance(op, PutOp):
                texts = self._texts(op)
                vectors = await self.embeddings.aembed_documents(texts) if texts else []  # type: ignore[union-attr]
                prefix = _prefix(op.namespace)
                if op.value is None:
                    await arun(self._plans.item_delete(prefix, op.key))
                else:
                    record = self._record(op.value, vectors)
                    ttl = self._ttl_seconds(op.ttl)
                    await arun(self._plans.item_put(prefix, op.key, record, now, ttl))
                results.append(None)
            else:
                raise ConfigurationError(f"unknown store operation {type(op).__name__}")
        return results

    def _embed(self, op: PutOp) -> list[list[float]]:
        texts = self._texts(op)
        return self.embeddings.embed_documents(texts) if texts else []  # type: ignore[union-attr]

    def _put(self, op: PutOp, now: float, run: Any, vectors: list[list[float]]) -> None:
        prefix = _prefix(op.namespace)
        if op.value is None:
            run(self._plans.item_delete(prefix, op.key))
            return
        record = self._record(op.value, vectors)
        run(self._plans.item_put(prefix, op.key, record, now, self._ttl_seconds(op.ttl)))

    def _hit_keys(
        self, op: SearchOp, rows: list[StoredItem], hits: list[SearchItem]
    ) -> list[tuple[str, str]]:
        if not hits or not self._refresh(op.refresh_ttl):
            return []
        with_ttl = {(r.prefix, r.key) for r in rows if r.ttl is not None}
        keys = [(_prefix(h.namespace), h.key) for h in hits]
        return [k for k in keys if k in with_ttl]

    def _touch_hits(
        self, op: SearchOp, rows: list[StoredItem], hits: list[SearchItem], now: float, run: Any
    ) -> None:
        keys = self._hit_keys(op, rows, hits)
        if keys:
            run(self._plans.item_touch(keys, now))

    def sweep(self) -> int:
        """Delete expired items now; returns how many."""
        return int(self._engine.run(self._plans.item_sweep(self._clock())))

    async def asweep(self) -> int:
        """Async :meth:`sweep`."""
        return int(await self._engine.arun(self._plans.item_sweep(self._clock())))
