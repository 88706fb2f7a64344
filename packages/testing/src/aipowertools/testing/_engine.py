"""The request pipeline shared by every wire format: model, faults, limits, reply, timing."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from aipowertools.testing._compat import ConfigurationError
from aipowertools.testing._config import Fault, FaultKind, SimModel
from aipowertools.testing._faults import FaultPlan, RateWindow
from aipowertools.testing._prompt_cache import PromptCache
from aipowertools.testing._replies import cap_reply, resolve_reply
from aipowertools.testing._request import count_prompt_tokens, count_text_tokens
from aipowertools.testing._stats import RequestRecord, StatsBook
from aipowertools.testing._wire import Codec, ErrorCategory, Exchange, dumps

__all__ = ["Engine"]

logger = logging.getLogger("aipowertools.testing")

_FAULT_CATEGORY = {
    FaultKind.RATE_LIMIT: ErrorCategory.RATE_LIMIT,
    FaultKind.SERVER_ERROR: ErrorCategory.SERVER,
    FaultKind.BAD_GATEWAY: ErrorCategory.BAD_GATEWAY,
    FaultKind.UNAVAILABLE: ErrorCategory.UNAVAILABLE,
    FaultKind.CONTEXT_LENGTH: ErrorCategory.CONTEXT,
    FaultKind.AUTHENTICATION: ErrorCategory.AUTH,
    FaultKind.CONTENT_POLICY: ErrorCategory.CONTENT_POLICY,
}

_HANG_FOREVER_S = 24 * 3600.0


class _Dropped(Exception):
    """The connection was dropped on purpose (fault or outage); nothing more to send."""


class Engine:
    """Models, fault plans, rate windows and counters, and the chat handler using them.

    Everything here runs on the simulator's event-loop thread, except the small public
    mutators the :class:`~aipowertools.testing.Simulator` calls under the GIL (deque appends,
    dict assignments) and :class:`StatsBook`, which has its own lock.
    """

    def __init__(
        self,
        models: list[SimModel],
        seed: int,
        strict: bool,
        api_key: str | None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.seed = seed
        self.clock = clock
        self.strict = strict
        self.api_key = api_key
        self.models: dict[str, SimModel] = {}
        self.plans: dict[str, FaultPlan] = {}
        self.windows: dict[str, RateWindow] = {}
        self.cursors: dict[str, int] = {}
        self.any_queue: deque[Fault | None] = deque()
        self.stats = StatsBook()
        self.down: set[str | None] = set()
        self.stopping: asyncio.Event | None = None
        self._serial = 0
        self.prompt_cache = PromptCache()
        for model in models:
            self.add_model(model)

    # -- configuration -------------------------------------------------------------------

    def add_model(self, model: SimModel) -> None:
        self.models[model.name] = model
        self.plans[model.name] = FaultPlan(self.seed, model)
        self.windows[model.name] = RateWindow(model.rpm, model.tpm, model.rate_window_s)
        self.cursors[model.name] = 0

    def find_model(self, name: str) -> SimModel | None:
        model = self.models.get(name)
        if model is None and name.endswith(":latest"):
            model = self.models.get(name[: -len(":latest")])
        if model is None and not self.strict and name:
            model = SimModel(name)
            self.add_model(model)
        return model

    def next_fault(self, model: SimModel) -> Fault | None:
        decided, fault = self.plans[model.name].next()
        if not decided and self.any_queue:
            fault = self.any_queue.popleft()
        return fault

    # -- HTTP ------------------------------------------------------------------------------

    @staticmethod
    def drop(request: web.Request) -> None:
        """Abort the connection without a response."""
        if request.transport is not None:
            request.transport.abort()
        raise _Dropped

    def _authorized(self, request: web.Request) -> bool:
        if self.api_key is None:
            return True
        bearer = request.headers.get("Authorization", "")
        keys = {request.headers.get("x-api-key"), bearer.removeprefix("Bearer ").strip()}
        return self.api_key in keys

    def error_response(
        self,
        codec: Codec,
        status: int,
        category: str,
        info: Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        status, body = codec.error(status, category, codec.message(category, info))
        return web.Response(
            status=status, body=dumps(body), headers=headers, content_type="application/json"
        )

    async def chat(
        self, request: web.Request, codec: Codec, bound: str | None
    ) -> web.StreamResponse:
        """Handle one chat request in ``codec``'s wire format."""
        if bound in self.down:
            self.drop(request)
        try:
            body = json.loads(await request.read())
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
        except ValueError as exc:
            return self.error_response(
                codec, 400, ErrorCategory.BAD_REQUEST, {"detail": f"invalid JSON body: {exc}"}
            )
        name = bound if bound is not None else str(body.get("model") or "")
        model = self.find_model(name)
        if model is None:
            return self.error_response(codec, 404, ErrorCategory.NOT_FOUND, {"model": name})
        try:
            sim_request = codec.parse(body, request.headers, str(body.get("model") or name))
        except (ValueError, TypeError, AttributeError) as exc:
            return self.error_response(
                codec, 400, ErrorCategory.BAD_REQUEST, {"detail": f"invalid request: {exc}"}
            )
        started = time.perf_counter()
        record = self.stats.begin(
            model.name, codec.flavor, request.path, sim_request.stream, time.time()
        )
        try:
            response = await self._answer(request, codec, model, sim_request, record)
        except ConfigurationError as exc:
            # A broken reply script: say so in the response instead of a bare 500.
            record.status = 500
            response = self.error_response(
                codec,
                500,
                ErrorCategory.BAD_REQUEST,
                {"detail": f"simulator configuration error: {exc}"},
            )
        except asyncio.CancelledError:
            record.cancelled = True
            raise
        except ConnectionError as exc:
            # The client went away while we were writing: nothing more to send.
            record.cancelled = True
            raise _Dropped from exc
        finally:
            record.latency_ms = (time.perf_counter() - started) * 1000.0
            self.stats.end(record)
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "simulated %s %s -> %s (%d+%d tokens, %.1f ms%s)",
                    record.flavor,
                    record.model,
                    record.status or "no response",
                    record.prompt_tokens,
                    record.completion_tokens,
                    record.latency_ms,
                    f", fault {record.fault}" if record.fault else "",
                    extra={"sim_request": record},
                )
        return response

    async def _answer(
        self,
        request: web.Request,
        codec: Codec,
        model: SimModel,
        sim_request: Any,
        record: RequestRecord,
    ) -> web.StreamResponse:
        tokenizer = model.tokenizer_model or model.name
        prompt_tokens = count_prompt_tokens(tokenizer, sim_request.messages, sim_request.tools)
        record.prompt_tokens = prompt_tokens
        info: dict[str, Any] = {
            "model": model.name,
            "prompt_tokens": prompt_tokens,
            "window": model.context_window,
        }
        if not self._authorized(request):
            record.status = 401
            return self.error_response(codec, 401, ErrorCategory.AUTH, info)
        fault = self.next_fault(model)
        if fault is not None:
            record.fault = fault.fault_kind.value
            early = await self._early_fault(request, codec, fault, info, record)
            if early is not None:
                return early
        window = self.windows[model.name]
        now = self.clock()
        limited = window.check(now, prompt_tokens)
        if limited is not None:
            limit, retry_after = limited
            return self._rate_limited(codec, model, window, now, limit, retry_after, record)
        if model.context_window is not None and prompt_tokens > model.context_window:
            record.status = 400
            return self.error_response(codec, 400, ErrorCategory.CONTEXT, info)
        self._serial += 1
        index = self.cursors[model.name]
        self.cursors[model.name] = index + 1
        reply = resolve_reply(
            model,
            sim_request,
            index,
            "toolu_sim" if codec.flavor == "anthropic" else "call_sim",
            self._serial,
        )
        output = count_text_tokens(tokenizer, reply.text) + sum(
            count_text_tokens(tokenizer, c.name + c.arguments) for c in reply.tool_calls
        )
        cap = sim_request.max_tokens
        truncated = cap is not None and output + reply.reasoning_tokens > cap
        if truncated:
            # Generation stops at max_tokens: cut the reply there, usage never exceeds it.
            reply, output = cap_reply(tokenizer, reply, cap or 0)
        exchange = Exchange(
            sim_request, model, self._serial, int(time.time()), prompt_tokens, reply, output, fault
        )
        exchange.truncated = truncated
        if model.prompt_caching:
            exchange.prefix_cached, exchange.prefix_created = self.prompt_cache.account(
                codec.flavor, model.name, sim_request, prompt_tokens, tokenizer,
                model.prompt_cache_ttl_s,
            )  # fmt: skip
        record.cached_tokens = exchange.cached_tokens
        record.cache_creation_tokens = exchange.cache_creation_tokens
        window.add(now, prompt_tokens + exchange.completion_tokens)
        exchange.headers = window.headers(now, "x-ratelimit-")
        record.completion_tokens = exchange.completion_tokens
        first_delay = model.ttft_ms / 1000.0
        if fault is not None and fault.fault_kind is FaultKind.SLOW_FIRST_TOKEN:
            first_delay += 5.0 if fault.delay_s is None else fault.delay_s
        if sim_request.stream:
            return await self._stream(request, codec, exchange, first_delay, record)
        await self._sleep(first_delay + model.per_token_ms * exchange.completion_tokens / 1000.0)
        payload = dumps(codec.render(exchange))
        if fault is not None and fault.fault_kind is FaultKind.MALFORMED_JSON:
            payload = payload[: len(payload) // 2]
        if fault is not None and fault.fault_kind is FaultKind.STREAM_CUT:
            response = web.StreamResponse(status=200, headers=exchange.headers)
            response.content_type = "application/json"
            response.content_length = len(payload)
            record.status = 200
            await response.prepare(request)
            await response.write(payload[: len(payload) // 2])
            self.drop(request)
        record.status = 200
        return web.Response(body=payload, content_type="application/json", headers=exchange.headers)

    async def _early_fault(
        self,
        request: web.Request,
        codec: Codec,
        fault: Fault,
        info: dict[str, Any],
        record: RequestRecord,
    ) -> web.Response | None:
        kind = fault.fault_kind
        category = _FAULT_CATEGORY.get(kind)
        if category is not None:
            status = fault.status or 500
            headers: dict[str, str] = {}
            if kind is FaultKind.RATE_LIMIT:
                retry_after = 1.0 if fault.retry_after is None else fault.retry_after
                headers = _retry_headers(retry_after)
                headers.update(
                    {
                        "x-ratelimit-limit-requests": "1",
                        "x-ratelimit-remaining-requests": "0",
                        "x-ratelimit-reset-requests": f"{retry_after:g}s",
                    }
                )
                info = {**info, "limit": "requests", "limit_value": 1, "retry_after": retry_after}
            record.status = status
            return self.error_response(codec, status, category, info, headers)
        if kind is FaultKind.DISCONNECT:
            self.drop(request)
        if kind is FaultKind.HANG:
            await self._sleep(_HANG_FOREVER_S if fault.delay_s is None else fault.delay_s)
            self.drop(request)
        return None

    def _rate_limited(
        self,
        codec: Codec,
        model: SimModel,
        window: RateWindow,
        now: float,
        limit: str,
        retry_after: float,
        record: RequestRecord,
    ) -> web.Response:
        record.status = 429
        headers = window.headers(now, "x-ratelimit-")
        headers.update(_retry_headers(retry_after))
        info = {
            "model": model.name,
            "limit": limit,
            "limit_value": window.rpm if limit == "requests" else window.tpm,
            "retry_after": retry_after,
        }
        return self.error_response(codec, 429, ErrorCategory.RATE_LIMIT, info, headers)

    async def _stream(
        self,
        request: web.Request,
        codec: Codec,
        ex: Exchange,
        first_delay: float,
        record: RequestRecord,
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers=ex.headers)
        response.content_type = codec.stream_content_type
        response.headers["Cache-Control"] = "no-cache"
        await self._sleep(first_delay)
        await response.prepare(request)
        record.status = 200
        chunks = list(codec.stream(ex))
        per_chunk = ex.model.per_token_ms * ex.completion_tokens / 1000.0 / max(1, len(chunks))
        fault = ex.fault.fault_kind if ex.fault is not None else None
        for sent, chunk in enumerate(chunks):
            if fault is FaultKind.STREAM_CUT and ex.fault and sent >= ex.fault.after_chunks:
                self.drop(request)
            if sent and per_chunk:
                await self._sleep(per_chunk)
            if fault is FaultKind.MALFORMED_JSON and sent == 1:
                await response.write(codec.malformed_chunk())
            await response.write(chunk)
        await response.write_eof()
        return response

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake up early when the simulator stops (so hangs end with it)."""
        if seconds <= 0:
            return
        if self.stopping is None:  # pragma: no cover - set by the server before serving
            await asyncio.sleep(seconds)
            return
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            return


def _retry_headers(retry_after: float) -> dict[str, str]:
    seconds = max(0.0, retry_after)
    return {
        "retry-after": str(max(1, int(-(-seconds // 1)))) if seconds > 0 else "0",
        "retry-after-ms": str(round(seconds * 1000)),
    }
