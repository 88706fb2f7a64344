"""What every wire format (OpenAI, Anthropic, Ollama) implements, and the data they render."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aipowertools.testing._config import Fault, SimModel
from aipowertools.testing._replies import ResolvedReply
from aipowertools.testing._request import SimRequest

__all__ = ["Codec", "ErrorCategory", "Exchange", "dumps"]


def dumps(data: Any) -> bytes:
    """Compact JSON bytes."""
    return json.dumps(data, separators=(",", ":")).encode()


@dataclass
class Exchange:
    """Everything a wire format needs to render one successful answer."""

    request: SimRequest
    model: SimModel
    serial: int
    created: int
    prompt_tokens: int
    reply: ResolvedReply
    output_tokens: int
    fault: Fault | None = None
    headers: dict[str, str] = field(default_factory=dict)
    truncated: bool = False
    """Generation stopped at the request's ``max_tokens`` (the reply was cut there)."""
    prefix_cached: int = 0
    """Prompt tokens the modelled prompt cache found (see ``_prompt_cache``)."""
    prefix_created: int = 0
    """Prompt tokens the modelled prompt cache wrote (Anthropic breakpoints)."""

    @property
    def completion_tokens(self) -> int:
        """Completion tokens including reasoning tokens."""
        return self.output_tokens + self.reply.reasoning_tokens

    @property
    def cached_tokens(self) -> int:
        """Cached prompt tokens (never more than the prompt)."""
        scripted = self.reply.cached_tokens
        return min(scripted if scripted else self.prefix_cached, self.prompt_tokens)

    @property
    def cache_creation_tokens(self) -> int:
        """Prompt tokens written to the cache (never more than what is left of the prompt)."""
        written = self.model.cache_creation_tokens or self.prefix_created
        return min(written, self.prompt_tokens - self.cached_tokens)


class ErrorCategory:
    """Provider-neutral error categories a codec renders in its own format."""

    RATE_LIMIT = "rate_limit"
    SERVER = "server"
    BAD_GATEWAY = "bad_gateway"
    UNAVAILABLE = "unavailable"
    CONTEXT = "context"
    AUTH = "auth"
    CONTENT_POLICY = "content_policy"
    NOT_FOUND = "not_found"
    BAD_REQUEST = "bad_request"


class Codec:
    """One provider's wire format: parse a request, render a reply, a stream or an error."""

    flavor: ClassVar[str]
    stream_content_type: ClassVar[str] = "text/event-stream"

    def parse(self, body: dict[str, Any], headers: Mapping[str, str], model: str) -> SimRequest:
        raise NotImplementedError

    def render(self, ex: Exchange) -> dict[str, Any]:
        raise NotImplementedError

    def stream(self, ex: Exchange) -> Iterator[bytes]:
        raise NotImplementedError

    messages: ClassVar[dict[str, str]] = {
        ErrorCategory.RATE_LIMIT: (
            "Rate limit reached for {model} on {limit} per min: Limit {limit_value}. "
            "Please try again in {retry_after:.3f}s."
        ),
        ErrorCategory.SERVER: (
            "The server had an error processing your request. Sorry about that! (simulated)"
        ),
        ErrorCategory.BAD_GATEWAY: "Bad gateway. (simulated)",
        ErrorCategory.UNAVAILABLE: (
            "The engine is currently overloaded, please try again later. (simulated)"
        ),
        ErrorCategory.CONTEXT: (
            "This model's maximum context length is {window} tokens. However, your messages "
            "resulted in {prompt_tokens} tokens. Please reduce the length of the messages."
        ),
        ErrorCategory.AUTH: (
            "Incorrect API key provided. You can find your API key at "
            "https://platform.openai.com/account/api-keys. (simulated)"
        ),
        ErrorCategory.CONTENT_POLICY: (
            "Your request was rejected as a result of our safety system. Your prompt may "
            "contain text that is not allowed by our safety system. (simulated)"
        ),
        ErrorCategory.NOT_FOUND: (
            "The model `{model}` does not exist or you do not have access to it."
        ),
        ErrorCategory.BAD_REQUEST: "{detail}",
    }

    def message(self, category: str, info: Mapping[str, Any]) -> str:
        """The human-readable error message for ``category`` filled from ``info``."""
        template = self.messages.get(category, "{detail}")
        try:
            return template.format(**info)
        except (KeyError, ValueError):
            return template

    def error(self, status: int, category: str, message: str) -> tuple[int, dict[str, Any]]:
        raise NotImplementedError

    def malformed_chunk(self) -> bytes:
        """A stream event whose payload is not valid JSON."""
        return b'data: {"id": "broken", "choices": [\n\n'
