import aipowertools.resilience as resilience
import aipowertools.resilience.langchain as lc
import aipowertools.resilience.llama_index as li


def test_public_api_is_exactly_this():
    assert resilience.__all__ == [
        "PRIORITIES",
        "AdaptiveConfig",
        "BreakerCall",
        "CircuitBreaker",
        "CircuitState",
        "ErrorHandler",
        "KeyStats",
        "Limit",
        "LimiterStats",
        "QuotaManager",
        "QuotaStats",
        "RateLimiter",
        "RequestQueue",
        "RequestQueueStats",
        "Reservation",
        "RetryEvent",
        "RetryPolicy",
        "StateChange",
        "__version__",
        "circuit_breaker",
        "rate_limit",
        "retry",
    ]
    for name in resilience.__all__:
        assert hasattr(resilience, name)
    assert lc.__all__ == [
        "ChatRateLimiter",
        "ResilienceMiddleware",
        "ResilientChatModel",
        "ResilientRunnable",
        "with_resilience",
    ]
    assert li.__all__ == ["LlamaRateLimiter", "ResilientLLM"]


def test_importing_the_package_pulls_in_no_framework():
    import subprocess
    import sys

    code = (
        "import sys, aipowertools.resilience; "
        "print(any(m.split('.')[0] in ('langchain_core', 'llama_index', 'litellm') "
        "for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
