"""The transport seam: one narrow protocol for calling a deployment; litellm is the default.

A transport turns OpenAI-style messages plus call parameters into a :class:`Completion` (or a
stream of :class:`Chunk`). It raises whatever the provider library raises; the router
classifies errors with :func:`aipowertools.core.errors.as_provider_error`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from aipowertools.core import Usage
from aipowertools.core.errors import ConfigurationError
from aipowertools.router._types import Chunk, Completion, ToolCall, ToolCallChunk

if TYPE_CHECKING:
    from aipowertools.router._deployment import Deployment

Message = Mapping[str, Any]
_NO_USAGE = Usage()


@runtime_checkable
class Transport(Protocol):
    """How the router reaches a deployment."""

    async def complete(
        self, deployment: Deployment, messages: Sequence[Message], params: Mapping[str, Any]
    ) -> Completion:
        """Call ``deployment`` once and return its whole answer."""
        ...

    def stream(
        self, deployment: Deployment, messages: Sequence[Message], params: Mapping[str, Any]
    ) -> AsyncIterator[Chunk]:
        """Call ``deployment`` once and yield its answer as it arrives."""
        ...


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _tokens(usage: Any) -> Usage:
    """The usage of a response, read by core's one reader (cache and reasoning details too).

    OpenAI's ``prompt_tokens_details`` / ``completion_tokens_details`` and litellm's
    Anthropic-style ``cache_creation_input_tokens`` are understood alike; a payload without
    usage counts as zero tokens.
    """
    if usage is None:
        return _NO_USAGE
    try:
        return Usage.from_any(usage)
    except ConfigurationError:
        return _NO_USAGE


def completion_from_openai(response: Any) -> Completion:
    """Read a :class:`Completion` from an OpenAI-shaped response (litellm's ``ModelResponse``)."""
    choice = response.choices[0]
    message = choice.message
    calls = [
        ToolCall(
            id=str(_get(call, "id") or f"call_{i}"),
            name=str(_get(_get(call, "function"), "name") or ""),
            arguments=str(_get(_get(call, "function"), "arguments") or "{}"),
        )
        for i, call in enumerate(_get(message, "tool_calls") or ())
    ]
    usage = _get(response, "usage")
    u = _tokens(usage)
    return Completion(
        content=_get(message, "content") or "",
        tool_calls=calls,
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens,
        cached_input_tokens=u.cached_input_tokens,
        cache_creation_tokens=u.cache_creation_tokens,
        reasoning_tokens=u.reasoning_tokens,
        finish_reason=_get(choice, "finish_reason"),
        model=_get(response, "model"),
        usage_estimated=usage is None,
        raw=response,
    )


def chunk_from_openai(chunk: Any) -> Chunk:
    """Read a :class:`Chunk` from an OpenAI-shaped stream chunk."""
    out = Chunk(model=_get(chunk, "model"))
    choices = _get(chunk, "choices") or ()
    if choices:
        choice = choices[0]
        delta = _get(choice, "delta")
        out.content = _get(delta, "content") or ""
        out.finish_reason = _get(choice, "finish_reason")
        for i, call in enumerate(_get(delta, "tool_calls") or ()):
            function = _get(call, "function")
            out.tool_call_chunks.append(
                ToolCallChunk(
                    index=int(_get(call, "index", i) or 0),
                    id=_get(call, "id"),
                    name=_get(function, "name"),
                    arguments=_get(function, "arguments"),
                )
            )
    usage = _get(chunk, "usage")
    if usage is not None and (_get(usage, "prompt_tokens") or _get(usage, "completion_tokens")):
        u = _tokens(usage)
        out.input_tokens = u.input_tokens
        out.output_tokens = u.output_tokens
        out.cached_input_tokens = u.cached_input_tokens
        out.cache_creation_tokens = u.cache_creation_tokens
        out.reasoning_tokens = u.reasoning_tokens
    return out


class LiteLLMTransport:
    """Calls deployments through ``litellm.acompletion`` (imported at the first call).

    Example:
        >>> transport = LiteLLMTransport()  # the router's default; nothing is imported yet
    """

    def __init__(self) -> None:
        self._acompletion: Any = None

    def _fn(self) -> Any:
        fn = self._acompletion
        if fn is None:
            from aipowertools.core import litellm

            module = litellm()
            # The router handles and reports every failure itself; litellm's "Give Feedback"
            # banner on stdout for each failed attempt would only drown the caller's output.
            setattr(module, "suppress_debug_info", True)  # noqa: B010 - ModuleType attribute
            fn = self._acompletion = module.acompletion
        return fn

    @staticmethod
    def _kwargs(
        deployment: Deployment, messages: Sequence[Message], params: Mapping[str, Any]
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": deployment.model,
            "messages": list(messages),
            "timeout": deployment.timeout,
            # The router fails over and retries itself; an SDK retrying inside one attempt
            # would hide failures from the health state and double the time to fail over.
            "max_retries": 0,
        }
        if deployment.api_base:
            kwargs["api_base"] = deployment.api_base
        if deployment.api_key:
            kwargs["api_key"] = deployment.api_key
        if deployment.params:
            kwargs.update(deployment.params)
        kwargs.update(params)
        if "tools" in kwargs:
            # litellm >= 1.7x routes any call with tools through its MCP bridge first, which
            # imports the optional ``mcp`` package (absent unless litellm[proxy] is installed)
            # and fails. Plain function tools never need that bridge.
            kwargs.setdefault("_skip_mcp_handler", True)
        return kwargs

    async def complete(
        self, deployment: Deployment, messages: Sequence[Message], params: Mapping[str, Any]
    ) -> Completion:
        """One ``litellm.acompletion`` call."""
        response = await self._fn()(**self._kwargs(deployment, messages, params))
        return completion_from_openai(response)

    async def stream(
        self, deployment: Deployment, messages: Sequence[Message], params: Mapping[str, Any]
    ) -> AsyncIterator[Chunk]:
        """One streamed ``litellm.acompletion`` call, usage requested on the last chunk."""
        kwargs = self._kwargs(deployment, messages, params)
        kwargs["stream"] = True
        kwargs.setdefault("stream_options", {"include_usage": True})
        response = await self._fn()(**kwargs)
        try:
            async for chunk in response:
                yield chunk_from_openai(chunk)
        finally:
            close = getattr(response, "aclose", None)
            if close is not None:
                await close()
