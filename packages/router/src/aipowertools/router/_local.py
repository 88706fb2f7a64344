"""Local model manager: find Ollama models and llama.cpp servers, keep the router in sync."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aipowertools.core.errors import ConfigurationError
from aipowertools.router._deployment import Deployment

if TYPE_CHECKING:
    import httpx

    from aipowertools.router._router import LLMRouter

logger = logging.getLogger("aipowertools.router")


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


class LocalModelManager:
    """Discovers local models and adds / removes them as router deployments.

    Ollama servers are asked for ``GET /api/tags``; llama.cpp servers for ``GET /health``
    (must answer 200) and ``GET /v1/models``. Each check is bounded by ``timeout_s``; a
    server that does not answer counts as gone, and its deployments are removed until it
    comes back. Only deployments this manager added are ever removed.

    Args:
        router: the router to keep in sync.
        ollama_urls: base URLs of Ollama servers (e.g. ``http://localhost:11434``).
        llamacpp_urls: base URLs of llama.cpp servers (e.g. ``http://localhost:8080``).
        interval_s: seconds between background checks.
        timeout_s: time limit of each HTTP request.
        deployment_options: extra :class:`Deployment` fields for discovered models
            (``quality``, ``timeout``, ``max_concurrency``...).

    Example:
        >>> manager = LocalModelManager(router, ollama_urls=["http://localhost:11434"])
        >>> async with manager:  # discovers now, then every interval_s
        ...     await router.route(task="hi", confidential=True)
    """

    def __init__(
        self,
        router: LLMRouter,
        *,
        ollama_urls: Sequence[str] = (),
        llamacpp_urls: Sequence[str] = (),
        interval_s: float = 30.0,
        timeout_s: float = 2.0,
        deployment_options: dict[str, Any] | None = None,
    ) -> None:
        if interval_s <= 0 or timeout_s <= 0:
            raise ConfigurationError("LocalModelManager interval_s and timeout_s must be > 0")
        if not ollama_urls and not llamacpp_urls:
            raise ConfigurationError(
                "LocalModelManager needs ollama_urls= and/or llamacpp_urls= to look at"
            )
        self.router = router
        self.ollama_urls = [u.rstrip("/") for u in ollama_urls]
        self.llamacpp_urls = [u.rstrip("/") for u in llamacpp_urls]
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.options = dict(deployment_options or {})
        #: Deployments found at the last check, by name.
        self.found: dict[str, Deployment] = {}
        #: Server URL -> whether it answered at the last check.
        self.servers: dict[str, bool] = {}
        #: Monotonic time of the last finished check (None before the first).
        self.last_check: float | None = None
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ discovery
    async def _ollama(self, client: httpx.AsyncClient, url: str) -> list[Deployment]:
        response = await client.get(f"{url}/api/tags")
        response.raise_for_status()
        models = response.json().get("models", [])
        return [
            Deployment(
                f"ollama_chat/{m['name']}",
                name=f"ollama/{m['name']}@{_host(url)}",
                api_base=url,
                local=True,
                catalog_model=f"ollama/{m['name']}",
                **self.options,
            )
            for m in models
            if m.get("name")
        ]

    async def _llamacpp(self, client: httpx.AsyncClient, url: str) -> list[Deployment]:
        health = await client.get(f"{url}/health")
        health.raise_for_status()
        listing = await client.get(f"{url}/v1/models")
        listing.raise_for_status()
        ids = [m["id"] for m in listing.json().get("data", []) if m.get("id")]
        return [
            Deployment(
                f"openai/{model_id}",
                name=f"llamacpp/{model_id}@{_host(url)}",
                api_base=f"{url}/v1",
                api_key="sk-no-key-required",
                local=True,
                **{"input_cost_per_token": 0.0, "output_cost_per_token": 0.0, **self.options},
            )
            for model_id in ids
        ]

    async def discover(self) -> dict[str, Deployment]:
        """Ask every configured server what it serves now; unreachable servers give nothing."""
        import httpx  # imported here: it costs a noticeable share of the package import

        found: dict[str, Deployment] = {}
        async with httpx.AsyncClient(timeout=self.timeout_s) as client:
            jobs = [(u, self._ollama(client, u)) for u in self.ollama_urls]
            jobs += [(u, self._llamacpp(client, u)) for u in self.llamacpp_urls]
            results = await asyncio.gather(*(job for _, job in jobs), return_exceptions=True)
        for (url, _), result in zip(jobs, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, (httpx.HTTPError, ValueError, KeyError, TypeError)):
                    raise result
                if self.servers.get(url, True):
                    logger.warning("local model server %s is not answering: %s", url, result)
                self.servers[url] = False
                continue
            self.servers[url] = True
            for deployment in result:
                found[deployment.name] = deployment
        return found

    async def refresh(self) -> tuple[list[str], list[str]]:
        """Discover now and sync the router; returns (added names, removed names)."""
        found = await self.discover()
        added = [name for name in found if name not in self.found]
        removed = [name for name in self.found if name not in found]
        for name in removed:
            self.router.remove_deployment(name)
        for name in added:
            self.router.add_deployment(found[name])
        self.found = found
        self.last_check = time.monotonic()
        if added or removed:
            logger.info(
                "local models: added %s, removed %s",
                added,
                removed,
                extra={"event": "router.local_models", "added": added, "removed": removed},
            )
        return added, removed

    # ------------------------------------------------------------------ background checks
    async def _loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # a bad answer must not stop the checks
                logger.exception("local model check failed")
            await asyncio.sleep(self.interval_s)

    async def start(self) -> None:
        """Check once now, then every ``interval_s`` in the background until :meth:`stop`."""
        if self._task is not None and not self._task.done():
            return
        await self.refresh()
        self._task = asyncio.create_task(self._sleep_then_loop())

    async def _sleep_then_loop(self) -> None:
        await asyncio.sleep(self.interval_s)
        await self._loop()

    async def stop(self) -> None:
        """Stop the background checks (the deployments found stay in the router)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def running(self) -> bool:
        """Whether background checks are running."""
        return self._task is not None and not self._task.done()

    async def __aenter__(self) -> LocalModelManager:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
