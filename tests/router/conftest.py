"""Shared helpers for router tests: an in-process transport with scripted behaviour."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from aipowertools.core.errors import (
    RateLimitedError,
    TransientProviderError,
)
from aipowertools.router import Chunk, Completion, Deployment, ToolCall, ToolCallChunk


@dataclass
class Behaviour:
    latency_s: float = 0.0
    fail_rate: float = 0.0
    error: type[Exception] = TransientProviderError
    retry_after: float | None = None
    content: str = ""
    output_tokens: int = 10
    slow_rate: float = 0.0
    slow_s: float = 0.0
    tool_call: bool = False
    tool_name: str = "get_weather"


@dataclass
class FakeTransport:
    """Answers in-process per deployment name; records every call it receives."""

    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    seed: int = 0
    calls: list[str] = field(default_factory=list)
    params: list[dict[str, Any]] = field(default_factory=list)
    messages: list[list[dict[str, Any]]] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def _b(self, d: Deployment) -> Behaviour:
        return self.behaviours.get(d.name, Behaviour())

    async def _maybe_fail(self, d: Deployment, b: Behaviour) -> None:
        if b.fail_rate and self.rng.random() < b.fail_rate:
            if b.error is RateLimitedError:
                raise RateLimitedError(
                    "429", provider=d.provider, model=d.model, retry_after=b.retry_after
                )
            raise b.error(f"{d.name} failed", provider=d.provider, model=d.model)

    async def complete(
        self, d: Deployment, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]
    ) -> Completion:
        self.calls.append(d.name)
        self.params.append(dict(params))
        self.messages.append([dict(m) for m in messages])
        b = self._b(d)
        delay = b.latency_s
        if b.slow_rate and self.rng.random() < b.slow_rate:
            delay = b.slow_s
        try:
            if delay:
                await asyncio.sleep(delay)
        except asyncio.CancelledError:
            self.cancelled.append(d.name)
            raise
        await self._maybe_fail(d, b)
        calls = [ToolCall("call_1", b.tool_name, '{"city": "Paris"}')] if b.tool_call else []
        return Completion(
            content=b.content or f"answer from {d.name}",
            tool_calls=calls,
            input_tokens=20,
            output_tokens=b.output_tokens,
            finish_reason="stop",
            model=d.model,
        )

    async def stream(
        self, d: Deployment, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]
    ) -> AsyncIterator[Chunk]:
        self.calls.append(d.name)
        b = self._b(d)
        if b.latency_s:
            await asyncio.sleep(b.latency_s)
        await self._maybe_fail(d, b)
        text = b.content or f"answer from {d.name}"
        yield Chunk(content="")  # role-only first chunk, like OpenAI
        for word in text.split(" "):
            yield Chunk(content=word + " ")
        if b.tool_call:
            yield Chunk(tool_call_chunks=[ToolCallChunk(0, "call_1", b.tool_name, '{"ci')])
            yield Chunk(tool_call_chunks=[ToolCallChunk(0, None, None, 'ty": "Paris"}')])
        yield Chunk(finish_reason="stop", input_tokens=20, output_tokens=b.output_tokens)


def dep(
    name: str,
    *,
    price: float = 1e-6,
    quality: float = 0.7,
    local: bool = False,
    window: int = 128_000,
    tools: bool = True,
    vision: bool = False,
    json: bool = True,
    **kw: Any,
) -> Deployment:
    return Deployment(
        f"openai/{name}",
        name=name,
        input_cost_per_token=price,
        output_cost_per_token=price * 4,
        quality=quality,
        local=local,
        context_window=window,
        max_output_tokens=4096,
        supports_tools=tools,
        supports_vision=vision,
        supports_json=json,
        latency_ms=500.0,
        **kw,
    )


@pytest.fixture
def transport() -> FakeTransport:
    return FakeTransport()
