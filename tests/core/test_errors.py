from __future__ import annotations

import asyncio
import builtins
import email.utils
import inspect
import pickle
import sys
import time

import anthropic
import httpx
import httpx2
import openai
import pytest

from aipowertools.core import errors, litellm
from aipowertools.core._classify import _BY_NAME, parse_duration
from aipowertools.core.errors import (
    AIPowerToolsError,
    BudgetExceededError,
    CircuitOpenError,
    ConfigurationError,
    ContextWindowExceededError,
    ErrorKind,
    PermanentProviderError,
    ProviderError,
    RateLimitedError,
    RateLimitExceededError,
    SessionConflictError,
    StoreUnavailableError,
    StoreURLError,
    TransientProviderError,
    UnknownModelError,
    as_provider_error,
    classify,
    retry_after_seconds,
)

K = ErrorKind
REQUEST = httpx.Request("POST", "https://api.example.test/v1/chat/completions")
A_REQUEST = httpx2.Request("POST", "https://api.example.test/v1/messages")


def response(status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, headers=headers or {}, request=REQUEST)


def a_response(status: int, headers: dict[str, str] | None = None) -> httpx2.Response:
    """A response of httpx2, the fork of httpx the anthropic SDK is built on."""
    return httpx2.Response(status, headers=headers or {}, request=A_REQUEST)


# Expected kind of every exception class litellm exports. A new litellm class fails this test
# until someone decides how to classify it.
LITELLM_EXPECTED = {
    "APIConnectionError": K.TRANSIENT,
    "APIError": K.TRANSIENT,  # status 500 below
    "APIResponseValidationError": K.TRANSIENT,
    "AuthenticationError": K.AUTHENTICATION,
    "BadGatewayError": K.TRANSIENT,
    "BadRequestError": K.PERMANENT,
    "BlockedPiiEntityError": K.CONTENT_POLICY,
    "BudgetExceededError": K.PERMANENT,
    "ContentPolicyViolationError": K.CONTENT_POLICY,
    "ContextWindowExceededError": K.CONTEXT_WINDOW,
    "GuardrailRaisedException": K.CONTENT_POLICY,
    "ImageFetchError": K.PERMANENT,
    "InternalServerError": K.TRANSIENT,
    "InvalidRequestError": K.PERMANENT,
    "JSONSchemaValidationError": K.TRANSIENT,
    "LiteLLMUnknownProvider": K.PERMANENT,
    "MidStreamFallbackError": K.TRANSIENT,
    "MockException": K.TRANSIENT,  # status 500 below
    "ModelNotMappedError": K.PERMANENT,
    "ModifyResponseException": K.PERMANENT,
    "NotFoundError": K.PERMANENT,
    "OpenAIError": K.TRANSIENT,  # status 500 below
    "PaymentRequiredError": K.PERMANENT,
    "PermissionDeniedError": K.AUTHENTICATION,
    "RateLimitError": K.RATE_LIMITED,
    "RejectedRequestError": K.CONTENT_POLICY,
    "SensitiveDataRouteException": K.CONTENT_POLICY,
    "ServiceUnavailableError": K.TRANSIENT,
    "Timeout": K.TIMEOUT,
    "UnprocessableEntityError": K.PERMANENT,
    "UnsupportedParamsError": K.PERMANENT,
    "VectorStoreSearchError": K.PERMANENT,
}


def litellm_exception_classes() -> dict[str, type[BaseException]]:
    module = litellm().exceptions
    return {
        name: cls
        for name, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__.startswith("litellm")
    }


def test_every_litellm_exception_class_is_mapped() -> None:
    classes = litellm_exception_classes()
    assert set(classes) == set(LITELLM_EXPECTED), "litellm added or removed exception classes"
    for name, cls in classes.items():
        assert name in _BY_NAME, f"{name} has no entry in the classification table"
        exc = Exception.__new__(cls)  # bypass each class's own constructor signature
        exc.status_code = 500  # type: ignore[attr-defined]
        assert classify(exc) is LITELLM_EXPECTED[name], name


def test_real_litellm_exceptions_with_headers() -> None:
    lt = litellm()
    exc = lt.RateLimitError(message="slow down", llm_provider="openai", model="gpt-4o")
    exc.litellm_response_headers = httpx.Headers({"Retry-After": "7"})
    assert classify(exc) is K.RATE_LIMITED
    assert retry_after_seconds(exc) == 7.0
    wrapped = as_provider_error(exc)
    assert isinstance(wrapped, RateLimitedError)
    assert (wrapped.provider, wrapped.model, wrapped.retry_after) == ("openai", "gpt-4o", 7.0)
    assert wrapped.status_code == 429
    assert wrapped.__cause__ is exc
    assert "openai/gpt-4o" in str(wrapped)
    assert "retry" in str(wrapped)

    cw = lt.ContextWindowExceededError(message="too long", model="gpt-4o", llm_provider="openai")
    assert isinstance(as_provider_error(cw), ContextWindowExceededError)
    timeout = lt.Timeout(message="took too long", model="gpt-4o", llm_provider="openai")
    assert classify(timeout) is K.TIMEOUT
    # a BadRequest that litellm did not recognise as a context-window error
    bad = lt.BadRequestError(
        message="This model's maximum context length is 8192 tokens", model="x", llm_provider="y"
    )
    assert classify(bad) is K.CONTEXT_WINDOW


@pytest.mark.parametrize(
    ("status", "cls_name", "expected"),
    [
        (400, "BadRequestError", K.PERMANENT),
        (401, "AuthenticationError", K.AUTHENTICATION),
        (403, "PermissionDeniedError", K.AUTHENTICATION),
        (404, "NotFoundError", K.PERMANENT),
        (409, "ConflictError", K.TRANSIENT),
        (422, "UnprocessableEntityError", K.PERMANENT),
        (429, "RateLimitError", K.RATE_LIMITED),
        (500, "InternalServerError", K.TRANSIENT),
    ],
)
def test_openai_sdk_errors(status: int, cls_name: str, expected: ErrorKind) -> None:
    cls = getattr(openai, cls_name)
    exc = cls("boom", response=response(status), body=None)
    assert classify(exc) is expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (408, K.TIMEOUT),
        (418, K.PERMANENT),
        (425, K.TRANSIENT),
        (503, K.TRANSIENT),
        (504, K.TIMEOUT),
        (529, K.TRANSIENT),
    ],
)
def test_generic_status_errors_decide_by_status(status: int, expected: ErrorKind) -> None:
    exc = openai.APIStatusError("boom", response=response(status), body=None)
    assert classify(exc) is expected
    http = httpx.HTTPStatusError("boom", request=REQUEST, response=response(status))
    assert classify(http) is expected


def test_openai_special_cases() -> None:
    quota = openai.RateLimitError(
        "You exceeded your current quota",
        response=response(429),
        body={"code": "insufficient_quota"},
    )
    assert classify(quota) is K.PERMANENT
    ctx = openai.BadRequestError(
        "Error code: 400", response=response(400), body={"code": "context_length_exceeded"}
    )
    assert classify(ctx) is K.CONTEXT_WINDOW
    policy = openai.BadRequestError(
        "Your request was rejected by our content management policy",
        response=response(400),
        body=None,
    )
    assert classify(policy) is K.CONTENT_POLICY
    assert classify(openai.APITimeoutError(request=REQUEST)) is K.TIMEOUT
    assert classify(openai.APIConnectionError(request=REQUEST)) is K.TRANSIENT


def test_anthropic_sdk_errors() -> None:
    overloaded = anthropic.InternalServerError("overloaded", response=a_response(529), body=None)
    assert classify(overloaded) is K.TRANSIENT
    too_long = anthropic.BadRequestError(
        "prompt is too long: 210000 tokens > 200000 maximum", response=a_response(400), body=None
    )
    assert classify(too_long) is K.CONTEXT_WINDOW
    limited = anthropic.RateLimitError(
        "rate limited", response=a_response(429, {"retry-after": "3"}), body=None
    )
    assert classify(limited) is K.RATE_LIMITED
    assert retry_after_seconds(limited) == 3.0
    assert classify(anthropic.APITimeoutError(request=A_REQUEST)) is K.TIMEOUT
    assert classify(httpx2.ReadTimeout("slow", request=A_REQUEST)) is K.TIMEOUT
    assert classify(httpx2.ConnectError("refused")) is K.TRANSIENT


def test_httpx_and_builtin_errors() -> None:
    assert classify(httpx.ReadTimeout("slow", request=REQUEST)) is K.TIMEOUT
    assert classify(httpx.ConnectTimeout("slow")) is K.TIMEOUT
    assert classify(httpx.ConnectError("refused")) is K.TRANSIENT
    assert classify(httpx.RemoteProtocolError("dropped")) is K.TRANSIENT
    assert classify(httpx.UnsupportedProtocol("ftp")) is K.PERMANENT
    assert classify(asyncio.TimeoutError()) is K.TIMEOUT
    assert classify(TimeoutError()) is K.TIMEOUT
    assert classify(ConnectionRefusedError()) is K.TRANSIENT
    assert classify(ValueError("nope")) is K.PERMANENT
    assert classify(KeyboardInterrupt()) is K.PERMANENT


def test_own_errors_classify() -> None:
    assert classify(RateLimitedError("x", retry_after=2.0)) is K.RATE_LIMITED
    assert classify(ProviderError("x", kind=K.TIMEOUT)) is K.TIMEOUT
    assert classify(ProviderError("x")) is K.PERMANENT
    assert classify(RateLimitExceededError("k", 1.0)) is K.RATE_LIMITED
    assert classify(CircuitOpenError("c", time.time() + 5)) is K.TRANSIENT
    assert classify(StoreUnavailableError("redis://h", "refused")) is K.TRANSIENT
    assert classify(BudgetExceededError("global", 1.0, 0.9, 0.2)) is K.PERMANENT
    assert classify(ConfigurationError("bad")) is K.PERMANENT


class WrapperError(Exception):
    """A framework wrapper we know nothing about."""


class StatusWrapper(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__("wrapped")
        self.status_code = status_code


def test_wrappers_are_unwrapped() -> None:
    outer = WrapperError("call failed")
    outer.__cause__ = httpx.ReadTimeout("slow")
    assert classify(outer) is K.TIMEOUT
    implicit = WrapperError("during handling")
    implicit.__context__ = ConnectionResetError()
    assert classify(implicit) is K.TRANSIENT
    implicit.__suppress_context__ = True
    assert classify(implicit) is K.PERMANENT
    assert classify(StatusWrapper(429)) is K.RATE_LIMITED


@pytest.mark.skipif(sys.version_info < (3, 11), reason="ExceptionGroup is new in 3.11")
def test_exception_groups_are_unwrapped() -> None:
    group_type = vars(builtins)["ExceptionGroup"]  # 3.11+, while mypy checks for 3.10
    group = group_type("many", [ValueError("x"), ConnectionResetError()])
    assert classify(group) is K.TRANSIENT


def test_tenacity_retry_error_is_unwrapped() -> None:
    tenacity = pytest.importorskip("tenacity")
    fut = tenacity.Future(attempt_number=3)
    limited = openai.RateLimitError(
        "slow", response=response(429, {"retry-after-ms": "1500"}), body=None
    )
    fut.set_exception(limited)
    retry_error = tenacity.RetryError(fut)
    assert classify(retry_error) is K.RATE_LIMITED
    assert retry_after_seconds(retry_error) == 1.5


def test_cycles_in_exception_chain_terminate() -> None:
    a, b = WrapperError("a"), WrapperError("b")
    a.__cause__, b.__cause__ = b, a
    assert classify(a) is K.PERMANENT
    assert retry_after_seconds(a) is None


def test_retry_after_sources_and_formats() -> None:
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    dated = openai.RateLimitError("x", response=response(429, {"retry-after": date}), body=None)
    assert 27 <= (retry_after_seconds(dated) or 0) <= 30

    headers_attr = WrapperError("x")
    headers_attr.headers = {"Retry-After-Ms": "250"}  # type: ignore[attr-defined]
    assert retry_after_seconds(headers_attr) == 0.25

    reset = openai.RateLimitError(
        "x",
        response=response(
            429,
            {
                "x-ratelimit-remaining-requests": "10",
                "x-ratelimit-reset-requests": "1s",
                "x-ratelimit-remaining-tokens": "0",
                "x-ratelimit-reset-tokens": "6m0s",
            },
        ),
        body=None,
    )
    assert retry_after_seconds(reset) == 360.0
    # reset headers on a non-rate-limit error are not a retry hint
    server = openai.InternalServerError(
        "x", response=response(500, {"x-ratelimit-reset-requests": "1s"}), body=None
    )
    assert retry_after_seconds(server) is None
    assert retry_after_seconds(ValueError()) is None
    assert retry_after_seconds(RateLimitedError("x", retry_after=4.0)) == 4.0
    assert 0 < (retry_after_seconds(CircuitOpenError("c", time.time() + 5)) or 0) <= 5


def test_anthropic_reset_timestamps() -> None:
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 20))
    exc = anthropic.RateLimitError(
        "x",
        response=a_response(
            429,
            {"anthropic-ratelimit-tokens-remaining": "0", "anthropic-ratelimit-tokens-reset": when},
        ),
        body=None,
    )
    assert 15 <= (retry_after_seconds(exc) or 0) <= 20


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2", 2.0),
        ("0.5", 0.5),
        ("20ms", 0.02),
        ("1h2m3.5s", 3723.5),
        ("", None),
        ("-1", None),
        ("nan", None),
        ("soon", None),
        ("2000000100", 100.0),  # epoch seconds
    ],
)
def test_parse_duration(value: str, expected: float | None) -> None:
    assert parse_duration(value, now=2_000_000_000.0) == expected


def test_as_provider_error_passthrough_and_message() -> None:
    own = TransientProviderError("x")
    assert as_provider_error(own, provider="p", model="m") is own
    assert (own.provider, own.model) == ("p", "m")
    err = as_provider_error(ValueError("x" * 600), provider="openai")
    assert isinstance(err, PermanentProviderError)
    assert err.provider == "openai"
    assert err.model is None
    assert str(err).endswith("retrying it unchanged will not help")
    assert "..." in str(err)
    assert "provider: permanent (ValueError" in str(as_provider_error(ValueError()))


def test_error_kind() -> None:
    assert [k for k in K if k.retryable] == [K.RATE_LIMITED, K.TIMEOUT, K.TRANSIENT]
    assert str(K.TIMEOUT) == "timeout"
    assert K("rate_limited") is K.RATE_LIMITED


def test_usage_errors_are_value_errors_and_key_errors() -> None:
    err = UnknownModelError("gpt-4oo", ["gpt-4o", "gpt-4o-mini"])
    assert isinstance(err, ConfigurationError)
    assert isinstance(err, ValueError)
    assert isinstance(err, KeyError)
    assert str(err).startswith("unknown model 'gpt-4oo'; did you mean 'gpt-4o', 'gpt-4o-mini'?")
    assert "UnknownModelError" not in str(err)
    assert isinstance(StoreURLError("x://", "bad"), ConfigurationError)


def test_passwords_are_masked() -> None:
    err = StoreUnavailableError("redis://user:s3cret@localhost:6379/0", "refused")
    assert "s3cret" not in str(err)
    assert err.url == "redis://user:***@localhost:6379/0"
    assert StoreURLError("postgresql://:pw@h/db", "x").url == "postgresql://:***@h/db"
    assert StoreURLError("sqlite:///tmp/x", "x").url == "sqlite:///tmp/x"
    assert StoreURLError("http://[::1", "x").url == "http://[::1"


ALL_ERRORS: list[BaseException] = [
    UnknownModelError("m", ["a"]),
    StoreURLError("redis://:pw@h", "bad"),
    StoreUnavailableError("redis://h", "down"),
    RateLimitedError("x", provider="p", model="m", status_code=429, retry_after=1.0),
    ProviderError("x", kind=K.CONTENT_POLICY),
    BudgetExceededError("user:bob", 1.0, 0.75, 0.5),
    CircuitOpenError("openai", 123.0),
    SessionConflictError("s1", "version", 3, 4),
    RateLimitExceededError("k", None),
    ConfigurationError("bad"),
]


@pytest.mark.parametrize("err", ALL_ERRORS, ids=lambda e: type(e).__name__)
def test_errors_pickle_round_trip(err: BaseException) -> None:
    # errors cross process boundaries (multiprocessing workers, task queues)
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is type(err)
    assert str(clone) == str(err)
    assert vars(clone) == vars(err)


def test_messages_say_what_to_do() -> None:
    assert "Raise the limit" in str(BudgetExceededError("global", 10, 9.5, 1))
    assert "$10.000000" in str(BudgetExceededError("global", 10, 9.5, 1))
    assert "Reload the session" in str(SessionConflictError("s", "v", 1, 2))
    assert "try again in 1.500 s" in str(RateLimitExceededError("k", 1.5))
    assert "try again later" in str(RateLimitExceededError("k", None))
    assert "fallback" in str(CircuitOpenError("c", time.time() + 1))


def test_tree_in_docstring_lists_every_error() -> None:
    doc = errors.__doc__ or ""
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type) and issubclass(obj, AIPowerToolsError):
            assert name in doc, name
    assert sorted(errors.__all__) == errors.__all__


class BrokenResponseError(openai.APIError):
    """An SDK error whose ``response`` property raises, as some do when it is absent."""

    @property
    def response(self) -> httpx.Response:
        raise RuntimeError("no response")


class UnstringableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("cannot render")


class BadHeaders:
    def items(self) -> list[tuple[str, str]]:
        raise RuntimeError("not iterable")


def test_defensive_paths_never_raise() -> None:
    broken = BrokenResponseError("x", request=REQUEST, body=None)
    assert classify(broken) is K.PERMANENT  # generic base, no status: do not retry blindly
    assert retry_after_seconds(broken) is None
    weird = UnstringableError()
    weird.headers = BadHeaders()  # type: ignore[attr-defined]
    assert retry_after_seconds(weird) is None
    assert "UnstringableError" in str(as_provider_error(weird))
    odd = WrapperError("x")
    odd.headers = {"retry-after": "whenever"}  # type: ignore[attr-defined]
    assert retry_after_seconds(odd) is None


def test_cancelled_tenacity_attempt_is_skipped() -> None:
    tenacity = pytest.importorskip("tenacity")
    fut = tenacity.Future(attempt_number=1)
    fut.cancel()
    assert classify(tenacity.RetryError(fut)) is K.PERMANENT
