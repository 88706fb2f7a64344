"""LLMCache: the framework-free engine every adapter (LangChain, LlamaIndex, router) uses."""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from aipowertools.cache._backends import Backend, DiskcacheBackend, MemoryBackend
from aipowertools.cache._call import CallThrough
from aipowertools.cache._entry import CorruptEntry, Entry
from aipowertools.cache._hit import NORMAL_FINISH, CacheHit
from aipowertools.cache._hit import UNSET as _UNSET
from aipowertools.cache._hit import check_scope as _scope
from aipowertools.cache._hit import count as _count
from aipowertools.cache._hit import positive_or_none as _positive_or_none
from aipowertools.cache._key import RequestKey, Scope, Uncacheable, request_key
from aipowertools.cache._stats import CacheStats, StatsCounter
from aipowertools.core.errors import ConfigurationError, StoreUnavailableError

logger = logging.getLogger("aipowertools.cache")
T = TypeVar("T")

EMBEDDED = frozenset({"memory", "diskcache"})
_NAMESPACE = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


class LLMCache(CallThrough):
    """A response cache for LLM calls: exact and (opt-in) semantic, scoped, with TTLs.

    Args:
        store: where entries live: ``diskcache:///dir`` (default: ``cache/`` under the data
            directory, or ``AIPOWERTOOLS_STORE`` when it names Redis or PostgreSQL),
            ``memory://``, ``redis://...``, ``postgresql://...``.
        scope: who may share an answer: ``"model"`` (default: the same request to the same
            model), ``"user"`` (the same, and the same user only), ``"content"`` (the same
            request to any model), ``"global"`` (the same conversation, whatever the model and
            sampling parameters).
        ttl: seconds an entry lives (None: until evicted); per entry with ``store(ttl=...)``.
        normalize: ``"whitespace"`` folds runs of whitespace in text and trims it; None keeps
            text byte for byte.
        semantic: an embedder (LangChain ``Embeddings``, LlamaIndex ``BaseEmbedding`` or a
            callable ``text -> vector``) to also answer requests whose last user message is
            similar to a cached one's; None for exact matching only.
        threshold: cosine similarity (0..1) a semantic match needs.
        single_flight: concurrent misses of one key (in any process sharing the store) make
            one provider call in :meth:`call` / :meth:`acall`; the others wait for its answer.
        strict: raise :class:`~aipowertools.core.errors.StoreUnavailableError` when the store
            fails, instead of logging a warning and treating it as a miss.
        namespace: separates caches sharing one store (letters, digits, ``_``).
        max_entries: bound of the embedded stores (least recently used out first).
        max_bytes: bound in bytes of the embedded stores.
        cost_tracker: an ``aipowertools.core.CostTracker``; every hit is recorded in it as a
            $0 call with ``saved_usd``.
        confidential_tags: request tags that mark a request confidential: it is cached only on
            an embedded store (memory, diskcache) unless ``allow_confidential``.
        allow_confidential: cache confidential requests on Redis / PostgreSQL too.
        lock_ttl: seconds a single-flight lock holds (and the longest a waiter waits).
        clock: time source (epoch seconds) for TTLs; tests inject one.

    Example:
        >>> cache = LLMCache("memory://", ttl=3600)
        >>> messages = [{"role": "user", "content": "Capital of France?"}]
        >>> cache.store("Paris.", messages=messages, model="gpt-4o-mini")
        True
        >>> cache.lookup(messages, model="gpt-4o-mini").value
        'Paris.'
    """

    def __init__(
        self,
        store: str | None = None,
        *,
        scope: Scope = "model",
        ttl: float | None = None,
        normalize: str | None = None,
        semantic: Any = None,
        threshold: float = 0.92,
        single_flight: bool = False,
        strict: bool = False,
        namespace: str = "default",
        max_entries: int | None = None,
        max_bytes: int | None = None,
        cost_tracker: Any = None,
        confidential_tags: Sequence[str] = ("confidential",),
        allow_confidential: bool = False,
        lock_ttl: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.scope: Scope = _scope(scope)
        self.ttl = _positive_or_none("ttl", ttl)
        if normalize not in (None, "whitespace"):
            raise ConfigurationError(f"normalize must be None or 'whitespace', got {normalize!r}")
        self.normalize = normalize == "whitespace"
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise ConfigurationError(f"threshold must be a number in 0..1, got {threshold!r}")
        if not 0.0 <= threshold <= 1.0:
            raise ConfigurationError(f"threshold must be in 0..1, got {threshold!r}")
        self.threshold = float(threshold)
        if not isinstance(namespace, str) or not _NAMESPACE.match(namespace):
            raise ConfigurationError(
                f"namespace must be lowercase letters, digits and _ (starting with a letter), "
                f"got {namespace!r}"
            )
        self.namespace = namespace
        self.max_entries = _count("max_entries", max_entries)
        self.max_bytes = _count("max_bytes", max_bytes)
        lock = _positive_or_none("lock_ttl", lock_ttl)
        if lock is None:
            raise ConfigurationError("lock_ttl must be a positive number of seconds, got None")
        self.lock_ttl = lock
        self.single_flight = bool(single_flight)
        self.strict = bool(strict)
        self.cost_tracker = cost_tracker
        self.confidential_tags = frozenset(confidential_tags)
        self.allow_confidential = bool(allow_confidential)
        self._clock = clock
        from aipowertools.cache._semantic import Embedder

        self.embedder = None if semantic is None else Embedder(semantic)
        self.url = self._parse(store)
        self._backend: Backend | None = None
        self._open_lock = threading.Lock()
        self._down_until = 0.0
        self._backoff = 0.0
        self._stats = StatsCounter()
        self._models: dict[str, tuple[str, Any]] = {}

    # ------------------------------------------------------------------ store
    def _parse(self, store: str | None) -> Any:
        from aipowertools.core.stores import data_dir, parse_store_url

        if store is None:
            import os

            env = os.environ.get("AIPOWERTOOLS_STORE", "").strip()
            # The embedded default is the cache's own diskcache, whatever embedded file the
            # other components share; a server URL is shared by everyone.
            if not env or env.split("://", 1)[0].lower() in ("sqlite", "diskcache", "memory"):
                store = f"diskcache:///{data_dir() / 'cache'}"
        url = parse_store_url(store, default=f"diskcache:///{data_dir() / 'cache'}")
        if url.scheme not in ("memory", "diskcache", "redis", "postgresql"):
            raise ConfigurationError(
                f"store {url.masked()!r}: the response cache lives in memory://, "
                "diskcache:///dir, redis://... or postgresql://..., not "
                f"{url.scheme}://"
            )
        return url

    @property
    def embedded(self) -> bool:
        """Whether entries stay on this machine (memory or diskcache)."""
        return bool(self.url.scheme in EMBEDDED)

    def _open(self) -> Backend:
        backend = self._backend
        if backend is not None:
            return backend
        with self._open_lock:
            if self._backend is None:
                scheme = self.url.scheme
                if scheme == "memory":
                    self._backend = MemoryBackend(self.max_entries, self.max_bytes, self._clock)
                elif scheme == "diskcache":
                    self._backend = DiskcacheBackend(
                        self.url.path / self.namespace, self.max_entries, self.max_bytes
                    )
                elif scheme == "redis":
                    from aipowertools.cache._redis import RedisBackend

                    self._backend = RedisBackend(self.url.raw, self.namespace)
                else:
                    from aipowertools.cache._postgres import PostgresBackend

                    self._backend = PostgresBackend(self.url.raw, self.namespace)
            return self._backend

    def _guard(self, what: str, fn: Callable[[Backend], T], default: T) -> T:
        """Run a store operation; a failure is a warning and ``default`` (``strict``: raise)."""
        if not self.strict and self._down_until and self._clock() < self._down_until:
            return default
        try:
            result = fn(self._open())
        except ConfigurationError:
            raise
        except Exception as exc:
            self._stats.error()
            self._backoff = min(30.0, max(1.0, self._backoff * 2))
            self._down_until = self._clock() + self._backoff
            if self.strict:
                if isinstance(exc, StoreUnavailableError):
                    raise
                raise StoreUnavailableError(self.url.raw, f"{what} failed: {exc}") from exc
            logger.warning(
                "response cache %s: %s failed (%s: %s); treated as a miss, retrying the store "
                "in %.0f s",
                self.url.masked(), what, type(exc).__name__, exc, self._backoff,
                extra={"event": "cache.error", "store": self.url.masked()},
            )  # fmt: skip
            return default
        self._backoff = 0.0
        self._down_until = 0.0
        return result

    # ------------------------------------------------------------------ keys
    def _model(self, model: str) -> tuple[str, Any]:
        """(resolved catalog name, ModelInfo or None) of ``model``, cached."""
        found = self._models.get(model)
        if found is None:
            from aipowertools.core import default_catalog

            try:
                info: Any = default_catalog().get(model)
                name = info.litellm_model
                prefix = f"{info.provider}/"
                if name.startswith(prefix) and info.provider not in ("ollama", "ollama_chat"):
                    name = name[len(prefix) :]
            except Exception:  # an unknown model keys by its own name and saves $0
                info, name = None, model
            found = self._models[model] = (name, info)
        return found

    def key(
        self,
        messages: str | Sequence[Any],
        *,
        model: str,
        user: str | None = None,
        scope: Scope | None = None,
        **params: Any,
    ) -> str | None:
        """The cache key of a request (None when it cannot be cached)."""
        rk = self._request_key(messages, model, user, _scope(scope or self.scope), params)
        return None if rk is None else rk.key

    def _request_key(
        self,
        messages: str | Sequence[Any],
        model: str,
        user: str | None,
        scope: Scope,
        params: dict[str, Any],
    ) -> RequestKey | None:
        if not isinstance(model, str) or not model:
            raise ConfigurationError(f"model must be a model name (str), got {model!r}")
        if scope == "user" and not user:
            raise ConfigurationError(
                "user: scope='user' keys every entry by its user; pass user=... (one user's "
                "answer is never served to another)"
            )
        try:
            return request_key(
                model=self._model(model)[0],
                messages=messages,
                params=params,
                scope=scope,
                user=user,
                normalize=self.normalize,
            )
        except Uncacheable as exc:
            logger.debug("request not cacheable: %s", exc)
            return None

    def _confidential(self, tags: Sequence[str], confidential: bool) -> bool:
        if self.embedded or self.allow_confidential:
            return False
        return confidential or bool(self.confidential_tags.intersection(tags))

    # ------------------------------------------------------------------ lookup
    def _read(self, backend: Backend, key: str, now: float) -> Entry | None:
        blob = backend.get(key)
        if blob is None:
            return None
        try:
            entry = Entry.decode(blob, key)
        except CorruptEntry as exc:
            logger.warning(
                "response cache %s: entry %s is corrupt (%s); deleted, treated as a miss",
                self.url.masked(), key, exc,
                extra={"event": "cache.corrupt", "store": self.url.masked()},
            )  # fmt: skip
            backend.delete([key])
            return None
        if entry.expired(now):
            backend.delete([key])
            return None
        return entry

    def _find(self, rk: RequestKey, vector: Any, now: float) -> tuple[Entry, float] | None:
        def find(backend: Backend) -> tuple[Entry, float] | None:
            entry = self._read(backend, rk.key, now)
            if entry is not None:
                return entry, 1.0
            if vector is None:
                return None
            from aipowertools.cache._semantic import nearest

            stored = backend.vectors(rk.partition)
            while stored:
                best = nearest(vector, stored)
                if best is None or best[1] < self.threshold:
                    return None
                entry = self._read(backend, best[0], now)
                if entry is not None:
                    return entry, best[1]
                backend.drop_vector(rk.partition, best[0])  # its entry is gone
                stored = [s for s in stored if s[0] != best[0]]
            return None

        return self._guard("lookup", find, None)

    def _hit(
        self,
        found: tuple[Entry, float] | None,
        model: str,
        scope: Scope,
        user: str | None,
        tags: Sequence[str],
        tracker: Any,
    ) -> CacheHit | None:
        name = self._model(model)[0]
        if found is None:
            self._stats.add(scope, name, misses=1)
            return None
        entry, similarity = found
        semantic = similarity < 1.0
        saved = self._price(model, entry)
        self._stats.add(
            scope, name, hits=1, semantic=int(semantic),
            input_tokens=entry.input_tokens, output_tokens=entry.output_tokens, saved_usd=saved,
        )  # fmt: skip
        hit = CacheHit(
            value=entry.value,
            chunks=entry.chunks,
            semantic=semantic,
            similarity=similarity,
            model=entry.model,
            input_tokens=entry.input_tokens,
            output_tokens=entry.output_tokens,
            saved_usd=saved,
            key=entry.key,
        )
        tracker = tracker if tracker is not None else self.cost_tracker
        if tracker is not None:
            self._record(tracker, hit, model, user, tags)
        return hit

    def _price(self, model: str, entry: Entry) -> float:
        """What the hit would have cost with ``model`` (the entry's own cost as a fallback)."""
        name, info = self._model(model)
        if info is None or name == self._model(entry.model)[0]:
            return entry.cost_usd  # priced when stored, at this model's prices
        return self._catalog_price(info, entry)

    def _catalog_price(self, info: Any, entry: Entry) -> float:
        from aipowertools.core import Usage, cost

        try:
            return float(
                cost(
                    Usage(input_tokens=entry.input_tokens, output_tokens=entry.output_tokens), info
                )
            )
        except Exception:  # pragma: no cover - a catalog entry without prices
            return entry.cost_usd

    def _record(
        self, tracker: Any, hit: CacheHit, model: str, user: str | None, tags: Sequence[str]
    ) -> None:
        try:
            tracker.record(
                model=model,
                cost_usd=0.0,
                saved_usd=hit.saved_usd,
                user=user,
                tags=(*tags, "cache:" + hit.kind),
                latency_ms=0.0,
            )
        except Exception as exc:  # the ledger failing never fails a cache hit
            logger.warning("response cache: recording a hit in the ledger failed: %s", exc)

    def lookup(
        self,
        messages: str | Sequence[Any],
        *,
        model: str,
        user: str | None = None,
        tags: Sequence[str] = (),
        scope: Scope | None = None,
        semantic: bool = True,
        confidential: bool = False,
        tracker: Any = None,
        **params: Any,
    ) -> CacheHit | None:
        """The cached answer to a request, or None.

        Args:
            messages: the conversation (OpenAI-format dicts) or one user message.
            model: the model asked for.
            user: the user (needed by the ``user`` scope; recorded in the ledger).
            tags: request tags (confidential tags, ledger tags).
            scope: override the cache's scope for this call.
            semantic: accept a semantic (similar, not identical) hit; False refuses them.
            confidential: the request is confidential (see ``confidential_tags``).
            tracker: a ``CostTracker`` to record the hit in (default: the cache's).
            **params: provider parameters (temperature, max_tokens, tools, ...).
        """
        sc = _scope(scope or self.scope)
        rk = self._request_key(messages, model, user, sc, params)
        if rk is None or self._confidential(tags, confidential):
            return self._hit(None, model, sc, user, tags, tracker)
        vector = None
        if semantic and self.embedder is not None and rk.text:
            vector = self.embedder.embed(rk.text)
        found = self._find(rk, vector, self._clock())
        return self._hit(found, model, sc, user, tags, tracker)

    async def alookup(
        self,
        messages: str | Sequence[Any],
        *,
        model: str,
        user: str | None = None,
        tags: Sequence[str] = (),
        scope: Scope | None = None,
        semantic: bool = True,
        confidential: bool = False,
        tracker: Any = None,
        **params: Any,
    ) -> CacheHit | None:
        """Async :meth:`lookup` (the store is called off the event loop)."""
        sc = _scope(scope or self.scope)
        rk = self._request_key(messages, model, user, sc, params)
        if rk is None or self._confidential(tags, confidential):
            return self._hit(None, model, sc, user, tags, tracker)
        vector = None
        if semantic and self.embedder is not None and rk.text:
            vector = await self.embedder.aembed(rk.text)
        now = self._clock()
        if self.url.scheme == "memory":
            found = self._find(rk, vector, now)
        else:
            found = await asyncio.to_thread(self._find, rk, vector, now)
        return await self._off(lambda: self._hit(found, model, sc, user, tags, tracker))

    async def _off(self, fn: Callable[[], T]) -> T:
        if self.url.scheme == "memory" and (self.cost_tracker is None):
            return fn()
        return await asyncio.to_thread(fn)

    # ------------------------------------------------------------------ store
    def _entry(
        self,
        value: Any,
        rk: RequestKey,
        *,
        model: str,
        user: str | None,
        tags: Sequence[str],
        input_tokens: int,
        output_tokens: int,
        chunks: list[Any] | None,
        ttl: float | None,
        answered_by: str | None,
        cost_usd: float | None = None,
    ) -> Entry:
        answered = answered_by or model
        entry = Entry(
            key=rk.key,
            value=value,
            chunks=chunks,
            model=answered,
            user=user,
            tags=tuple(tags),
            input_tokens=int(input_tokens),
            output_tokens=int(output_tokens),
            created=self._clock(),
        )
        if cost_usd is None:
            info = self._model(answered)[1]
            cost_usd = 0.0 if info is None else self._catalog_price(info, entry)
        price = float(cost_usd)
        expires = None if ttl is None else entry.created + ttl
        return Entry(**{**entry.__dict__, "cost_usd": price, "expires": expires})

    def _prepare(
        self,
        value: Any,
        messages: str | Sequence[Any],
        *,
        model: str,
        user: str | None,
        tags: Sequence[str],
        scope: Scope | None,
        input_tokens: int,
        output_tokens: int,
        finish_reason: str | None,
        ttl: Any,
        chunks: list[Any] | None,
        confidential: bool,
        answered_by: str | None,
        params: dict[str, Any],
        cost_usd: float | None = None,
    ) -> tuple[RequestKey, Entry, float | None] | None:
        if isinstance(tags, str):
            tags = (tags,)
        ttl = self.ttl if ttl is _UNSET else _positive_or_none("ttl", ttl)
        sc = _scope(scope or self.scope)
        rk = self._request_key(messages, model, user, sc, params)
        if rk is None:
            return None
        if finish_reason is not None and str(finish_reason).lower() not in NORMAL_FINISH:
            logger.debug("not cached: finish_reason %r", finish_reason)
            return None
        if self._confidential(tags, confidential):
            logger.debug("not cached: confidential request on a shared store")
            return None
        entry = self._entry(
            value, rk, model=model, user=user if sc == "user" else None, tags=tags,
            input_tokens=input_tokens, output_tokens=output_tokens, chunks=chunks, ttl=ttl,
            answered_by=answered_by, cost_usd=cost_usd,
        )  # fmt: skip
        return rk, entry, ttl

    def _write(self, rk: RequestKey, entry: Entry, ttl: float | None, vector: Any) -> bool:
        blob = entry.encode()
        vec = None if vector is None else vector.tobytes()
        partition = rk.partition if vec is not None else None

        def put(backend: Backend) -> bool:
            backend.put(rk.key, blob, ttl=ttl, partition=partition, vector=vec)
            return True

        return self._guard("store", put, False)

    def store(
        self,
        value: Any,
        *,
        messages: str | Sequence[Any],
        model: str,
        user: str | None = None,
        tags: Sequence[str] = (),
        scope: Scope | None = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        finish_reason: str | None = "stop",
        ttl: float | None = _UNSET,
        chunks: list[Any] | None = None,
        confidential: bool = False,
        answered_by: str | None = None,
        cost_usd: float | None = None,
        **params: Any,
    ) -> bool:
        """Cache the answer to a request; returns whether it was stored.

        Not stored: answers whose ``finish_reason`` is not a normal stop, length or tool call
        (content filters, errors, cut-off streams), confidential requests on a shared store,
        requests with values that have no canonical form, and anything while the store fails.

        Args:
            value: the answer (any JSON value).
            messages: the request's conversation, as given to :meth:`lookup`.
            model: the model asked for (part of the key in the ``model`` / ``user`` scopes).
            user: the user (``user`` scope).
            tags: request tags (``invalidate("tag:...")``, confidentiality).
            scope: override the cache's scope for this entry.
            input_tokens: prompt tokens the answer cost (for what hits save).
            output_tokens: completion tokens it cost.
            finish_reason: why the model stopped (None: unknown, cached).
            ttl: seconds this entry lives (default: the cache's ``ttl``; None: no expiry).
            chunks: a streamed answer's chunks, replayed by :meth:`CacheHit.replay`.
            confidential: the request is confidential.
            answered_by: the model that actually answered, when not ``model`` (a router).
            cost_usd: what the answer cost, when known better than the catalog's prices
                (hits of an unknown model save this much).
            **params: the request's provider parameters.
        """
        prepared = self._prepare(
            value, messages, model=model, user=user, tags=tags, scope=scope,
            input_tokens=input_tokens, output_tokens=output_tokens, finish_reason=finish_reason,
            ttl=ttl, chunks=chunks, confidential=confidential, answered_by=answered_by,
            params=params, cost_usd=cost_usd,
        )  # fmt: skip
        if prepared is None:
            return False
        rk, entry, ttl_s = prepared
        vector = None
        if self.embedder is not None and rk.text:
            vector = self.embedder.embed(rk.text)
        return self._write(rk, entry, ttl_s, vector)

    async def astore(
        self,
        value: Any,
        *,
        messages: str | Sequence[Any],
        model: str,
        user: str | None = None,
        tags: Sequence[str] = (),
        scope: Scope | None = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        finish_reason: str | None = "stop",
        ttl: float | None = _UNSET,
        chunks: list[Any] | None = None,
        confidential: bool = False,
        answered_by: str | None = None,
        cost_usd: float | None = None,
        **params: Any,
    ) -> bool:
        """Async :meth:`store`."""
        prepared = self._prepare(
            value, messages, model=model, user=user, tags=tags, scope=scope,
            input_tokens=input_tokens, output_tokens=output_tokens, finish_reason=finish_reason,
            ttl=ttl, chunks=chunks, confidential=confidential, answered_by=answered_by,
            params=params, cost_usd=cost_usd,
        )  # fmt: skip
        if prepared is None:
            return False
        rk, entry, ttl_s = prepared
        vector = None
        if self.embedder is not None and rk.text:
            vector = await self.embedder.aembed(rk.text)
        if self.url.scheme == "memory":
            return self._write(rk, entry, ttl_s, vector)
        return await asyncio.to_thread(self._write, rk, entry, ttl_s, vector)

    # ------------------------------------------------------------------ maintenance
    def invalidate(self, pattern: str) -> int:
        """Delete entries matching a glob: ``"model:gpt-4o*"``, ``"user:ann"``, ``"tag:faq-*"``.

        A pattern without a prefix matches the model. Returns how many entries went.
        """
        if not isinstance(pattern, str):
            raise ConfigurationError(
                f"pattern must be a glob string such as 'model:gpt-4o*', 'user:ann' or "
                f"'tag:faq-*', got {type(pattern).__name__} {pattern!r}"
            )
        field_name, sep, glob = pattern.partition(":")
        if not sep or field_name not in ("model", "user", "tag"):
            field_name, glob = "model", pattern

        def matches(entry: Entry) -> bool:
            if field_name == "model":
                return fnmatch.fnmatchcase(entry.model, glob)
            if field_name == "user":
                return entry.user is not None and fnmatch.fnmatchcase(entry.user, glob)
            return any(fnmatch.fnmatchcase(t, glob) for t in entry.tags)

        def run(backend: Backend) -> int:
            doomed = []
            for key, blob in backend.items():
                try:
                    entry = Entry.decode(blob)
                except CorruptEntry:
                    doomed.append(key)
                    continue
                if matches(entry):
                    doomed.append(key)
            return backend.delete(doomed) if doomed else 0

        return self._guard("invalidate", run, 0)

    async def ainvalidate(self, pattern: str) -> int:
        """Async :meth:`invalidate`."""
        return await asyncio.to_thread(self.invalidate, pattern)

    def clear(self) -> int:
        """Delete every entry of this cache (its namespace); returns how many."""
        return self._guard("clear", lambda b: b.clear(), 0)

    async def aclear(self) -> int:
        """Async :meth:`clear`."""
        if self.url.scheme == "memory":
            return self.clear()
        return await asyncio.to_thread(self.clear)

    def stats(self) -> CacheStats:
        """Hits, misses, hit rate, tokens and USD saved (this process), per scope and model."""
        return self._stats.snapshot()

    def reset_stats(self) -> None:
        """Start the counters of :meth:`stats` again from zero."""
        self._stats.reset()

    def close(self) -> None:
        """Close the store (shared Redis / PostgreSQL pools stay open for others)."""
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def __repr__(self) -> str:
        return f"LLMCache({self.url.masked()!r}, scope={self.scope!r}, ttl={self.ttl!r})"
