"""``ErrorHandler``: the seed's namespace, as aliases of the core taxonomy and our decorators."""

from __future__ import annotations

from aipowertools.core import errors as _e
from aipowertools.resilience._breaker import CircuitBreaker, circuit_breaker
from aipowertools.resilience._retry import retry


class ErrorHandler:
    """One place to reach retry, circuit breaking and the error classes.

    ``PermanentError`` is a tuple of every kind that retrying cannot fix (usable in
    ``except`` and ``isinstance``).

    Example:
        >>> @ErrorHandler.retry(max_attempts=3)
        ... def call() -> str:
        ...     return "ok"
        >>> call()
        'ok'
        >>> isinstance(ErrorHandler.RateLimitError("429"), ErrorHandler.ProviderError)
        True
    """

    retry = staticmethod(retry)
    circuit_breaker = staticmethod(circuit_breaker)
    CircuitBreaker = CircuitBreaker
    classify = staticmethod(_e.classify)
    retry_after_seconds = staticmethod(_e.retry_after_seconds)
    ErrorKind = _e.ErrorKind
    Error = _e.AIPowerToolsError
    ProviderError = _e.ProviderError
    RateLimitError = _e.RateLimitedError
    TimeoutError = _e.ProviderTimeoutError
    TransientError = _e.TransientProviderError
    ContextWindowError = _e.ContextWindowExceededError
    AuthenticationError = _e.AuthenticationError
    ContentPolicyError = _e.ContentPolicyError
    PermanentError = (
        _e.PermanentProviderError,
        _e.AuthenticationError,
        _e.ContentPolicyError,
        _e.ContextWindowExceededError,
    )
    CircuitOpenError = _e.CircuitOpenError
    RateLimitExceededError = _e.RateLimitExceededError
