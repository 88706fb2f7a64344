"""aipowertools.resilience: token-aware shared rate limits, retry and circuit breakers.

Example:
    >>> from aipowertools.resilience import RateLimiter
    >>> limiter = RateLimiter(requests_per_minute=60, tokens_per_minute=90_000)
    >>> limiter.try_acquire("gpt-4o", tokens=500) is not None
    True
"""

from importlib.metadata import version as _version

from aipowertools.resilience._adaptive import AdaptiveConfig
from aipowertools.resilience._breaker import (
    BreakerCall,
    CircuitBreaker,
    CircuitState,
    StateChange,
    circuit_breaker,
)
from aipowertools.resilience._handler import ErrorHandler
from aipowertools.resilience._limiter import KeyStats, LimiterStats, RateLimiter, Reservation
from aipowertools.resilience._limits import PRIORITIES, Limit
from aipowertools.resilience._quota import QuotaManager, QuotaStats, rate_limit
from aipowertools.resilience._request_queue import RequestQueue, RequestQueueStats
from aipowertools.resilience._retry import RetryEvent, RetryPolicy, retry

__version__ = _version("aipowertools-resilience")

__all__ = [
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
