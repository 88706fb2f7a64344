"""URL routes of the simulator: chat endpoints per wire format, model listings, ``/_sim``."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from aipowertools.testing._anthropic import AnthropicCodec
from aipowertools.testing._config import Fault
from aipowertools.testing._engine import Engine, _Dropped
from aipowertools.testing._ollama import OllamaCodec, show_payload, tags_payload
from aipowertools.testing._openai import OpenAICodec
from aipowertools.testing._wire import Codec, dumps

__all__ = ["build_app"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=dumps(data), status=status, content_type="application/json")


def build_app(
    engine: Engine,
    bound_model: Callable[[web.Request], str | None],
    track: Callable[[web.Request], None],
) -> web.Application:
    """The aiohttp application serving every endpoint of the simulator."""

    def chat(codec: Codec) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            track(request)
            try:
                return await engine.chat(request, codec, bound_model(request))
            except _Dropped:
                # The transport is already aborted; aiohttp discards this response.
                return web.Response(status=499)

        return handle

    def model_list(request: web.Request) -> list[Any]:
        bound = bound_model(request)
        return [m for name, m in engine.models.items() if bound is None or name == bound]

    async def openai_models(request: web.Request) -> web.Response:
        created = int(time.time())
        return _json(
            {
                "object": "list",
                "data": [
                    {
                        "id": m.name,
                        "object": "model",
                        "created": created,
                        "owned_by": m.owned_by,
                        "meta": {"n_ctx_train": m.context_window},
                    }
                    for m in model_list(request)
                ],
            }
        )

    async def ollama_tags(request: web.Request) -> web.Response:
        return _json(tags_payload(model_list(request)))

    async def ollama_show(request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read() or b"{}")
            name = str(body.get("model") or body.get("name") or "")
        except (ValueError, AttributeError):
            name = ""
        model = engine.find_model(bound_model(request) or name)
        if model is None:
            return _json({"error": f"model '{name}' not found"}, status=404)
        return _json(show_payload(model))

    async def ollama_version(request: web.Request) -> web.Response:
        return _json({"version": "0.6.8"})

    async def health(request: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def stats(request: web.Request) -> web.Response:
        return _json(engine.stats.snapshot().to_dict())

    async def reset(request: web.Request) -> web.Response:
        engine.stats.reset()
        return _json({"ok": True})

    async def fail_next(request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read() or b"{}")
            fault = Fault(
                body.get("fault", "server_error"),
                retry_after=body.get("retry_after"),
                delay_s=body.get("delay_s"),
                after_chunks=int(body.get("after_chunks", 1)),
            )
            count = int(body.get("n", 1))
            model = body.get("model")
            if model is not None and model not in engine.models:
                raise ValueError(f"no simulated model {model!r}")
        except (ValueError, TypeError) as exc:
            return _json({"error": str(exc)}, status=400)
        queue = engine.any_queue if model is None else engine.plans[model].queue
        queue.extend([fault] * count)
        return _json({"ok": True, "queued": count})

    openai = OpenAICodec()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", chat(openai))
    app.router.add_post("/chat/completions", chat(openai))
    app.router.add_get("/v1/models", openai_models)
    app.router.add_get("/models", openai_models)
    app.router.add_post("/v1/messages", chat(AnthropicCodec()))
    app.router.add_post("/api/chat", chat(OllamaCodec()))
    app.router.add_get("/api/tags", ollama_tags)
    app.router.add_post("/api/show", ollama_show)
    app.router.add_get("/api/version", ollama_version)
    app.router.add_get("/health", health)
    app.router.add_get("/_sim/stats", stats)
    app.router.add_post("/_sim/reset", reset)
    app.router.add_post("/_sim/fail_next", fail_next)
    return app
