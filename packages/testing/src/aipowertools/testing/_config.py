"""Configuration objects of the simulator: models, scripted replies, tool calls and faults."""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from aipowertools.testing._compat import ConfigurationError

if TYPE_CHECKING:
    from aipowertools.testing._request import SimRequest

__all__ = [
    "ECHO",
    "Fault",
    "FaultKind",
    "Reply",
    "ReplyScript",
    "SimModel",
    "ToolCall",
]

ECHO = "echo"
"""Reply script value that answers with the last user message."""


@dataclass(frozen=True)
class ToolCall:
    """One tool (function) call a simulated model makes.

    Args:
        name: Name of the tool to call. ``None`` calls the first tool the request offers.
        arguments: Arguments as a mapping (serialised to JSON) or a JSON string. ``None``
            fills the tool's required parameters with example values from its JSON schema.
        id: Call id; generated (``call_...`` / ``toolu_...``) when not given.
    """

    name: str | None = None
    arguments: Mapping[str, Any] | str | None = None
    id: str | None = None


@dataclass(frozen=True)
class Reply:
    """A full scripted reply: text and/or tool calls, and optional per-reply usage details.

    Args:
        text: Assistant text.
        tool_calls: Tool calls (more than one makes parallel tool calls).
        reasoning_tokens: Reasoning tokens to report for this reply (overrides the model's).
        cached_tokens: Cached prompt tokens to report for this reply (overrides the model's).
    """

    text: str = ""
    tool_calls: Sequence[ToolCall] = ()
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None


ReplyItem: TypeAlias = "str | ToolCall | Sequence[ToolCall] | Reply"
ReplyScript: TypeAlias = (
    "ReplyItem | Sequence[str | ToolCall | Reply] | Callable[[SimRequest], Any]"
)


class FaultKind(str, enum.Enum):
    """What an injected fault does to a request."""

    RATE_LIMIT = "rate_limit"
    """HTTP 429 with ``Retry-After`` and ``x-ratelimit-*`` headers."""
    SERVER_ERROR = "server_error"
    """HTTP 500."""
    BAD_GATEWAY = "bad_gateway"
    """HTTP 502."""
    UNAVAILABLE = "unavailable"
    """HTTP 503 (Anthropic flavour: 529 ``overloaded_error``)."""
    CONTEXT_LENGTH = "context_length"
    """HTTP 400 ``context_length_exceeded`` (also automatic when the prompt exceeds the window)."""
    AUTHENTICATION = "authentication"
    """HTTP 401 invalid API key."""
    CONTENT_POLICY = "content_policy"
    """HTTP 400 content-policy refusal."""
    HANG = "hang"
    """Accept the request and never answer (until the client gives up or the simulator stops)."""
    SLOW_FIRST_TOKEN = "slow_first_token"
    """Answer normally after an extra ``delay_s`` before the first byte."""
    STREAM_CUT = "stream_cut"
    """Close the connection after ``after_chunks`` stream chunks (mid-body if not streaming)."""
    MALFORMED_JSON = "malformed_json"
    """HTTP 200 whose body (or first stream event) is not valid JSON."""
    DISCONNECT = "disconnect"
    """Drop the connection without any response (the server "went away" mid-request)."""


_DEFAULT_STATUS = {
    FaultKind.RATE_LIMIT: 429,
    FaultKind.SERVER_ERROR: 500,
    FaultKind.BAD_GATEWAY: 502,
    FaultKind.UNAVAILABLE: 503,
    FaultKind.CONTEXT_LENGTH: 400,
    FaultKind.AUTHENTICATION: 401,
    FaultKind.CONTENT_POLICY: 400,
}


@dataclass(frozen=True)
class Fault:
    """An injected fault with its parameters.

    Args:
        kind: What happens (a :class:`FaultKind` or its string value).
        retry_after: Seconds sent in ``Retry-After`` with a 429 (``None``: 1 second).
        delay_s: Extra delay before the first byte for ``slow_first_token``; the longest wait
            for ``hang`` (``None``: until the simulator stops).
        after_chunks: Stream chunks sent before ``stream_cut`` closes the connection.
        status: HTTP status of an error fault (default: the kind's usual status).

    Example:
        >>> Fault("rate_limit", retry_after=2).status
        429
    """

    kind: FaultKind | str
    retry_after: float | None = None
    delay_s: float | None = None
    after_chunks: int = 1
    status: int | None = None

    def __post_init__(self) -> None:
        try:
            kind = FaultKind(self.kind)
        except ValueError:
            known = ", ".join(k.value for k in FaultKind)
            raise ConfigurationError(
                f"unknown fault kind {self.kind!r}; use one of: {known}"
            ) from None
        object.__setattr__(self, "kind", kind)
        if self.status is None:
            object.__setattr__(self, "status", _DEFAULT_STATUS.get(kind))
        if self.after_chunks < 0:
            raise ConfigurationError(f"after_chunks must be >= 0, got {self.after_chunks}")

    @property
    def fault_kind(self) -> FaultKind:
        """The fault kind as a :class:`FaultKind`."""
        return FaultKind(self.kind)


def as_fault(value: Fault | FaultKind | str) -> Fault:
    """Turn a fault, fault kind or kind name into a :class:`Fault`."""
    return value if isinstance(value, Fault) else Fault(value)


@dataclass
class SimModel:
    """A simulated model: what it answers, how fast, how big its window is, how it fails.

    Args:
        name: Model name clients send (``"gpt-4o-mini"``, ``"claude-3-5-haiku-latest"``, ...).
        reply: Reply script. A string answers that text (``"echo"`` answers the last user
            message); a :class:`ToolCall`, list of tool calls or :class:`Reply` answers that; a
            list of those cycles through them request after request; a callable receives the
            :class:`SimRequest` and returns any of those.
        context_window: Prompt tokens allowed; a longer prompt gets a 400
            ``context_length_exceeded``. ``None`` means unlimited.
        ttft_ms: Delay before the first token (before the whole body when not streaming).
        per_token_ms: Delay per completion token after the first.
        rpm: Requests allowed per ``rate_window_s`` (sliding window); over it, HTTP 429.
        tpm: Tokens (prompt + completion) allowed per ``rate_window_s``; over it, HTTP 429.
        rate_window_s: Length of the sliding rate-limit window in seconds (60 by default).
        fault_rates: Probability per request of each fault, e.g. ``{"rate_limit": 0.1}``,
            drawn from a random generator seeded by the simulator seed and the model name.
        cached_tokens: Prompt tokens reported as cached (OpenAI ``cached_tokens``, Anthropic
            ``cache_read_input_tokens``), capped at the prompt size.
        cache_creation_tokens: Prompt tokens reported as written to the cache (Anthropic).
        prompt_caching: Model the provider's prompt cache: a request repeating a prefix seen
            within ``prompt_cache_ttl_s`` reports it as cached, by the wire format's rules
            (OpenAI automatic prefixes of 1,024+ tokens in 128-token steps; Anthropic
            ``cache_control`` breakpoints with cache reads and writes). ``cached_tokens`` and
            ``cache_creation_tokens`` above, when set, are reported instead.
        prompt_cache_ttl_s: How long a cached prefix lives after its last use (OpenAI;
            Anthropic breakpoints carry their own ``ttl``, 5 minutes by default).
        reasoning_tokens: Reasoning tokens added to the completion tokens and reported in
            ``completion_tokens_details.reasoning_tokens``.
        tokenizer_model: Model name given to litellm's token counter (default: ``name``).
        owned_by: ``owned_by`` field in ``GET /v1/models``.

    Example:
        >>> SimModel("gpt-4o-mini", reply=["first", "second"], rpm=10, rate_window_s=1.0).rpm
        10
    """

    name: str
    reply: ReplyScript = "Hello! This is the simulator."
    context_window: int | None = 128_000
    ttft_ms: float = 0.0
    per_token_ms: float = 0.0
    rpm: int | None = None
    tpm: int | None = None
    rate_window_s: float = 60.0
    fault_rates: Mapping[Any, float] = field(default_factory=dict)
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0
    prompt_caching: bool = True
    prompt_cache_ttl_s: float = 300.0
    tokenizer_model: str | None = None
    owned_by: str = "aipowertools-simulator"

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ConfigurationError(f"SimModel needs a non-empty name, got {self.name!r}")
        for attr in (
            "ttft_ms",
            "per_token_ms",
            "cached_tokens",
            "cache_creation_tokens",
            "reasoning_tokens",
        ):
            if getattr(self, attr) < 0:
                raise ConfigurationError(
                    f"SimModel {self.name!r}: {attr} must be >= 0, got {getattr(self, attr)}"
                )
        if self.prompt_cache_ttl_s <= 0:
            raise ConfigurationError(
                f"SimModel {self.name!r}: prompt_cache_ttl_s must be > 0, "
                f"got {self.prompt_cache_ttl_s}"
            )
        if self.rate_window_s <= 0:
            raise ConfigurationError(
                f"SimModel {self.name!r}: rate_window_s must be > 0, got {self.rate_window_s}"
            )
        for attr in ("rpm", "tpm", "context_window"):
            value = getattr(self, attr)
            if value is not None and value <= 0:
                raise ConfigurationError(
                    f"SimModel {self.name!r}: {attr} must be > 0 or None, got {value}"
                )
        rates: dict[FaultKind, float] = {}
        for kind, rate in dict(self.fault_rates).items():
            fault_kind = as_fault(kind).fault_kind
            if not 0.0 <= float(rate) <= 1.0:
                raise ConfigurationError(
                    f"SimModel {self.name!r}: fault rate for {fault_kind.value} must be in "
                    f"[0, 1], got {rate}"
                )
            rates[fault_kind] = float(rate)
        if sum(rates.values()) > 1.0 + 1e-9:
            raise ConfigurationError(
                f"SimModel {self.name!r}: fault rates add up to {sum(rates.values())}, above 1"
            )
        self.fault_rates = dict(rates)
        if isinstance(self.reply, (list, tuple)) and not self.reply:
            raise ConfigurationError(f"SimModel {self.name!r}: reply list is empty")


def arguments_json(arguments: Mapping[str, Any] | str) -> str:
    """Serialise tool-call arguments to the JSON string the wire formats carry."""
    if isinstance(arguments, str):
        return arguments
    return json.dumps(dict(arguments), separators=(",", ":"))
