"""The router's default transport: OpenAI's wire format posted directly, litellm for the rest.

OpenAI, vLLM, llama.cpp, LM Studio, Ollama's ``/v1`` and most gateways speak the same chat
completions wire format. For ``openai/...`` deployments this transport posts it with one aiohttp
request, which costs a fraction of litellm's client CPU per call (``bench/bench_router.py``).
Everything it does not speak natively goes to the ``fallback`` transport (litellm by default):
every other provider, and any ``openai/`` call carrying a parameter that is not a plain chat
completions field (a litellm option such as ``drop_params``, a pydantic class as
``response_format``), which litellm knows how to translate.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aipowertools.core.errors import (
    ConfigurationError,
    ProviderError,
    as_provider_error,
)
from aipowertools.router._transport import (
    LiteLLMTransport,
    Transport,
    chunk_from_openai,
    completion_from_openai,
)
from aipowertools.router._types import Chunk, Completion

if TYPE_CHECKING:
    import aiohttp

    from aipowertools.router._deployment import Deployment

_OPENAI_BASE = "https://api.openai.com/v1"

# Chat completions request fields sent as they are. A call with any other parameter goes to the
# fallback transport rather than to the server as an unknown field.
_WIRE_PARAMS = frozenset(
    {
        "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs",
        "max_completion_tokens", "max_tokens", "metadata", "modalities", "n",
        "parallel_tool_calls", "prediction", "presence_penalty", "reasoning_effort",
        "response_format", "seed", "service_tier", "stop", "store", "stream_options",
        "temperature", "tool_choice", "tools", "top_logprobs", "top_p", "user", "verbosity",
        "web_search_options",
    }
)  # fmt: skip

# OpenAI's reasoning models take ``max_completion_tokens`` and refuse ``max_tokens``.
_REASONING_MODEL = re.compile(r"^(o\d|gpt-5)")


class _Obj(dict[str, Any]):
    """A JSON object whose keys also read as attributes (what the parsers expect)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _load(text: str | bytes) -> Any:
    return json.loads(text, object_hook=_Obj)


def _is_wire(key: str, value: Any) -> bool:
    # A response_format given as a type (a pydantic model) needs litellm's schema conversion.
    return key in _WIRE_PARAMS and not (key == "response_format" and isinstance(value, type))


class HTTPStatusError(Exception):
    """An error status from an OpenAI-compatible server, with its headers and body.

    Raised inside the transport and wrapped at once in the taxonomy's
    :class:`~aipowertools.core.errors.ProviderError` (as its ``__cause__``), which reads the
    status code, ``Retry-After`` and the body from it.
    """

    def __init__(self, status_code: int, headers: Mapping[str, str], body: str) -> None:
        super().__init__(f"HTTP {status_code}: {body[:500]}")
        self.status_code = status_code
        self.headers = dict(headers)
        self.body = body


class OpenAICompatibleTransport:
    """The default transport: ``openai/`` calls posted straight to the chat completions endpoint.

    Args:
        fallback: transport for every other call (litellm by default).
        max_connections: connections per event loop; calls beyond it wait their turn in order.

    Example:
        >>> router = LLMRouter(deployments)  # uses OpenAICompatibleTransport()  # doctest: +SKIP
        >>> everything_via_litellm = LLMRouter(deployments, transport=LiteLLMTransport())
        ... # doctest: +SKIP
    """

    def __init__(self, fallback: Transport | None = None, *, max_connections: int = 200) -> None:
        if max_connections < 1:
            raise ConfigurationError(f"max_connections must be at least 1, got {max_connections}")
        self.fallback: Transport = fallback or LiteLLMTransport()
        self.max_connections = max_connections

    def handles(self, deployment: Deployment, params: Mapping[str, Any] | None = None) -> bool:
        """Whether this call goes out directly: an ``openai/`` model and plain wire parameters."""
        if not deployment.model.startswith("openai/"):
            return False
        for extra in (deployment.params, params):
            if extra and not all(_is_wire(k, v) for k, v in extra.items()):
                return False
        return True

    async def _session(self) -> aiohttp.ClientSession:
        pools = _POOLS.setdefault(asyncio.get_running_loop(), {})
        pool = pools.get(self.max_connections)
        if pool is None:
            pool = pools[self.max_connections] = _Pool(self.max_connections)
            await pool.closer.__anext__()
        return pool.session

    @staticmethod
    def _request(
        deployment: Deployment,
        messages: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
        stream: bool,
    ) -> tuple[str, dict[str, str], bytes]:
        base = (deployment.api_base or _OPENAI_BASE).rstrip("/")
        key = deployment.api_key or os.environ.get("OPENAI_API_KEY", "")
        body: dict[str, Any] = {"model": deployment.model.split("/", 1)[1], "messages": messages}
        if deployment.params:
            body.update(deployment.params)
        body.update(params)
        if "max_tokens" in body and _REASONING_MODEL.match(body["model"]):
            body.setdefault("max_completion_tokens", body.pop("max_tokens"))
        if stream:
            body["stream"] = True
            body.setdefault("stream_options", {"include_usage": True})
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        try:
            payload = json.dumps(body).encode()
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"the request to {deployment.name} is not JSON-serializable ({exc}); pass "
                "messages, tools and parameters as plain JSON values"
            ) from exc
        return f"{base}/chat/completions", headers, payload

    @staticmethod
    def _timeout(deployment: Deployment, *, stream: bool) -> aiohttp.ClientTimeout:
        import aiohttp

        if stream:  # the deployment's timeout bounds the wait for each piece, not the whole
            return aiohttp.ClientTimeout(
                total=None, sock_connect=deployment.timeout, sock_read=deployment.timeout
            )
        return aiohttp.ClientTimeout(total=deployment.timeout)

    def _error(self, deployment: Deployment, exc: BaseException) -> ProviderError:
        return as_provider_error(
            exc, provider=deployment.provider, model=deployment.model.split("/", 1)[1]
        )

    async def complete(
        self, deployment: Deployment, messages: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
    ) -> Completion:  # fmt: skip
        """One POST (or the fallback's call for anything else)."""
        if not self.handles(deployment, params):
            return await self.fallback.complete(deployment, messages, params)
        import aiohttp

        url, headers, payload = self._request(deployment, messages, params, stream=False)
        session = await self._session()
        try:
            async with session.post(
                url, data=payload, headers=headers, timeout=self._timeout(deployment, stream=False)
            ) as response:
                content = await response.read()
                if response.status >= 400:
                    text = content.decode(errors="replace")
                    raise HTTPStatusError(response.status, response.headers, text)
            return completion_from_openai(_load(content))
        except (HTTPStatusError, aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise self._error(deployment, exc) from exc
        except (ValueError, KeyError, IndexError, AttributeError) as exc:  # not a completion
            raise self._error(deployment, exc) from exc

    async def stream(
        self, deployment: Deployment, messages: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
    ) -> AsyncIterator[Chunk]:  # fmt: skip
        """One streamed POST, server-sent events parsed as they arrive."""
        if not self.handles(deployment, params):
            async for chunk in self.fallback.stream(deployment, messages, params):
                yield chunk
            return
        import aiohttp

        url, headers, payload = self._request(deployment, messages, params, stream=True)
        session = await self._session()
        try:
            async with session.post(
                url, data=payload, headers=headers, timeout=self._timeout(deployment, stream=True)
            ) as response:
                if response.status >= 400:
                    text = (await response.read()).decode(errors="replace")
                    raise HTTPStatusError(response.status, response.headers, text)
                async for raw in response.content:
                    line = raw.strip()
                    if not line.startswith(b"data:"):
                        continue
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        return
                    yield chunk_from_openai(_load(data))
        except (HTTPStatusError, aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise self._error(deployment, exc) from exc

    async def aclose(self) -> None:
        """Close this event loop's pool now (the next call opens a new one).

        Pools close by themselves when their event loop shuts down (``asyncio.run``); this is
        for long-lived loops that want their sockets back early.
        """
        pool = _POOLS.get(asyncio.get_running_loop(), {}).pop(self.max_connections, None)
        if pool is not None:
            await pool.closer.aclose()


class _Pool:
    """An event loop's aiohttp session (its connector queues calls beyond the limit in order).

    Pools are shared by every transport on the loop with the same ``max_connections``, so
    routers built per request reuse connections instead of each leaving a session behind.
    """

    def __init__(self, max_connections: int) -> None:
        import aiohttp

        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max_connections),
            json_serialize=json.dumps,
            raise_for_status=False,
        )
        # An async generator parked at its first yield is closed by the loop's
        # shutdown_asyncgens() (asyncio.run, asyncio.Runner): the pool closes with its loop.
        self.closer = _close_with_loop(self.session)


# aiohttp sessions belong to the event loop that created them.
_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, _Pool]]
_POOLS = weakref.WeakKeyDictionary()


async def _close_with_loop(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await session.close()
