"""The router's default transport: three wire formats posted directly, litellm for the rest.

Three wire formats cover most deployments, and this transport speaks each with one aiohttp
request, at a fraction of litellm's client CPU per call (``bench/bench_router.py``):

* ``openai/...``: OpenAI's chat completions (also vLLM, llama.cpp, LM Studio, Ollama's ``/v1``
  and most gateways);
* ``anthropic/...``: Anthropic's Messages API (:mod:`._wire_anthropic`);
* ``ollama/...`` and ``ollama_chat/...``: Ollama's chat API (:mod:`._wire_ollama`).

Everything else goes to the ``fallback`` transport (litellm by default): every other provider,
and any call carrying a parameter its wire does not translate (a litellm option such as
``drop_params``, a pydantic class as ``response_format``, ``response_format`` on Anthropic),
which litellm knows how to translate.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from aipowertools.core.errors import (
    ConfigurationError,
    ProviderError,
    as_provider_error,
)
from aipowertools.router import _wire_anthropic, _wire_ollama
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


# One decoder for every call: json.loads with an object_hook builds a new decoder each time.
_DECODER = json.JSONDecoder(object_hook=_Obj)


def _load(text: str | bytes) -> Any:
    return _DECODER.decode(text.decode() if isinstance(text, bytes) else text)


def _openai_request(
    deployment: Deployment,
    messages: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
    stream: bool,
) -> tuple[str, dict[str, str], dict[str, Any]]:
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
    return f"{base}/chat/completions", headers, body


class _OpenAIStream:
    """Server-sent events of a chat completions stream, ended by ``[DONE]``."""

    def __init__(self) -> None:
        self.done = False

    def feed(self, line: bytes) -> Iterator[Chunk]:
        if not line.startswith(b"data:"):
            return
        data = line[5:].strip()
        if data == b"[DONE]":
            self.done = True
            return
        yield chunk_from_openai(_load(data))


class _Reader(Protocol):
    """What a wire's stream reader offers (``done`` is optional: EOF also ends a stream)."""

    def feed(self, line: bytes) -> Iterator[Chunk]:
        """Chunks for one line of the response body."""
        ...


@dataclass(frozen=True)
class _Wire:
    """One wire format: which parameters it speaks, how to ask, how to read the answer."""

    params: frozenset[str]
    request: Callable[..., tuple[str, dict[str, str], dict[str, Any]]]
    completion: Callable[[bytes], Completion]
    reader: Callable[[], _Reader]
    accepts: Callable[[str, Any], bool] = lambda key, value: True


_OPENAI = _Wire(
    _WIRE_PARAMS, _openai_request, lambda b: completion_from_openai(_load(b)), _OpenAIStream
)
_ANTHROPIC = _Wire(
    _wire_anthropic.PARAMS,
    _wire_anthropic.request,
    lambda b: _wire_anthropic.completion(json.loads(b)),
    _wire_anthropic.StreamReader,
)
_OLLAMA = _Wire(
    _wire_ollama.PARAMS,
    _wire_ollama.request,
    lambda b: _wire_ollama.completion(json.loads(b)),
    _wire_ollama.StreamReader,
    _wire_ollama.accepts,
)
#: Model prefix -> the wire format posted directly for it.
WIRES: dict[str, _Wire] = {
    "openai": _OPENAI,
    "anthropic": _ANTHROPIC,
    "ollama": _OLLAMA,
    "ollama_chat": _OLLAMA,
}

_STREAM_ERRORS = (_wire_anthropic.StreamError, _wire_ollama.StreamError)


def _is_wire(wire: _Wire, key: str, value: Any) -> bool:
    # A response_format given as a type (a pydantic model) needs litellm's schema conversion.
    if key not in wire.params or (key == "response_format" and isinstance(value, type)):
        return False
    return wire.accepts(key, value)


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


@functools.lru_cache(maxsize=64)
def _client_timeout(seconds: float | None, stream: bool) -> aiohttp.ClientTimeout:
    """aiohttp's timeout object for a deployment's timeout (immutable, so built once)."""
    import aiohttp

    if stream:  # the deployment's timeout bounds the wait for each piece, not the whole
        return aiohttp.ClientTimeout(total=None, sock_connect=seconds, sock_read=seconds)
    return aiohttp.ClientTimeout(total=seconds)


def _garbled(exc: BaseException) -> HTTPStatusError:
    """A successful status with an unreadable body: the provider's fault, worth another try."""
    return HTTPStatusError(502, {}, f"the provider's answer could not be read: {exc!r}")


class OpenAICompatibleTransport:
    """The default transport: OpenAI, Anthropic and Ollama calls posted straight to the provider.

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
        """Whether this call goes out directly: a wire it speaks and only parameters it knows."""
        return self._wire(deployment, params) is not None

    @staticmethod
    def _wire(deployment: Deployment, params: Mapping[str, Any] | None) -> _Wire | None:
        prefix, sep, _ = deployment.model.partition("/")
        wire = WIRES.get(prefix) if sep else None
        if wire is None:
            return None
        for extra in (deployment.params, params):
            if extra and not all(_is_wire(wire, k, v) for k, v in extra.items()):
                return None
        return wire

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
        wire: _Wire = _OPENAI,
    ) -> tuple[str, dict[str, str], bytes]:
        url, headers, body = wire.request(deployment, messages, params, stream)
        try:
            payload = json.dumps(body).encode()
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"the request to {deployment.name} is not JSON-serializable ({exc}); pass "
                "messages, tools and parameters as plain JSON values"
            ) from exc
        return url, headers, payload

    @staticmethod
    def _timeout(deployment: Deployment, *, stream: bool) -> aiohttp.ClientTimeout:
        return _client_timeout(deployment.timeout, stream)

    def _error(self, deployment: Deployment, exc: BaseException) -> ProviderError:
        return as_provider_error(
            exc, provider=deployment.provider, model=deployment.model.split("/", 1)[1]
        )

    async def complete(
        self, deployment: Deployment, messages: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
    ) -> Completion:  # fmt: skip
        """One POST (or the fallback's call for anything else)."""
        wire = self._wire(deployment, params)
        if wire is None:
            return await self.fallback.complete(deployment, messages, params)
        import aiohttp

        url, headers, payload = self._request(deployment, messages, params, False, wire)
        session = await self._session()
        try:
            async with session.post(
                url, data=payload, headers=headers, timeout=self._timeout(deployment, stream=False)
            ) as response:
                content = await response.read()
                if response.status >= 400:
                    text = content.decode(errors="replace")
                    raise HTTPStatusError(response.status, response.headers, text)
            return wire.completion(content)
        except (HTTPStatusError, aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise self._error(deployment, exc) from exc
        except (ValueError, KeyError, IndexError, AttributeError) as exc:  # not a completion
            raise self._error(deployment, _garbled(exc)) from exc

    async def stream(
        self, deployment: Deployment, messages: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
    ) -> AsyncIterator[Chunk]:  # fmt: skip
        """One streamed POST, events parsed as they arrive."""
        wire = self._wire(deployment, params)
        if wire is None:
            async for chunk in self.fallback.stream(deployment, messages, params):
                yield chunk
            return
        import aiohttp

        url, headers, payload = self._request(deployment, messages, params, True, wire)
        session = await self._session()
        try:
            async with session.post(
                url, data=payload, headers=headers, timeout=self._timeout(deployment, stream=True)
            ) as response:
                if response.status >= 400:
                    text = (await response.read()).decode(errors="replace")
                    raise HTTPStatusError(response.status, response.headers, text)
                reader = wire.reader()
                async for raw in response.content:
                    for chunk in reader.feed(raw.strip()):
                        yield chunk
                    if getattr(reader, "done", False):
                        return
        except (HTTPStatusError, *_STREAM_ERRORS, aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise self._error(deployment, exc) from exc
        except (ValueError, KeyError, IndexError, AttributeError) as exc:  # a garbled event
            raise self._error(deployment, _garbled(exc)) from exc

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
