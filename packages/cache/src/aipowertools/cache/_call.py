"""Call-through and streams: the cached answer, or the provider's (stored for next time)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Sequence,
)
from typing import TYPE_CHECKING, Any, TypeVar

from aipowertools.cache._backends import new_token
from aipowertools.cache._hit import UNSET as _UNSET
from aipowertools.cache._hit import Answer, CacheHit
from aipowertools.cache._hit import check_scope as _scope
from aipowertools.cache._key import Scope

if TYPE_CHECKING:
    from aipowertools.cache._entry import Entry
    from aipowertools.cache._key import RequestKey
    from aipowertools.cache._stats import StatsCounter

T = TypeVar("T")
_POLL_S = (0.01, 0.02, 0.05, 0.1)


class CallThrough:
    """``call`` / ``acall`` (with single-flight) and stream caching, mixed into LLMCache."""

    if TYPE_CHECKING:
        single_flight: bool
        lock_ttl: float
        scope: Scope
        _stats: StatsCounter
        lookup: Callable[..., CacheHit | None]
        alookup: Callable[..., Awaitable[CacheHit | None]]
        store: Callable[..., bool]
        key: Callable[..., str | None]
        _guard: Callable[..., Any]
        _request_key: Callable[..., RequestKey | None]
        _find: Callable[..., tuple[Entry, float] | None]
        _hit: Callable[..., CacheHit | None]
        _model: Callable[[str], tuple[str, Any]]
        _clock: Callable[[], float]

    def call(
        self,
        fn: Callable[[], Any],
        *,
        messages: str | Sequence[Any],
        model: str,
        user: str | None = None,
        tags: Sequence[str] = (),
        scope: Scope | None = None,
        semantic: bool = True,
        ttl: float | None = _UNSET,
        **params: Any,
    ) -> Any:
        """The cached answer, or ``fn()``'s (cached for next time).

        ``fn`` returns the answer, or an :class:`Answer` with its usage and finish reason.
        With ``single_flight``, concurrent misses of one key share one call of ``fn``: one
        caller takes a short lock in the store, the others wait for its answer (at most
        ``lock_ttl`` seconds, then they call ``fn`` themselves). Exceptions are not cached.
        """
        kw = {"model": model, "user": user, "tags": tags, "scope": scope, **params}
        hit = self.lookup(messages, semantic=semantic, **kw)
        if hit is not None:
            return hit.value
        lock_key = token = None
        if self.single_flight:
            lock_key = self.key(messages, model=model, user=user, scope=scope, **params)
        if lock_key is not None:
            token, waited = self._wait_turn(lock_key, messages, kw)
            if waited is not None:
                return waited.value
        try:
            answer = fn()
            self._store_answer(answer, messages, kw, ttl)
        finally:
            if token is not None and lock_key is not None:
                held = token
                self._guard("unlock", lambda b: b.release(lock_key, held), None)
        return answer.value if isinstance(answer, Answer) else answer

    async def acall(
        self,
        fn: Callable[[], Any],
        *,
        messages: str | Sequence[Any],
        model: str,
        user: str | None = None,
        tags: Sequence[str] = (),
        scope: Scope | None = None,
        semantic: bool = True,
        ttl: float | None = _UNSET,
        **params: Any,
    ) -> Any:
        """Async :meth:`call`: ``fn`` returns an awaitable of the answer."""
        kw = {"model": model, "user": user, "tags": tags, "scope": scope, **params}
        hit = await self.alookup(messages, semantic=semantic, **kw)
        if hit is not None:
            return hit.value
        lock_key = token = None
        if self.single_flight:
            lock_key = self.key(messages, model=model, user=user, scope=scope, **params)
        if lock_key is not None:
            token, waited = await asyncio.to_thread(self._wait_turn, lock_key, messages, kw)
            if waited is not None:
                return waited.value
        try:
            answer = await fn()
            await asyncio.to_thread(self._store_answer, answer, messages, kw, ttl)
        finally:
            if token is not None and lock_key is not None:
                held = token
                await asyncio.to_thread(
                    self._guard, "unlock", lambda b: b.release(lock_key, held), None
                )
        return answer.value if isinstance(answer, Answer) else answer

    def _wait_turn(
        self, lock_key: str, messages: Any, kw: dict[str, Any]
    ) -> tuple[str | None, CacheHit | None]:
        """Take the key's single-flight lock, or wait for its holder's answer.

        Returns (our lock token or None, the holder's answer or None); after ``lock_ttl``
        without an answer the caller goes ahead without the lock.
        """
        token = new_token()
        deadline = time.monotonic() + self.lock_ttl
        attempt = 0
        while not self._guard("lock", lambda b: b.acquire(lock_key, token, self.lock_ttl), True):
            time.sleep(_POLL_S[min(attempt, len(_POLL_S) - 1)])
            attempt += 1
            found = self._peek(messages, kw)
            if found is not None:
                return None, found
            if time.monotonic() >= deadline:
                return None, None
        # the holder may have answered between our miss and our lock: look once more
        found = self._peek(messages, kw)
        if found is not None:
            self._guard("unlock", lambda b: b.release(lock_key, token), None)
            return None, found
        return token, None

    def _peek(self, messages: Any, kw: dict[str, Any]) -> CacheHit | None:
        """A single-flight waiter's look: the exact entry, counted as a hit instead of a miss."""
        params = {k: v for k, v in kw.items() if k not in ("model", "user", "tags", "scope")}
        sc = _scope(kw["scope"] or self.scope)
        rk = self._request_key(messages, kw["model"], kw["user"], sc, params)
        assert rk is not None  # the lock key was computed from the same request
        found = self._find(rk, None, self._clock())
        if found is None:
            return None
        self._stats.add(sc, self._model(kw["model"])[0], misses=-1)
        return self._hit(found, kw["model"], sc, kw["user"], kw["tags"], None)

    def _store_answer(self, answer: Any, messages: Any, kw: dict[str, Any], ttl: Any) -> bool:
        if not isinstance(answer, Answer):
            answer = Answer(answer)
        return self.store(
            answer.value,
            messages=messages,
            input_tokens=answer.input_tokens,
            output_tokens=answer.output_tokens,
            finish_reason=answer.finish_reason,
            answered_by=answer.model,
            ttl=ttl,
            **kw,
        )

    # ------------------------------------------------------------------ streams
    def cache_stream(
        self,
        source: Iterable[T],
        *,
        messages: str | Sequence[Any],
        model: str,
        summarize: Callable[[list[Any]], Answer],
        encode: Callable[[T], Any] = lambda chunk: chunk,
        **kwargs: Any,
    ) -> Generator[T, None, None]:
        """Pass a stream through and cache it once it completes (a cut-off stream is not).

        Args:
            source: the provider's stream.
            messages: the request's conversation.
            model: the model asked for.
            summarize: the whole answer from the encoded chunks (value, usage, finish reason).
            encode: a chunk as a JSON value (what :meth:`CacheHit.replay` gives back).
            **kwargs: as for :meth:`store` (user, tags, ttl, parameters...).
        """
        chunks: list[Any] = []
        for chunk in source:
            chunks.append(encode(chunk))
            yield chunk
        self._store_stream(chunks, summarize, messages, model, kwargs)

    async def acache_stream(
        self,
        source: AsyncIterable[T],
        *,
        messages: str | Sequence[Any],
        model: str,
        summarize: Callable[[list[Any]], Answer],
        encode: Callable[[T], Any] = lambda chunk: chunk,
        **kwargs: Any,
    ) -> AsyncGenerator[T, None]:
        """Async :meth:`cache_stream`."""
        chunks: list[Any] = []
        async for chunk in source:
            chunks.append(encode(chunk))
            yield chunk
        await asyncio.to_thread(self._store_stream, chunks, summarize, messages, model, kwargs)

    def _store_stream(
        self,
        chunks: list[Any],
        summarize: Callable[[list[Any]], Answer],
        messages: Any,
        model: str,
        kwargs: dict[str, Any],
    ) -> bool:
        answer = summarize(chunks)
        return self.store(
            answer.value,
            messages=messages,
            model=model,
            chunks=chunks,
            input_tokens=answer.input_tokens,
            output_tokens=answer.output_tokens,
            finish_reason=answer.finish_reason,
            answered_by=answer.model,
            **kwargs,
        )
