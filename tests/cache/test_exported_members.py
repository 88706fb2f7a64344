import aipowertools.cache as cache


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
    for name in cache.__all__:
        assert hasattr(cache, name)
