import aipowertools.cache as cache
import aipowertools.cache.langchain as lc
import aipowertools.cache.llama_index as li


def test_public_api_is_locked() -> None:
    assert cache.__all__ == [
        "Answer",
        "CacheHit",
        "CacheStats",
        "LLMCache",
        "ResponseCache",
        "__version__",
        "cached",
    ]
    assert lc.__all__ == ["LangChainCache"]
    assert li.__all__ == ["CachedLLM"]
    for module in (cache, lc, li):
        for name in module.__all__:
            assert hasattr(module, name)


def test_llm_cache_implements_the_router_protocol() -> None:
    assert isinstance(cache.LLMCache("memory://"), cache.ResponseCache)
    assert not isinstance(object(), cache.ResponseCache)
