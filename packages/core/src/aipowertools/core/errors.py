"""Every exception AI PowerTools raises, and one classifier for everyone else's.

Usage errors (fix the code or the configuration) are kept apart from runtime errors (the
world failed: a provider, a store, a budget)::

    AIPowerToolsError
    ├── ConfigurationError (also ValueError) ........ a setting, argument or file is wrong
    │   ├── UnknownModelError (also KeyError) ....... model not in the catalog; close matches
    │   └── StoreURLError ........................... store URL unusable (password masked)
    ├── StoreUnavailableError ....................... Redis / PostgreSQL did not answer
    ├── ProviderError ............................... a model call failed: kind, provider,
    │   │                                             model, status_code, retry_after
    │   ├── RateLimitedError ........................ 429; wait retry_after seconds
    │   ├── ProviderTimeoutError .................... the call timed out
    │   ├── TransientProviderError .................. 5xx, overload, dropped connection
    │   ├── ContextWindowExceededError .............. prompt too long for the model
    │   ├── AuthenticationError ..................... bad or missing key, 401 / 403
    │   ├── ContentPolicyError ...................... refused by a content policy
    │   └── PermanentProviderError .................. bad request; retrying will not help
    ├── BudgetExceededError ......................... a hard budget would be overspent
    ├── CircuitOpenError ............................ a circuit breaker refuses calls for now
    ├── SessionConflictError ........................ concurrent writers changed a session
    └── RateLimitExceededError ...................... a non-waiting limiter found no capacity

:func:`classify` maps any exception (litellm, openai, anthropic, httpx, timeouts, wrappers)
to an :class:`ErrorKind`; :func:`retry_after_seconds` reads how long to wait;
:func:`as_provider_error` wraps a foreign exception in the matching :class:`ProviderError`.

Example:
    >>> from aipowertools.core.errors import classify, ErrorKind
    >>> kind = classify(TimeoutError("read timed out"))
    >>> kind is ErrorKind.TIMEOUT and kind.retryable
    True
"""

from __future__ import annotations

from aipowertools.core._classify import as_provider_error, classify, retry_after_seconds
from aipowertools.core._errors import (
    AIPowerToolsError,
    AuthenticationError,
    BudgetExceededError,
    CircuitOpenError,
    ConfigurationError,
    ContentPolicyError,
    ContextWindowExceededError,
    ErrorKind,
    PermanentProviderError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    RateLimitExceededError,
    SessionConflictError,
    StoreUnavailableError,
    StoreURLError,
    TransientProviderError,
    UnknownModelError,
)

__all__ = [
    "AIPowerToolsError",
    "AuthenticationError",
    "BudgetExceededError",
    "CircuitOpenError",
    "ConfigurationError",
    "ContentPolicyError",
    "ContextWindowExceededError",
    "ErrorKind",
    "PermanentProviderError",
    "ProviderError",
    "ProviderTimeoutError",
    "RateLimitExceededError",
    "RateLimitedError",
    "SessionConflictError",
    "StoreURLError",
    "StoreUnavailableError",
    "TransientProviderError",
    "UnknownModelError",
    "as_provider_error",
    "classify",
    "retry_after_seconds",
]
