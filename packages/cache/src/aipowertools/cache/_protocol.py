"""The one protocol the router (and anything else that answers requests) uses to ask a cache."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from aipowertools.cache._hit import CacheHit


@runtime_checkable
class ResponseCache(Protocol):
    """What a caller needs from a response cache: look a request up, store its answer.

    :class:`~aipowertools.cache.LLMCache` implements it; the router takes any object that does.
    """

    async def alookup(
        self,
        messages: str | Sequence[Any],
        *,
        model: str,
        user: str | None = None,
        tags: Sequence[str] = (),
        tracker: Any = None,
        **params: Any,
    ) -> CacheHit | None:
        """The cached answer to a request, or None."""

    async def astore(
        self,
        value: Any,
        *,
        messages: str | Sequence[Any],
        model: str,
        user: str | None = None,
        tags: Sequence[str] = (),
        input_tokens: int = 0,
        output_tokens: int = 0,
        finish_reason: str | None = "stop",
        answered_by: str | None = None,
        cost_usd: float | None = None,
        **params: Any,
    ) -> bool:
        """Cache the answer to a request; returns whether it was stored."""
