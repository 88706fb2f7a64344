"""A lean transport for OpenAI-compatible endpoints: one httpx POST, no SDK layers.

OpenAI, vLLM, llama.cpp, LM Studio, Ollama's ``/v1`` and most gateways speak the same chat
completions wire format. For ``openai/...`` deployments this transport posts it directly,
which costs a fraction of litellm's client CPU per call; every other deployment goes to the
``fallback`` transport (litellm by default).
"""

from __future__ import annotations

import asyncio
import json
import os
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aipowertools.core.errors import (
    ContentPolicyError,
    ContextWindowExceededError,
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
    import httpx

    from aipowertools.router._deployment import Deployment

_OPENAI_BASE = "https://api.openai.com/v1"


class _Obj(dict[str, Any]):
    """A JSON object whose keys also read as attributes (what the parsers expect)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _load(text: str | bytes) -> Any:
    return json.loads(text, object_hook=_Obj)


def _refine(error: ProviderError, body: str) -> ProviderError:
    """A 400 that is really a context-window or content-policy refusal, by its error body."""
    lowered = body.lower()
    cls: type[ProviderError] | None = None
    if "context_length" in lowered or "maximum context length" in lowered:
        cls = ContextWindowExceededError
    elif "content_policy" in lowered or "content_filter" in lowered:
        cls = ContentPolicyError
    if cls is None:
        return error
    refined = cls(
        error.message, provider=error.provider, model=error.model, status_code=error.status_code
    )
    refined.__cause__ = error.__cause__
    return refined


class OpenAICompatibleTransport:
    """Posts ``openai/...`` deployments' calls straight to their chat completions endpoint.

    Args:
        fallback: transport for every other deployment (litellm by default).
        max_connections: connection pool size per event loop.

    Example:
        >>> router = LLMRouter(deployments, transport=OpenAICompatibleTransport())  # doctest: +SKIP
    """

    def __init__(self, fallback: Transport | None = None, *, max_connections: int = 200) -> None:
        self.fallback: Transport = fallback or LiteLLMTransport()
        self.max_connections = max_connections
        # httpx clients belong to the event loop that created them.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]
        self._clients = weakref.WeakKeyDictionary()
        self._closers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any]
        self._closers = weakref.WeakKeyDictionary()

    def handles(self, deployment: Deployment) -> bool:
        """Whether this deployment is called directly (``openai/`` models)."""
        return deployment.model.startswith("openai/")

    async def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            import httpx

            limits = httpx.Limits(max_connections=self.max_connections)
            client = self._clients[loop] = httpx.AsyncClient(limits=limits, timeout=None)
            # An async generator parked at its first yield is closed by the loop's
            # shutdown_asyncgens() (asyncio.run, asyncio.Runner): the pool closes with its loop.
            closer = _close_with_loop(client)
            await closer.__anext__()
            self._closers[loop] = closer
        return client

    @staticmethod
    def _request(
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
        body.pop("_skip_mcp_handler", None)
        if stream:
            body["stream"] = True
            body.setdefault("stream_options", {"include_usage": True})
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return f"{base}/chat/completions", headers, body

    def _error(self, deployment: Deployment, exc: BaseException, body: str = "") -> ProviderError:
        error = as_provider_error(
            exc, provider=deployment.provider, model=deployment.model.split("/", 1)[1]
        )
        return _refine(error, body) if body else error

    async def complete(
        self, deployment: Deployment, messages: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
    ) -> Completion:  # fmt: skip
        """One POST (or the fallback's call for non-OpenAI deployments)."""
        if not self.handles(deployment):
            return await self.fallback.complete(deployment, messages, params)
        import httpx

        url, headers, body = self._request(deployment, messages, params, stream=False)
        try:
            response = await (await self._client()).post(
                url, json=body, headers=headers, timeout=deployment.timeout
            )
            response.raise_for_status()
        except httpx.HTTPStatusError as exc:
            raise self._error(deployment, exc, exc.response.text) from exc
        except httpx.HTTPError as exc:
            raise self._error(deployment, exc) from exc
        try:
            return completion_from_openai(_load(response.content))
        except (ValueError, KeyError, IndexError, AttributeError) as exc:
            raise self._error(deployment, exc) from exc

    async def stream(
        self, deployment: Deployment, messages: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
    ) -> AsyncIterator[Chunk]:  # fmt: skip
        """One streamed POST, server-sent events parsed as they arrive."""
        if not self.handles(deployment):
            async for chunk in self.fallback.stream(deployment, messages, params):
                yield chunk
            return
        import httpx

        url, headers, body = self._request(deployment, messages, params, stream=True)
        try:
            async with (await self._client()).stream(
                "POST", url, json=body, headers=headers, timeout=deployment.timeout
            ) as response:
                if response.status_code >= 400:
                    text = (await response.aread()).decode(errors="replace")
                    try:
                        response.raise_for_status()
                    except httpx.HTTPStatusError as exc:
                        raise self._error(deployment, exc, text) from exc
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    yield chunk_from_openai(_load(data))
        except httpx.HTTPError as exc:
            raise self._error(deployment, exc) from exc
        except ValueError as exc:
            raise self._error(deployment, exc) from exc

    async def aclose(self) -> None:
        """Close the connection pool of the running event loop."""
        loop = asyncio.get_running_loop()
        self._clients.pop(loop, None)
        closer = self._closers.pop(loop, None)
        if closer is not None:
            await closer.aclose()


async def _close_with_loop(client: httpx.AsyncClient) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await client.aclose()
