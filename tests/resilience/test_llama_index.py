import asyncio
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
)
from llama_index.core.llms import MockLLM

from aipowertools.core.errors import (
    ConfigurationError,
    ProviderTimeoutError,
    TransientProviderError,
)
from aipowertools.resilience import CircuitBreaker, RateLimiter, RetryPolicy
from aipowertools.resilience.llama_index import LlamaRateLimiter, ResilientLLM

MSGS = [ChatMessage(role="user", content="hello there")]
POLICY = RetryPolicy(max_attempts=3, base_delay=0.001)


class Flaky(MockLLM):
    """MockLLM that fails its first ``fail_times`` calls (streams fail before a chunk)."""

    fail_times: int = 0
    calls: int = 0

    def __init__(self, fail_times: int = 0) -> None:
        super().__init__()
        self.fail_times = fail_times

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.calls <= self.fail_times:
            raise TransientProviderError("503")

    def complete(self, prompt: str, formatted: bool = False, **kw: Any) -> CompletionResponse:
        self._maybe_fail()
        return CompletionResponse(text=f"done:{prompt}", raw={"usage": {"total_tokens": 7}})

    def chat(self, messages, **kw: Any) -> ChatResponse:
        self._maybe_fail()
        return ChatResponse(message=ChatMessage(role="assistant", content="hi"))

    def stream_complete(self, prompt: str, formatted: bool = False, **kw: Any):
        def gen():
            self._maybe_fail()
            yield CompletionResponse(text="a", delta="a")
            yield CompletionResponse(text="ab", delta="b")

        return gen()

    async def acomplete(self, prompt: str, formatted: bool = False, **kw: Any):
        return self.complete(prompt)

    async def achat(self, messages, **kw: Any):
        return self.chat(messages)

    async def astream_complete(self, prompt: str, formatted: bool = False, **kw: Any):
        async def gen():
            self._maybe_fail()
            yield CompletionResponse(text="a", delta="a")
            yield CompletionResponse(text="ab", delta="b")

        return gen()


def make(fail: int = 2, **kw: Any) -> tuple[Flaky, ResilientLLM]:
    inner = Flaky(fail_times=fail)
    return inner, ResilientLLM(inner, retry=POLICY, **kw)


def test_complete_chat_retry_and_token_correction():
    limiter = RateLimiter(tokens_per_minute=10_000)
    inner, llm = make(rate_limiter=limiter, tokens=500, limiter_key="m")
    assert llm.complete("x").text == "done:x"
    assert inner.calls == 3
    # three attempts reserved 500 each; the successful one was corrected to 7 tokens
    used = limiter.get_stats("m").keys["m"].usage["tokens_per_60s"][0]
    assert used == 1007
    _, llm2 = make()
    assert llm2.chat(MSGS).message.content == "hi"
    assert llm.metadata == inner.metadata
    assert llm.wrapped is inner
    assert ResilientLLM.class_name() == "ResilientLLM"


async def test_async_variants():
    _, llm = make()
    assert (await llm.acomplete("y")).text == "done:y"
    _, llm = make()
    assert (await llm.achat(MSGS)).message.content == "hi"
    _, llm = make()
    chunks = [c.delta async for c in await llm.astream_complete("z")]
    assert chunks == ["a", "b"]


def test_stream_retries_before_first_chunk_and_fallbacks():
    inner, llm = make()
    assert [c.delta for c in llm.stream_complete("s")] == ["a", "b"]
    assert inner.calls == 3
    broken = Flaky(fail_times=100)
    fb = ResilientLLM(broken, fallbacks=[Flaky()], circuit_breaker=CircuitBreaker("li"))
    assert fb.complete("q").text == "done:q"
    assert [c.delta for c in fb.stream_complete("q")] == ["a", "b"]
    with pytest.raises(TransientProviderError):
        ResilientLLM(Flaky(fail_times=100)).complete("q")


async def test_timeout():
    class Slow(Flaky):
        async def acomplete(self, prompt: str, formatted: bool = False, **kw: Any):
            await asyncio.sleep(1)
            return CompletionResponse(text="late")

    with pytest.raises(ProviderTimeoutError):
        await ResilientLLM(Slow(), timeout=0.05).acomplete("x")


def test_llama_rate_limiter():
    from llama_index.core.rate_limiter import BaseRateLimiter

    limiter = LlamaRateLimiter(tokens_per_minute=1000, key="k")
    assert isinstance(limiter, BaseRateLimiter)
    limiter.acquire(num_tokens=600)
    asyncio.run(limiter.async_acquire(num_tokens=300))
    assert limiter.limiter.try_acquire("k", tokens=200) is None
    with pytest.raises(ConfigurationError):
        LlamaRateLimiter(RateLimiter(), requests_per_minute=1)
    with pytest.raises(ConfigurationError):
        ResilientLLM("not an llm")  # type: ignore[arg-type]


def test_open_breaker_releases_and_empty_and_broken_streams():
    breaker = CircuitBreaker("li-open", failure_threshold=1)
    with pytest.raises(TransientProviderError):
        breaker.call(Flaky(fail_times=1).complete, "x")
    limiter = RateLimiter(requests_per_minute=10)
    llm = ResilientLLM(Flaky(), rate_limiter=limiter, circuit_breaker=breaker)
    from aipowertools.core.errors import CircuitOpenError

    with pytest.raises(CircuitOpenError):
        list(llm.stream_complete("x"))

    async def astream():
        return [c async for c in await llm.astream_complete("x")]

    with pytest.raises(CircuitOpenError):
        asyncio.run(astream())
    assert limiter.get_stats("default").keys["default"].usage["requests_per_60s"][0] == 0

    class Empty(Flaky):
        def stream_complete(self, prompt: str, formatted: bool = False, **kw: Any):
            return iter(())

        async def astream_complete(self, prompt: str, formatted: bool = False, **kw: Any):
            async def gen():
                if False:
                    yield None

            return gen()

    empty = ResilientLLM(Empty())
    assert list(empty.stream_complete("x")) == []

    async def aempty():
        return [c async for c in await empty.astream_complete("x")]

    assert asyncio.run(aempty()) == []

    class Broken(Flaky):
        def stream_complete(self, prompt: str, formatted: bool = False, **kw: Any):
            def gen():
                yield CompletionResponse(text="a", delta="a")
                raise TransientProviderError("dropped")

            return gen()

        async def astream_complete(self, prompt: str, formatted: bool = False, **kw: Any):
            async def gen():
                yield CompletionResponse(text="a", delta="a")
                raise TransientProviderError("dropped")

            return gen()

    broken = ResilientLLM(Broken(), retry=POLICY)
    got = []

    def consume():
        for c in broken.stream_complete("x"):
            got.append(c.delta)

    with pytest.raises(TransientProviderError):
        consume()

    async def aconsume():
        async for c in await broken.astream_complete("x"):
            got.append(c.delta)

    with pytest.raises(TransientProviderError):
        asyncio.run(aconsume())
    assert got == ["a", "a"]


async def test_stream_chat_variants():
    _, llm = make(0)
    chunks = list(llm.stream_chat(MSGS))
    assert chunks
    assert chunks[-1].message.role == "assistant"
    achunks = [c async for c in await ResilientLLM(MockLLM()).astream_chat(MSGS)]
    assert achunks
