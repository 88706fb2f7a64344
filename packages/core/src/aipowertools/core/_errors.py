"""Exception classes of the suite; the public face and the tree are in ``errors.py``."""

from __future__ import annotations

import enum
import re
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from collections.abc import Sequence


class ErrorKind(str, enum.Enum):
    """What went wrong with a provider call, as far as a caller's next move is concerned."""

    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    TRANSIENT = "transient"
    CONTEXT_WINDOW = "context_window"
    AUTHENTICATION = "authentication"
    CONTENT_POLICY = "content_policy"
    PERMANENT = "permanent"

    @property
    def retryable(self) -> bool:
        """Whether retrying the same call later may succeed (rate limits, timeouts, 5xx)."""
        return self in _RETRYABLE

    def __str__(self) -> str:
        return self.value


_RETRYABLE = frozenset({ErrorKind.RATE_LIMITED, ErrorKind.TIMEOUT, ErrorKind.TRANSIENT})


# password=... as a URL query parameter or a libpq keyword (quoted or not), any case.
_SECRET_PARAM = re.compile(
    r"(?i)\b((?:ssl)?pass(?:word|wd)?|pwd|secret|token|access_key|secret_key)"
    r"(\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s;]+)"
)


def mask_url(url: str) -> str:
    """Return ``url`` with every password replaced by ``***`` (user name and host kept).

    Covers ``scheme://user:password@host``, ``?password=...`` query parameters and libpq
    keyword strings (``host=h password='x y'``), so the result is safe for logs, reprs and
    error messages.
    """
    text = _SECRET_PARAM.sub(lambda m: f"{m[1]}{m[2]}***", url)
    try:
        parts = urlsplit(text)
        password = parts.password
    except ValueError:
        return text
    if not password:
        return text
    netloc = parts.netloc
    userinfo, _, hostinfo = netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostinfo}"))


class AIPowerToolsError(Exception):
    """Root of every exception raised by AI PowerTools."""


# --------------------------------------------------------------------------- usage errors


class ConfigurationError(AIPowerToolsError, ValueError):
    """A setting, argument or file is wrong; the message says which and how to fix it."""


class UnknownModelError(ConfigurationError, KeyError):
    """A model name is not in the catalog; ``suggestions`` lists close matches."""

    def __init__(self, model: str, suggestions: Sequence[str] = (), hint: str = "") -> None:
        self.model = model
        self.suggestions = tuple(suggestions)
        message = f"unknown model {model!r}"
        if self.suggestions:
            message += f"; did you mean {', '.join(repr(s) for s in self.suggestions)}?"
        message += (
            hint
            or " Add it with ModelCatalog.add(...) or a catalog file, giving its prices per token."
        )
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.model, self.suggestions), {"message": self.message})


class StoreURLError(ConfigurationError):
    """A store URL cannot be used (bad scheme, missing path, ...); the password is masked."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = mask_url(url)
        self.reason = reason
        super().__init__(f"bad store URL {self.url!r}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.url, self.reason))


# --------------------------------------------------------------------------- runtime errors


class StoreUnavailableError(AIPowerToolsError):
    """A store server (Redis, PostgreSQL, ...) did not answer; ``url`` has its password masked."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = mask_url(url)
        self.reason = reason
        super().__init__(
            f"store {self.url!r} is unavailable: {reason}. Check that the server is running "
            "and the URL (AIPOWERTOOLS_STORE) is right."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.url, self.reason))


class ProviderError(AIPowerToolsError):
    """A call to a model provider failed; ``kind`` says how, ``__cause__`` holds the original."""

    default_kind: ErrorKind = ErrorKind.PERMANENT

    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind | None = None,
        provider: str | None = None,
        model: str | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind if kind is not None else self.default_kind
        self.provider = provider
        self.model = model
        self.status_code = status_code
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_provider_error,
            (
                type(self),
                self.message,
                self.kind,
                self.provider,
                self.model,
                self.status_code,
                self.retry_after,
            ),
        )


def _rebuild_provider_error(
    cls: type[ProviderError],
    message: str,
    kind: ErrorKind,
    provider: str | None,
    model: str | None,
    status_code: int | None,
    retry_after: float | None,
) -> ProviderError:
    return cls(
        message,
        kind=kind,
        provider=provider,
        model=model,
        status_code=status_code,
        retry_after=retry_after,
    )


class RateLimitedError(ProviderError):
    """The provider refused the call for now (HTTP 429); wait ``retry_after`` seconds if set."""

    default_kind = ErrorKind.RATE_LIMITED


class ProviderTimeoutError(ProviderError):
    """The call took longer than its timeout."""

    default_kind = ErrorKind.TIMEOUT


class TransientProviderError(ProviderError):
    """A failure that may pass: 5xx, overload, dropped connection."""

    default_kind = ErrorKind.TRANSIENT


class ContextWindowExceededError(ProviderError):
    """The prompt (plus requested output) does not fit the model's context window."""

    default_kind = ErrorKind.CONTEXT_WINDOW


class AuthenticationError(ProviderError):
    """The API key is missing, wrong or lacks permission (HTTP 401/403)."""

    default_kind = ErrorKind.AUTHENTICATION


class ContentPolicyError(ProviderError):
    """The provider or a guardrail refused the content."""

    default_kind = ErrorKind.CONTENT_POLICY


class PermanentProviderError(ProviderError):
    """A failure that repeats on retry: bad request, unknown model, unsupported parameter."""

    default_kind = ErrorKind.PERMANENT


class BudgetExceededError(AIPowerToolsError):
    """A call would take spend in ``scope`` past its hard limit; it was not made."""

    def __init__(
        self, scope: str, limit_usd: float, spent_usd: float, requested_usd: float
    ) -> None:
        self.scope = scope
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd
        self.requested_usd = requested_usd
        super().__init__(
            f"budget {scope!r} exceeded: limit ${limit_usd:.6f}, spent or reserved "
            f"${spent_usd:.6f}, this call needs up to ${requested_usd:.6f}. Raise the limit, "
            "lower max_tokens, or pick a cheaper model."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.scope, self.limit_usd, self.spent_usd, self.requested_usd))


class CircuitOpenError(AIPowerToolsError):
    """The circuit breaker ``name`` is open; calls are refused until ``retry_at`` (epoch s)."""

    def __init__(self, name: str, retry_at: float) -> None:
        self.name = name
        self.retry_at = retry_at
        super().__init__(
            f"circuit {name!r} is open after repeated failures; it allows a trial call in "
            f"{self.retry_after:.1f} s. Use a fallback model meanwhile."
        )

    @property
    def retry_after(self) -> float:
        """Seconds from now until the breaker lets a trial call through (never negative)."""
        return max(0.0, self.retry_at - time.time())

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.name, self.retry_at))


class SessionConflictError(AIPowerToolsError):
    """A session was changed by someone else between read and write (optimistic locking)."""

    def __init__(self, session_id: str, key: str, expected: object, actual: object) -> None:
        self.session_id = session_id
        self.key = key
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"session {session_id!r}: {key!r} was {actual!r}, expected {expected!r}; another "
            "writer changed it. Reload the session and retry."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.session_id, self.key, self.expected, self.actual))


class RateLimitExceededError(AIPowerToolsError):
    """A non-waiting rate-limiter call found no capacity for ``key``; retry after a delay."""

    def __init__(self, key: str, retry_after: float | None) -> None:
        self.key = key
        self.retry_after = retry_after
        when = f" in {retry_after:.3f} s" if retry_after is not None else " later"
        super().__init__(f"rate limit {key!r} has no capacity now; try again{when}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.key, self.retry_after))


KIND_TO_ERROR: dict[ErrorKind, type[ProviderError]] = {
    ErrorKind.RATE_LIMITED: RateLimitedError,
    ErrorKind.TIMEOUT: ProviderTimeoutError,
    ErrorKind.TRANSIENT: TransientProviderError,
    ErrorKind.CONTEXT_WINDOW: ContextWindowExceededError,
    ErrorKind.AUTHENTICATION: AuthenticationError,
    ErrorKind.CONTENT_POLICY: ContentPolicyError,
    ErrorKind.PERMANENT: PermanentProviderError,
}
