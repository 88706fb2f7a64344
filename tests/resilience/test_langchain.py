import asyncio
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables import RunnableLambda

from aipowertools.core.errors import CircuitOpenError, TransientProviderError
from aipowertools.resilience import CircuitBreaker, RateLimiter, RetryPolicy
from aipowertools.resilience.langchain import ChatRateLimiter, with_resilience


class Recorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.starts: list[tuple[str, UUID, UUID | None]] = []
        self.retries: list[tuple[int, UUID]] = []

    def on_chain_start(self, serialized, inputs, *, run_id, parent_run_id=None, **kw):
        self.starts.append((kw.get("name") or "", run_id, parent_run_id))

    def on_retry(self, retry_state, *, run_id, parent_run_id=None, **kw):
        self.retries.append((retry_state.attempt_number, run_id))


def flaky_factory(fail_times: int):
    state = {"n": 0}

    def flaky(x: int) -> int:
        state["n"] += 1
        if state["n"] <= fail_times:
            raise TransientProviderError("503")
        return x * 2

    return flaky


def gen_factory(fail_times: int):
    state = {"n": 0}

    def gen(x: int):
        state["n"] += 1
        if state["n"] <= fail_times:
            raise TransientProviderError("503")
        yield x
        yield x + 1

    return gen


def agen_factory(fail_times: int):
    state = {"n": 0}

    async def agen(x: int):
        state["n"] += 1
        if state["n"] <= fail_times:
            raise TransientProviderError("503")
        yield x
        yield x + 1

    return agen


POLICY = RetryPolicy(max_attempts=3, base_delay=0.001)


@pytest.mark.parametrize("mode", ["invoke", "ainvoke", "batch", "abatch", "stream", "astream"])
def test_with_resilience_matrix_run_tree_and_on_retry(mode):
    streaming = mode in ("stream", "astream")
    fn = (
        (agen_factory(2) if mode == "astream" else gen_factory(2))
        if streaming
        else flaky_factory(2)
    )
    chain = with_resilience(
        RunnableLambda(fn, name="inner"),
        rate_limiter=RateLimiter(requests_per_second=100),
        retry=POLICY,
        circuit_breaker=CircuitBreaker(f"m-{mode}", failure_threshold=10),
        timeout=None if mode == "batch" else 5,
    )
    rec = Recorder()
    config = {"callbacks": [rec], "tags": ["t1"]}
    if mode == "invoke":
        result = chain.invoke(3, config)
    elif mode == "ainvoke":
        result = asyncio.run(chain.ainvoke(3, config))
    elif mode == "batch":
        result = chain.batch([3], config)[0]
    elif mode == "abatch":
        result = asyncio.run(chain.abatch([3], config))[0]
    elif mode == "stream":
        result = list(chain.stream(3, config))
    else:

        async def collect():
            return [c async for c in chain.astream(3, config)]

        result = asyncio.run(collect())
    assert result == ([3, 4] if streaming else 6)
    outer = [s for s in rec.starts if s[0] == "Resilientinner"]
    inner = [s for s in rec.starts if s[0] == "inner"]
    assert len(outer) == 1
    assert outer[0][2] is None  # the wrapper is the root chain run
    assert len(inner) == 3  # two failed attempts + the good one, all children of the wrapper
    assert all(parent == outer[0][1] for _, _, parent in inner)
    assert [a for a, _ in rec.retries] == [1, 2]
    assert all(run_id == outer[0][1] for _, run_id in rec.retries)


def test_fallbacks_and_breaker_open_falls_back():
    breaker = CircuitBreaker("fb", failure_threshold=1)
    chain = with_resilience(
        RunnableLambda(flaky_factory(100)),
        circuit_breaker=breaker,
        fallbacks=[RunnableLambda(lambda x: "fallback")],
    )
    assert chain.invoke(1) == "fallback"
    assert chain.invoke(1) == "fallback"  # breaker open now: straight to the fallback
    bare = with_resilience(RunnableLambda(flaky_factory(100)), circuit_breaker=breaker)
    with pytest.raises(CircuitOpenError):
        bare.invoke(1)
    streamed = with_resilience(
        RunnableLambda(gen_factory(100)), fallbacks=[RunnableLambda(lambda x: "fb")]
    )
    assert list(streamed.stream(1)) == ["fb"]


def test_stream_errors_after_first_chunk_are_not_retried():
    calls = {"n": 0}

    def gen(x):
        calls["n"] += 1
        yield 1
        raise TransientProviderError("dropped")

    chain = with_resilience(RunnableLambda(gen), retry=POLICY)
    got = []

    def consume() -> None:
        for chunk in chain.stream(0):
            got.append(chunk)

    with pytest.raises(TransientProviderError):
        consume()
    assert got == [1]
    assert calls["n"] == 1


async def test_timeout_becomes_retryable_timeout():
    async def slow(x):
        await asyncio.sleep(1)
        return x

    chain = with_resilience(
        RunnableLambda(slow), timeout=0.05, retry=RetryPolicy(max_attempts=2, base_delay=0.001)
    )
    from aipowertools.core.errors import ProviderTimeoutError

    with pytest.raises(ProviderTimeoutError):
        await chain.ainvoke(1)


def test_chat_rate_limiter_is_a_langchain_rate_limiter():
    from langchain_core.rate_limiters import BaseRateLimiter

    limiter = ChatRateLimiter(requests_per_minute=2, key="openai/gpt-4o")
    assert isinstance(limiter, BaseRateLimiter)
    assert limiter.acquire()
    assert asyncio.run(limiter.aacquire())
    assert limiter.acquire(blocking=False) is False
    assert asyncio.run(limiter.aacquire(blocking=False)) is False


def _open_breaker(name: str) -> CircuitBreaker:
    breaker = CircuitBreaker(name, failure_threshold=1)
    with pytest.raises(TransientProviderError):
        breaker.call(flaky_factory(1), 1)
    return breaker


@pytest.mark.parametrize("mode", ["invoke", "ainvoke", "stream", "astream"])
def test_open_breaker_gives_the_reservation_back(mode):
    limiter = RateLimiter(requests_per_minute=10, tokens_per_minute=1000)
    chain = with_resilience(
        RunnableLambda(agen_factory(0) if mode == "astream" else gen_factory(0)),
        rate_limiter=limiter,
        tokens=100,
        circuit_breaker=_open_breaker(f"open-{mode}"),
    )

    def run() -> None:
        if mode == "invoke":
            chain.invoke(1)
        elif mode == "ainvoke":
            asyncio.run(chain.ainvoke(1))
        elif mode == "stream":
            list(chain.stream(1))
        else:

            async def collect():
                return [c async for c in chain.astream(1)]

            asyncio.run(collect())

    with pytest.raises(CircuitOpenError):
        run()
    usage = limiter.get_stats("default").keys["default"].usage
    assert usage["requests_per_60s"][0] == 0  # never sent, so never counted
    assert usage["tokens_per_60s"][0] == 0


def test_empty_streams_and_async_errors_after_first_chunk():
    def empty(x):
        yield from ()

    async def aempty(x):
        if False:
            yield x

    assert list(with_resilience(RunnableLambda(empty)).stream(1)) == []

    async def collect(chain):
        return [c async for c in chain.astream(1)]

    assert asyncio.run(collect(with_resilience(RunnableLambda(aempty)))) == []

    async def broken(x):
        yield 1
        raise TransientProviderError("dropped")

    got: list[int] = []

    async def consume():
        async for c in with_resilience(RunnableLambda(broken), retry=POLICY).astream(0):
            got.append(c)

    with pytest.raises(TransientProviderError):
        asyncio.run(consume())
    assert got == [1]


def test_wrapper_types_and_bad_arguments():
    from aipowertools.core.errors import ConfigurationError
    from aipowertools.resilience.langchain import ResilientRunnable

    inner = RunnableLambda(lambda x: x)
    wrapped = ResilientRunnable(inner, name="custom")
    assert wrapped.InputType == inner.InputType
    assert wrapped.OutputType == inner.OutputType
    assert wrapped.name == "custom"
    with pytest.raises(ConfigurationError):
        with_resilience(lambda x: x)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        with_resilience(inner, timeout=0)
    with pytest.raises(ConfigurationError):
        ChatRateLimiter(RateLimiter(), requests_per_minute=1)
