"""@cached on plain sync and async functions."""

from __future__ import annotations

from pathlib import Path

import pytest

from aipowertools.cache import LLMCache, _decorator, cached
from aipowertools.core.errors import ConfigurationError


def test_sync_function_is_called_once_per_distinct_arguments() -> None:
    cache = LLMCache("memory://")
    calls: list[str] = []

    @cached(cache, ttl=3600)
    def summarize(text: str, *, style: str = "short") -> str:
        calls.append(text)
        return f"{style}: {text[:5]}"

    assert summarize("hello world") == summarize(text="hello world") == "short: hello"
    assert summarize("hello world", style="long") == "long: hello"
    assert calls == ["hello world", "hello world"]
    assert summarize.__name__ == "summarize"
    assert cache.stats().hits == 1


async def test_async_function_and_user_scope() -> None:
    cache = LLMCache("memory://")
    calls: list[str] = []

    @cached(cache, scope="user")
    async def answer(question: str, user: str) -> dict[str, str]:
        calls.append(user)
        return {"answer": question.upper(), "for": user}

    assert await answer("hi", user="ann") == {"answer": "HI", "for": "ann"}
    assert await answer("hi", user="ann") == {"answer": "HI", "for": "ann"}
    assert await answer("hi", user="bob") == {"answer": "HI", "for": "bob"}
    assert calls == ["ann", "bob"]


def test_exceptions_are_not_cached() -> None:
    cache = LLMCache("memory://")
    calls: list[int] = []

    @cached(cache)
    def flaky(x: int) -> int:
        calls.append(x)
        if len(calls) == 1:
            raise RuntimeError("provider down")
        return x

    with pytest.raises(RuntimeError):
        flaky(1)
    assert flaky(1) == 1
    assert flaky(1) == 1
    assert calls == [1, 1]


def test_default_cache_is_the_embedded_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIPOWERTOOLS_HOME", str(tmp_path))
    monkeypatch.delenv("AIPOWERTOOLS_STORE", raising=False)
    monkeypatch.setattr(_decorator, "_default", None)

    @cached()
    def double(x: int) -> int:
        return x * 2

    assert double(2) == double(2) == 4
    assert _decorator.default_cache().stats().hits == 1
    assert (tmp_path / "cache").is_dir()
    _decorator.default_cache().close()


def test_bad_arguments() -> None:
    with pytest.raises(ConfigurationError, match="ttl"):
        cached(ttl=-1)
    with pytest.raises(ConfigurationError, match="scope"):
        cached(scope="team")  # type: ignore[arg-type]
