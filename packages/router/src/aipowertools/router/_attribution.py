"""Who a routed call is for, and which keyword arguments a call may carry.

Attribution (user, task, session, tags) comes from the call's arguments, else from the
enclosing ``CostTracker.track_call`` span (``aipowertools.core.current_call()``); it goes
into every ledger row and budget reservation of the call, and the span is handed the
finished call so it records it without ``span.record()``.
"""

from __future__ import annotations

import contextvars
import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aipowertools.core import current_call
from aipowertools.core.errors import ConfigurationError


@dataclass(frozen=True)
class Attribution:
    """The ledger attribution of one routed request."""

    user: str | None = None
    task: str | None = None
    session: str | None = None
    tags: tuple[str, ...] = ()
    span: Any = None  # the enclosing core CallSpan, if any


NOBODY = Attribution()
#: The attribution of the request being routed in this context (set by ``route()``).
CURRENT: contextvars.ContextVar[Attribution] = contextvars.ContextVar(
    "aipowertools_router_attribution", default=NOBODY
)


def attribution(
    user: str | None, task_name: str | None, session: str | None, tags: Sequence[str]
) -> Attribution:
    """The call's own attribution, completed from the enclosing ``track_call`` span."""
    for name, value in (("user", user), ("task_name", task_name), ("session", session)):
        if value is not None and not isinstance(value, str):
            raise ConfigurationError(f"{name} must be a string, got {type(value).__name__}")
    span = current_call()
    own = tuple(tags)
    if span is None:
        return (
            Attribution(user, task_name, session, own)
            if (user or task_name or session or own)
            else NOBODY
        )
    merged = own + tuple(t for t in span.tags if t not in own)
    return Attribution(
        user if user is not None else span.user,
        task_name if task_name is not None else span.task,
        session if session is not None else span.session,
        merged,
        span,
    )


def from_metadata(metadata: Mapping[str, Any] | None) -> dict[str, str]:
    """``user`` / ``task_name`` / ``session`` from framework metadata (LangChain config
    ``metadata``, LlamaIndex ``instrument_tags``), under the keys the callback handlers read."""
    if not metadata:
        return {}
    out: dict[str, str] = {}
    for target, keys in (
        ("user", ("user", "user_id")),
        ("task_name", ("task", "task_name")),
        ("session", ("session", "session_id", "thread_id")),
    ):
        for key in keys:
            value = metadata.get(key)
            if value is not None and value != "":
                out[target] = str(value)
                break
    return out


# ---------------------------------------------------------------------- call keywords
#: Aliases the seeds use for routing options.
ALIASES = {"complexity": "complexity_score"}

#: Provider parameters a routed call passes through (OpenAI chat completions and litellm's
#: cross-provider options); anything else is neither a routing option nor a provider
#: parameter, and is refused rather than silently forwarded.
PROVIDER_PARAMS = frozenset(
    {
        "temperature", "top_p", "top_k", "n", "stop", "max_completion_tokens", "seed",
        "presence_penalty", "frequency_penalty", "repetition_penalty", "logit_bias",
        "logprobs", "top_logprobs", "parallel_tool_calls", "stream_options", "timeout",
        "extra_headers", "extra_body", "extra_query", "reasoning_effort", "thinking",
        "verbosity", "modalities", "audio", "prediction", "service_tier", "store",
        "metadata", "web_search_options", "safety_identifier", "prompt_cache_key",
        "functions", "function_call", "user_id", "api_version", "drop_params",
        "num_retries", "mock_response", "caching", "response_logprobs", "stream",
    }
)  # fmt: skip


ROUTING_OPTIONS = (
    "task", "messages", "strategy", "complexity_score", "required_quality", "max_cost",
    "max_latency_ms", "confidential", "tags", "max_tokens", "tools", "tool_choice",
    "response_format", "deployments", "allow_trim", "request_id", "user", "task_name",
    "session",
)  # fmt: skip


def check_params(params: dict[str, Any], complexity_score: float | None) -> float | None:
    """The call's complexity score (``complexity=`` is its alias, popped from ``params``);
    a keyword that is neither a routing option nor a provider parameter is refused.

    Raises:
        ConfigurationError: naming the keyword and the closest routing option or provider
            parameter.
    """
    if "complexity" in params:
        if complexity_score is not None:
            raise ConfigurationError("pass complexity_score= or its alias complexity=, not both")
        complexity_score = params.pop("complexity")
    _refuse_unknown(params, ROUTING_OPTIONS)
    return complexity_score


def _refuse_unknown(params: Mapping[str, Any], routing_options: Iterable[str]) -> None:
    unknown = [k for k in params if k not in PROVIDER_PARAMS]
    if not unknown:
        return
    known = sorted({*routing_options, *PROVIDER_PARAMS, *ALIASES})
    name = unknown[0]
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]}=?" if close else ""
    raise ConfigurationError(
        f"route() got an unknown keyword {name}=: it is neither a routing option nor a "
        f"provider parameter{hint} (provider-specific fields go in extra_body={{...}})"
    )
