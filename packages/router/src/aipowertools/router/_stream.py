"""Streaming a routed request: fail over before the first token, never after."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from aipowertools.core.errors import (
    BudgetExceededError,
    ErrorKind,
    ProviderError,
    as_provider_error,
)
from aipowertools.router._execute import _HEALTH_KINDS, can_fail_over, exhausted
from aipowertools.router._result import Attempt, RouteResult
from aipowertools.router._telemetry import AttemptTelemetry, end_route_span, start_route_span
from aipowertools.router._types import Chunk, Completion, ToolCall

if TYPE_CHECKING:
    from aipowertools.router._cached import RouterCache
    from aipowertools.router._context import Prompt
    from aipowertools.router._engine import Decision
    from aipowertools.router._router import LLMRouter


class RouteStream:
    """An answer being streamed: ``async for chunk in stream`` yields :class:`Chunk` objects.

    Attributes:
        decision: where the request goes and why (known before the first chunk).
        result: the full :class:`RouteResult` (cost, usage, latency), set when the stream ends.
        deployment: name of the deployment that is answering (set at the first token).
        ttft_ms: time to first token.
    """

    def __init__(
        self,
        router: LLMRouter,
        decision: Decision,
        prompt: Prompt,
        params: Mapping[str, Any],
        cached: RouterCache | None = None,
    ) -> None:
        self._router = router
        self._cached = cached
        self.decision = decision
        self._prompt = prompt
        self._params = params
        self.result: RouteResult | None = None
        self.deployment: str | None = None
        self.ttft_ms: float | None = None
        # The span active where the stream was asked for is the parent of its spans, wherever
        # (in whichever task) it is iterated.
        from opentelemetry import context

        self._otel_context = context.get_current()

    def __aiter__(self) -> AsyncIterator[Chunk]:
        return self._run()

    async def _run(self) -> AsyncIterator[Chunk]:
        cached = self._cached
        if cached is not None:
            hit = await cached.lookup(self.decision.request_id)
            if hit is not None:  # a cached stream replays as one: chunks, then usage
                self.decision, self.deployment = hit.decision, hit.deployment
                for chunk in hit.chunks or ():
                    yield chunk
                self.result = hit
                return
        span = start_route_span(
            self.decision.request_id, self.decision.strategy, context=self._otel_context
        )
        error: BaseException | None = None
        try:
            async with contextlib.aclosing(self._attempts(span)) as chunks:
                async for chunk in chunks:
                    yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            error = exc
            raise
        finally:
            end_route_span(span, self.result, error)

    async def _attempts(self, route_span: Any) -> AsyncGenerator[Chunk, None]:
        cached = self._cached
        executor, accounting, observer = self._router._stream_parts()
        messages = self._prompt.messages
        prompt_tokens = self._prompt.tokens
        attempts: list[Attempt] = []
        errors: list[Exception] = []
        start = time.perf_counter()
        # The decision was taken synchronously in stream(): other routers' reports read now
        # can still turn its first choice away.
        recheck = await self._router._refresh_health()
        health = executor.health
        for i, cand in enumerate(self.decision.candidates):
            if (i or recheck) and not cand.state.available(time.monotonic()):
                continue
            d = cand.deployment
            state = cand.state
            aid = uuid.uuid4().hex
            record = Attempt(d.name, False, 0.0, attempt_id=aid, ledger_key=aid)
            token = None
            if accounting is not None:
                try:
                    token = await accounting.reserve(aid, cand, self.decision.request_id)
                except BudgetExceededError as budget_error:
                    errors.append(budget_error)
                    continue
            attempts.append(record)
            t0 = time.perf_counter()
            state.begin(time.monotonic())
            telemetry = AttemptTelemetry(d, self._params, parent=route_span, stream=True)
            agen = (d.transport or executor.transport).stream(d, messages, self._params)
            buffered: list[Chunk] = []
            try:
                async for chunk in agen:
                    buffered.append(chunk)
                    if chunk.content or chunk.tool_call_chunks:
                        break
            except Exception as exc:
                error = (
                    exc
                    if isinstance(exc, ProviderError)
                    else as_provider_error(exc, provider=d.provider, model=d.model)
                )
                await _close(agen)
                record.latency_ms = (time.perf_counter() - t0) * 1000.0
                record.error_kind = error.kind.value
                retry_after = error.retry_after
                if error.kind is ErrorKind.RATE_LIMITED and not retry_after:
                    retry_after = 1.0
                open_before, parked_before = state.open_until, state.parked_until
                state.failure(
                    time.monotonic(), counts=error.kind in _HEALTH_KINDS, retry_after=retry_after
                )
                if health is not None:
                    health.report(d.name, state, open_before, parked_before)
                if observer is not None:
                    observer(d.name, record.latency_ms, False, 0, error.kind.value)
                telemetry.failed(error.kind.value, error)
                if accounting is not None:
                    await accounting.settle(token, record, cand)
                errors.append(error)
                if not can_fail_over(error):
                    raise error from (exc if error is not exc else None)
                continue
            # Committed to this deployment: from here on an error reaches the caller.
            self.deployment = d.name
            self.ttft_ms = (time.perf_counter() - t0) * 1000.0
            telemetry.first_chunk()
            parts: list[str] = []
            calls: dict[int, list[str]] = {}
            call_ids: dict[int, tuple[str, str]] = {}
            in_tokens: int | None = None
            out_tokens: int | None = None
            finish: str | None = None
            model: str | None = None
            outcome = "cancelled"
            try:
                pending = iter(buffered)
                while True:
                    next_chunk = next(pending, None)
                    if next_chunk is None:
                        try:
                            next_chunk = await agen.__anext__()
                        except StopAsyncIteration:
                            break
                    chunk = next_chunk
                    if chunk.content:
                        parts.append(chunk.content)
                    for tc in chunk.tool_call_chunks:
                        calls.setdefault(tc.index, []).append(tc.arguments or "")
                        old_id, old_name = call_ids.get(tc.index, ("", ""))
                        call_ids[tc.index] = (tc.id or old_id, tc.name or old_name)
                    if chunk.input_tokens is not None:
                        in_tokens = chunk.input_tokens
                    if chunk.output_tokens is not None:
                        out_tokens = chunk.output_tokens
                    finish = chunk.finish_reason or finish
                    model = chunk.model or model
                    if cached is not None:
                        cached.keep(chunk)
                    yield chunk
                outcome = "ok"
            except Exception as exc:
                error = (
                    exc
                    if isinstance(exc, ProviderError)
                    else as_provider_error(exc, provider=d.provider, model=d.model)
                )
                outcome = error.kind.value
                raise error from (exc if error is not exc else None)
            finally:
                await _close(agen)
                content = "".join(parts)
                estimated = in_tokens is None
                record.latency_ms = (time.perf_counter() - t0) * 1000.0
                record.input_tokens = in_tokens if in_tokens is not None else prompt_tokens
                record.output_tokens = out_tokens if out_tokens is not None else len(content) // 4
                record.cost_usd = record.input_tokens * (
                    d.input_cost_per_token or 0.0
                ) + record.output_tokens * (d.output_cost_per_token or 0.0)
                record.ok = outcome == "ok"
                open_before, parked_before = state.open_until, state.parked_until
                if record.ok:
                    record.ledger_key = self.decision.request_id
                    state.success(record.latency_ms)
                elif outcome == "cancelled":
                    record.error_kind = "cancelled"
                    state.cancelled()
                else:
                    record.error_kind = outcome
                    state.failure(time.monotonic())
                if health is not None:
                    health.report(d.name, state, open_before, parked_before)
                if observer is not None:
                    observer(
                        d.name, record.latency_ms, record.ok, record.output_tokens,
                        None if record.ok else record.error_kind, self.ttft_ms,
                    )  # fmt: skip
                if record.ok:
                    telemetry.ok(
                        input_tokens=record.input_tokens, output_tokens=record.output_tokens,
                        response_model=model, finish_reason=finish, cost_usd=record.cost_usd,
                    )  # fmt: skip
                elif outcome == "cancelled":
                    telemetry.cancelled()
                else:
                    telemetry.failed(outcome, None)
                if accounting is not None:
                    await accounting.settle(token, record, cand)
            completion = Completion(
                content=content,
                tool_calls=[
                    ToolCall(call_ids[k][0] or f"call_{k}", call_ids[k][1], "".join(v))
                    for k, v in sorted(calls.items())
                ],
                input_tokens=record.input_tokens,
                output_tokens=record.output_tokens,
                finish_reason=finish,
                model=model,
                usage_estimated=estimated,
            )
            self.result = RouteResult(
                content=content,
                tool_calls=completion.tool_calls,
                provider=d.provider,
                model=d.model,
                deployment=d.name,
                cost=sum(a.cost_usd for a in attempts),
                latency_ms=(time.perf_counter() - start) * 1000.0,
                decision=self.decision,
                attempts=attempts,
                request_id=self.decision.request_id,
                finish_reason=finish,
                completion=completion,
                catalog_model=d.catalog_model or d.model,
            )
            await self._router._after_stream(self.decision.request_id, d.name)
            if cached is not None:
                await cached.store(self.result)
            return
        raise exhausted(errors)


async def _close(agen: Any) -> None:
    close = getattr(agen, "aclose", None)
    if close is not None:
        # Closing a broken stream must not mask the error that broke it.
        with contextlib.suppress(Exception):
            await close()
