"""Classify any provider-call exception into an :class:`ErrorKind`, read retry-after hints.

Nothing here imports litellm, openai, anthropic or httpx: exceptions are recognised by the
name and top-level module of each class in their MRO, so classifying is cheap and works
whichever of those libraries happen to be installed.
"""

from __future__ import annotations

import email.utils
import re
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from aipowertools.core._errors import (
    KIND_TO_ERROR,
    AIPowerToolsError,
    CircuitOpenError,
    ErrorKind,
    ProviderError,
    RateLimitExceededError,
    StoreUnavailableError,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

K = ErrorKind
_BY_STATUS = None  # marker in the tables: decide from the HTTP status code

# Libraries whose exception classes we recognise by name. A class from any other module is
# only recognised through its bases (or builtin bases such as TimeoutError).
_KNOWN_ROOTS = frozenset(
    {
        "litellm",
        "openai",
        "anthropic",
        "httpx",
        "httpcore",
        "httpx2",  # the anthropic SDK's fork of httpx
        "httpcore2",
        "aiohttp",
        "requests",
        "urllib3",
    }
)

_BY_NAME: dict[str, ErrorKind | None] = {
    # timeouts
    "Timeout": K.TIMEOUT,
    "APITimeoutError": K.TIMEOUT,
    "TimeoutException": K.TIMEOUT,
    "ConnectTimeout": K.TIMEOUT,
    "ReadTimeout": K.TIMEOUT,
    "WriteTimeout": K.TIMEOUT,
    "PoolTimeout": K.TIMEOUT,
    "DeadlineExceededError": K.TIMEOUT,
    "RequestTimeoutError": K.TIMEOUT,
    "GatewayTimeoutError": K.TIMEOUT,
    "ServerTimeoutError": K.TIMEOUT,
    "ConnectTimeoutError": K.TIMEOUT,
    "ReadTimeoutError": K.TIMEOUT,
    # rate limits
    "RateLimitError": K.RATE_LIMITED,
    "RampLimitExceededError": K.RATE_LIMITED,
    "TooManyRequests": K.RATE_LIMITED,
    # transient: connection trouble, 5xx, overload, garbled replies
    "APIConnectionError": K.TRANSIENT,
    "InternalServerError": K.TRANSIENT,
    "ServiceUnavailableError": K.TRANSIENT,
    "BadGatewayError": K.TRANSIENT,
    "MidStreamFallbackError": K.TRANSIENT,
    "OverloadedError": K.TRANSIENT,
    "RetryableError": K.TRANSIENT,
    "ConflictError": K.TRANSIENT,  # the SDKs retry 409 too
    "ClientClosedRequestError": K.TRANSIENT,
    "APIResponseValidationError": K.TRANSIENT,
    "JSONSchemaValidationError": K.TRANSIENT,
    "WebSocketConnectionClosedError": K.TRANSIENT,
    "WebSocketQueueFullError": K.TRANSIENT,
    "ConnectError": K.TRANSIENT,
    "ReadError": K.TRANSIENT,
    "WriteError": K.TRANSIENT,
    "CloseError": K.TRANSIENT,
    "NetworkError": K.TRANSIENT,
    "RemoteProtocolError": K.TRANSIENT,
    "ProtocolError": K.TRANSIENT,
    "TransportError": K.TRANSIENT,
    "ConnectionNotAvailable": K.TRANSIENT,
    "ProxyError": K.TRANSIENT,
    "DecodingError": K.TRANSIENT,
    "ClientConnectionError": K.TRANSIENT,
    "ServerDisconnectedError": K.TRANSIENT,
    "ClientPayloadError": K.TRANSIENT,
    "ConnectionError": K.TRANSIENT,
    # context window
    "ContextWindowExceededError": K.CONTEXT_WINDOW,
    # authentication / permission
    "AuthenticationError": K.AUTHENTICATION,
    "PermissionDeniedError": K.AUTHENTICATION,
    "CredentialsError": K.AUTHENTICATION,
    "OAuthError": K.AUTHENTICATION,
    "IdentityTokenFileError": K.AUTHENTICATION,
    "WorkloadIdentityError": K.AUTHENTICATION,
    "SubjectTokenProviderError": K.AUTHENTICATION,
    # content policy and guardrails
    "ContentPolicyViolationError": K.CONTENT_POLICY,
    "ContentFilterFinishReasonError": K.CONTENT_POLICY,
    "GuardrailRaisedException": K.CONTENT_POLICY,
    "BlockedPiiEntityError": K.CONTENT_POLICY,
    "RejectedRequestError": K.CONTENT_POLICY,
    "SensitiveDataRouteException": K.CONTENT_POLICY,
    # permanent: the same request fails the same way again
    "BadRequestError": K.PERMANENT,
    "InvalidRequestError": K.PERMANENT,
    "NotFoundError": K.PERMANENT,
    "UnprocessableEntityError": K.PERMANENT,
    "UnsupportedParamsError": K.PERMANENT,
    "ImageFetchError": K.PERMANENT,
    "LiteLLMUnknownProvider": K.PERMANENT,
    "ModelNotMappedError": K.PERMANENT,
    "BudgetExceededError": K.PERMANENT,
    "PaymentRequiredError": K.PERMANENT,
    "VectorStoreSearchError": K.PERMANENT,
    "ModifyResponseException": K.PERMANENT,
    "LengthFinishReasonError": K.PERMANENT,
    "InvalidWebhookSignatureError": K.PERMANENT,
    "APIWebhookValidationError": K.PERMANENT,
    "HTTPNotImplementedError": K.PERMANENT,
    "PreconditionFailedError": K.PERMANENT,
    "RequestTooLargeError": K.PERMANENT,
    "ContentTooLargeError": K.PERMANENT,
    "RequestHeaderFieldsTooLargeError": K.PERMANENT,
    "InvalidURL": K.PERMANENT,
    "UnsupportedProtocol": K.PERMANENT,
    "LocalProtocolError": K.PERMANENT,
    "TooManyRedirects": K.PERMANENT,
    "StreamError": K.PERMANENT,
    "InvalidURLError": K.PERMANENT,
    # generic bases: the status code decides
    "APIError": _BY_STATUS,
    "APIStatusError": _BY_STATUS,
    "HTTPStatusError": _BY_STATUS,
    "HTTPError": _BY_STATUS,
    "OpenAIError": _BY_STATUS,
    "AnthropicError": _BY_STATUS,
    "MockException": _BY_STATUS,
    "ClientResponseError": _BY_STATUS,
    "RequestError": _BY_STATUS,
}

_CONTEXT_PATTERNS = re.compile(
    r"context[_ ]length[_ ]exceeded|context window|maximum context length|prompt is too long"
    r"|too many (input )?tokens|input is too long|exceeds? the (model'?s? )?context"
    r"|reduce the length of the messages|string_above_max_length",
    re.IGNORECASE,
)
_CONTENT_PATTERNS = re.compile(
    r"content[_ ]policy|content management policy|content_filter|responsible ?ai policy"
    r"|flagged by|safety (system|filter)|blocked by (the )?(safety|guardrail)",
    re.IGNORECASE,
)
_QUOTA_PATTERNS = re.compile(r"insufficient_quota|exceeded your current quota", re.IGNORECASE)


def _status_kind(status: int | None) -> ErrorKind:
    if status is None:
        return K.PERMANENT
    if status in (408, 504):
        return K.TIMEOUT
    if status == 429:
        return K.RATE_LIMITED
    if status in (401, 403):
        return K.AUTHENTICATION
    if status in (409, 425, 499) or status >= 500:
        return K.TRANSIENT
    return K.PERMANENT


def status_code_of(exc: BaseException) -> int | None:
    """The HTTP status code carried by ``exc`` (``status_code`` or ``response.status_code``)."""
    for candidate in (getattr(exc, "status_code", None), getattr(exc, "status", None)):
        if isinstance(candidate, int) and not isinstance(candidate, bool):
            return candidate
    response = _safe_getattr(exc, "response")
    status = getattr(response, "status_code", None)
    if isinstance(status, int) and not isinstance(status, bool):
        return status
    return None


def _safe_getattr(obj: object, name: str) -> Any:
    try:
        return getattr(obj, name, None)
    except Exception:  # some SDK properties raise when the response is absent
        return None


def _by_class(exc: BaseException) -> tuple[bool, ErrorKind | None]:
    """Look ``exc``'s classes up by name; (found, kind-or-None-for-status)."""
    for cls in type(exc).__mro__:
        root = cls.__module__.partition(".")[0]
        if root in _KNOWN_ROOTS and cls.__name__ in _BY_NAME:
            return True, _BY_NAME[cls.__name__]
    return False, None


def _own_kind(exc: BaseException) -> ErrorKind | None:
    if isinstance(exc, ProviderError):
        return exc.kind
    if isinstance(exc, RateLimitExceededError):
        return K.RATE_LIMITED
    if isinstance(exc, (CircuitOpenError, StoreUnavailableError)):
        return K.TRANSIENT
    if isinstance(exc, AIPowerToolsError):  # budget, configuration, session conflict
        return K.PERMANENT
    return None


def _builtin_kind(exc: BaseException) -> ErrorKind | None:
    # asyncio.TimeoutError and concurrent.futures.TimeoutError are not the builtin on 3.10
    if isinstance(exc, TimeoutError) or type(exc).__name__ == "TimeoutError":
        return K.TIMEOUT
    if isinstance(exc, ConnectionError):
        return K.TRANSIENT
    return None


def _refine(kind: ErrorKind, exc: BaseException) -> ErrorKind:
    """Look inside bad requests and 429s: context window, content policy, exhausted quota."""
    code = getattr(exc, "code", None)
    text = f"{code} {_safe_str(exc)} {_body_text(exc)}"
    if kind is K.PERMANENT:
        if _CONTEXT_PATTERNS.search(text):
            return K.CONTEXT_WINDOW
        if _CONTENT_PATTERNS.search(text):
            return K.CONTENT_POLICY
    elif kind is K.RATE_LIMITED and _QUOTA_PATTERNS.search(text):
        return K.PERMANENT  # out of credit: waiting will not help
    return kind


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return ""


def _body_text(exc: BaseException) -> str:
    body = _safe_getattr(exc, "body")
    return "" if body is None else str(body)[:2000]


def _wrapped(exc: BaseException) -> Iterator[BaseException]:
    """Exceptions wrapped by ``exc``: tenacity's last attempt, group members, cause, context."""
    last_attempt = _safe_getattr(exc, "last_attempt")
    if last_attempt is not None and callable(getattr(last_attempt, "exception", None)):
        try:
            inner = last_attempt.exception()
        except BaseException:  # a cancelled future raises here
            inner = None
        if isinstance(inner, BaseException):
            yield inner
    members = _safe_getattr(exc, "exceptions")
    if isinstance(members, (tuple, list)):
        yield from (m for m in members if isinstance(m, BaseException))
    if exc.__cause__ is not None:
        yield exc.__cause__
    if exc.__context__ is not None and not exc.__suppress_context__:
        yield exc.__context__


def _classify(exc: BaseException, seen: set[int]) -> ErrorKind | None:
    seen.add(id(exc))
    own = _own_kind(exc)
    if own is not None:
        return own
    found, kind = _by_class(exc)
    if found:
        if kind is None:
            kind = _status_kind(status_code_of(exc))
        return _refine(kind, exc)
    builtin = _builtin_kind(exc)
    if builtin is not None:
        return builtin
    status = status_code_of(exc)
    if status is not None:  # an unknown wrapper that still carries a status code
        return _refine(_status_kind(status), exc)
    for inner in _wrapped(exc):
        if id(inner) not in seen and len(seen) < 16:
            kind = _classify(inner, seen)
            if kind is not None:
                return kind
    return None


def classify(exc: BaseException) -> ErrorKind:
    """Classify an exception from a model call into an :class:`ErrorKind`.

    Recognises litellm's exceptions, the openai and anthropic SDKs' (by status code), httpx /
    httpcore / aiohttp transport errors, builtin and asyncio timeouts, ``ConnectionError``,
    this package's own errors, and wrappers (tenacity's ``RetryError``, exception groups,
    chained ``__cause__``). Bad requests whose message names the context window or a content
    policy are classified as such; a 429 for an exhausted quota is permanent. Anything else
    is :attr:`ErrorKind.PERMANENT`, so that unknown failures are not retried blindly.

    Args:
        exc: The exception to classify.

    Returns:
        The kind of failure; ``kind.retryable`` tells whether trying again may help.

    Example:
        >>> classify(TimeoutError())
        <ErrorKind.TIMEOUT: 'timeout'>
    """
    kind = _classify(exc, set())
    return kind if kind is not None else K.PERMANENT


# --------------------------------------------------------------------------- retry-after


def _headers_of(exc: BaseException) -> Iterator[Mapping[str, str]]:
    for candidate in (
        _safe_getattr(exc, "litellm_response_headers"),
        _safe_getattr(_safe_getattr(exc, "response"), "headers"),
        _safe_getattr(exc, "headers"),
    ):
        items = getattr(candidate, "items", None)
        if callable(items):
            try:
                yield {str(k).lower(): str(v) for k, v in items()}
            except Exception:  # a foreign mapping we cannot iterate
                continue


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_DURATIONS = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|h|m|s))+")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(value: str, *, now: float | None = None) -> float | None:
    """Seconds from a header value: seconds, ``6m0s`` / ``20ms``, HTTP date or RFC 3339 time."""
    value = value.strip()
    if not value:
        return None
    now = time.time() if now is None else now
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        if number != number or number < 0:  # NaN or negative: unusable
            return None
        return max(0.0, number - now) if number > 1e9 else number  # epoch seconds vs delta
    if _DURATIONS.fullmatch(value):
        return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION.findall(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - now)


def _ratelimit_reset(headers: Mapping[str, str]) -> float | None:
    """Seconds until an exhausted ``x-ratelimit-*`` / ``anthropic-ratelimit-*`` window resets."""
    exhausted: list[float] = []
    every: list[float] = []
    for name, value in headers.items():
        if not name.endswith("reset") and "-reset" not in name:
            continue
        if not (name.startswith("x-ratelimit-") or name.startswith("anthropic-ratelimit-")):
            continue
        seconds = parse_duration(value)
        if seconds is None:
            continue
        every.append(seconds)
        remaining = headers.get(name.replace("reset", "remaining"))
        if remaining is not None and remaining.strip() in ("0", "0.0"):
            exhausted.append(seconds)
    chosen = exhausted or every
    return max(chosen) if chosen else None


def retry_after_seconds(exc: BaseException) -> float | None:
    """How long to wait before retrying, from the exception or its response headers.

    Reads, in order: our own errors' ``retry_after``; ``retry-after-ms``; ``Retry-After``
    (seconds or an HTTP date); and, for rate-limit errors, the reset time of an exhausted
    ``x-ratelimit-reset-*`` / ``anthropic-ratelimit-*-reset`` window. Headers are looked for on
    ``exc.litellm_response_headers``, ``exc.response.headers`` and ``exc.headers``, and on the
    exceptions ``exc`` wraps.

    Args:
        exc: The exception raised by a model call.

    Returns:
        Seconds to wait (>= 0), or ``None`` when the provider gave no hint.
    """
    return _retry_after(exc, set())


def _retry_after(exc: BaseException, seen: set[int]) -> float | None:
    seen.add(id(exc))
    if isinstance(exc, (ProviderError, RateLimitExceededError)) and exc.retry_after is not None:
        return exc.retry_after
    if isinstance(exc, CircuitOpenError):
        return exc.retry_after
    all_headers = list(_headers_of(exc))
    for header in ("retry-after-ms", "retry-after"):
        for headers in all_headers:
            if header in headers:
                seconds = parse_duration(headers[header])
                if seconds is not None:
                    return seconds / 1000.0 if header == "retry-after-ms" else seconds
    if all_headers and classify(exc) is K.RATE_LIMITED:
        resets = [r for r in map(_ratelimit_reset, all_headers) if r is not None]
        if resets:
            return max(resets)
    for inner in _iter_unseen(_wrapped(exc), seen):
        found = _retry_after(inner, seen)
        if found is not None:
            return found
    return None


def _iter_unseen(items: Iterable[BaseException], seen: set[int]) -> Iterator[BaseException]:
    for item in items:
        if id(item) not in seen and len(seen) < 16:
            yield item


def _provider_and_model(exc: BaseException) -> tuple[str | None, str | None]:
    provider = getattr(exc, "llm_provider", None) or getattr(exc, "provider", None)
    model = getattr(exc, "model", None)
    return (
        provider if isinstance(provider, str) and provider else None,
        model if isinstance(model, str) and model else None,
    )


_ADVICE = {
    K.RATE_LIMITED: "wait and retry, or lower the request rate",
    K.TIMEOUT: "retry, or raise the timeout",
    K.TRANSIENT: "retry with backoff or fail over to another model",
    K.CONTEXT_WINDOW: "shorten the prompt or pick a model with a larger context window",
    K.AUTHENTICATION: "check the API key and its permissions",
    K.CONTENT_POLICY: "change the content; retrying the same request will not help",
    K.PERMANENT: "fix the request; retrying it unchanged will not help",
}


def as_provider_error(
    exc: BaseException, *, provider: str | None = None, model: str | None = None
) -> ProviderError:
    """Wrap ``exc`` in the :class:`ProviderError` subclass matching its kind.

    A :class:`ProviderError` is returned as is (its missing ``provider`` / ``model`` filled
    in). Otherwise the result carries the kind, status code, retry-after and, as
    ``__cause__``, the original exception; raise it with ``raise err from exc``.

    Args:
        exc: The exception raised by a model call.
        provider: Provider name, when the exception does not carry it (litellm's do).
        model: Model name, likewise.

    Returns:
        A typed provider error; ``err.kind.retryable`` says whether to retry.
    """
    if isinstance(exc, ProviderError):
        exc.provider = exc.provider or provider
        exc.model = exc.model or model
        return exc
    kind = classify(exc)
    found_provider, found_model = _provider_and_model(exc)
    provider = provider or found_provider
    model = model or found_model
    where = "/".join(p for p in (provider, model) if p) or "provider"
    detail = _safe_str(exc).strip() or type(exc).__name__
    if len(detail) > 500:
        detail = detail[:500] + "..."
    message = f"{where}: {kind.value} ({type(exc).__name__}: {detail}); {_ADVICE[kind]}"
    error = KIND_TO_ERROR[kind](
        message,
        kind=kind,
        provider=provider,
        model=model,
        status_code=status_code_of(exc),
        retry_after=retry_after_seconds(exc),
    )
    error.__cause__ = exc
    return error
