"""The router's side of the response cache: what a routed request is keyed by, what is stored.

The router talks to any :class:`aipowertools.cache.ResponseCache` (an ``LLMCache``) through
:class:`RouterCache`: one lookup before routing (a hit answers before any budget reservation,
rate limit or provider call, and is recorded in the router's ledger as a $0 call with what it
saved) and one store after a successful call.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aipowertools.router._engine import Decision
from aipowertools.router._result import RouteResult
from aipowertools.router._types import Chunk, Completion, ToolCall, ToolCallChunk

if TYPE_CHECKING:
    from aipowertools.cache import CacheHit

# Routing options that change which model answers: part of the key.
_ROUTING = ("deployments", "required_quality", "max_cost", "strategy")


@dataclass
class RouterCache:
    """A response cache as one router uses it for one request."""

    cache: Any
    tracker: Any
    model: str
    messages: Sequence[Mapping[str, Any]]
    params: dict[str, Any]
    tags: Sequence[str] = ()
    user: str | None = None
    confidential: bool = False
    chunks: list[Any] = field(default_factory=list)

    @classmethod
    def open(
        cls,
        router: Any,
        messages: Sequence[Mapping[str, Any]],
        call_params: Mapping[str, Any],
        routing: Mapping[str, Any],
        tags: Sequence[str],
        confidential: bool | None,
    ) -> RouterCache | None:
        """The cache view of a request, or None when the router has no cache."""
        if router.cache is None:
            return None
        params = dict(call_params)
        for name in _ROUTING:
            value = routing.get(name)
            if value is not None:
                params["route_" + name] = sorted(value) if name == "deployments" else str(value)
        secret = bool(confidential) or bool(router.confidential_tags.intersection(tags))
        return cls(
            router.cache, router.cost_tracker, "router", messages, params, tuple(tags),
            params.get("user"), secret,
        )  # fmt: skip

    async def lookup(self, request_id: str) -> RouteResult | None:
        """The cached answer as a :class:`RouteResult` (``cache="hit"``/``"semantic"``)."""
        start = time.perf_counter()
        hit = await self.cache.alookup(
            self.messages, model=self.model, user=self.user, tags=self.tags,
            tracker=self.tracker, confidential=self.confidential, **self.params,
        )  # fmt: skip
        if hit is None:
            return None
        try:
            return _result(hit, request_id, (time.perf_counter() - start) * 1000.0)
        except (KeyError, TypeError, ValueError, AttributeError):  # another writer's entry
            return None

    async def store(self, result: RouteResult) -> None:
        """Cache a successful answer (streamed ones with their chunks); mark it a miss."""
        result.cache = "miss"
        c = result.completion
        value = {
            "content": result.content,
            "tool_calls": [[t.id, t.name, t.arguments] for t in result.tool_calls],
            "finish_reason": result.finish_reason,
            "provider": result.provider,
            "model": result.model,
            "deployment": result.deployment,
            "catalog_model": result.catalog_model,
        }
        await self.cache.astore(
            value, messages=self.messages, model=self.model, user=self.user, tags=self.tags,
            input_tokens=c.input_tokens, output_tokens=c.output_tokens,
            finish_reason=result.finish_reason, answered_by=result.catalog_model or result.model,
            confidential=self.confidential, chunks=self.chunks or None,
            cost_usd=next((a.cost_usd for a in result.attempts if a.ok), result.cost),
            **self.params,
        )  # fmt: skip

    def keep(self, chunk: Chunk) -> None:
        """Remember a streamed chunk for the replay (usage is replayed last, on its own)."""
        if not chunk.content and not chunk.tool_call_chunks:
            return
        self.chunks.append(
            [chunk.content, [[t.index, t.id, t.name, t.arguments] for t in chunk.tool_call_chunks]]
        )


def _result(hit: CacheHit, request_id: str, latency_ms: float) -> RouteResult:
    v = hit.value
    calls = [ToolCall(str(i), str(n), str(a)) for i, n, a in v["tool_calls"]]
    completion = Completion(
        content=v["content"],
        tool_calls=calls,
        input_tokens=hit.input_tokens,
        output_tokens=hit.output_tokens,
        finish_reason=v["finish_reason"],
        model=v["model"],
    )
    decision = Decision(
        candidates=[], rejected=[], strategy="cache", complexity=0.0, quality_floor=0.0,
        confidence=1.0, reason=f"answered from the response cache ({hit.kind})",
        request_id=request_id,
    )  # fmt: skip
    result = RouteResult(
        content=v["content"], tool_calls=calls, provider=v["provider"], model=v["model"],
        deployment=v["deployment"], cost=0.0, latency_ms=latency_ms, decision=decision,
        attempts=[], request_id=request_id, finish_reason=v["finish_reason"],
        completion=completion, catalog_model=v["catalog_model"],
    )  # fmt: skip
    result.cache = hit.kind
    result.chunks = [
        Chunk(content=content, tool_call_chunks=[ToolCallChunk(*t) for t in tcs])
        for content, tcs in (hit.chunks or [[v["content"], []]])
    ] + [
        Chunk(
            input_tokens=hit.input_tokens, output_tokens=hit.output_tokens,
            finish_reason=v["finish_reason"], model=v["model"],
        )
    ]  # fmt: skip
    return result
