"""Calling deployments: one attempt, and the sequential / race / parallel modes around it.

Every attempt is accounted once: a budget reservation before it starts, and a settlement with
its real (or, when cancelled, estimated) cost when it ends; its latency and outcome feed the
deployment's health state and the provider monitor.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from aipowertools.core.errors import (
    BudgetExceededError,
    ErrorKind,
    ProviderError,
    StoreUnavailableError,
    as_provider_error,
)
from aipowertools.router._engine import Candidate, Decision
from aipowertools.router._pricing import call_cost, usage_of
from aipowertools.router._result import Attempt
from aipowertools.router._strategies import ParallelBest, Race
from aipowertools.router._telemetry import AttemptTelemetry
from aipowertools.router._transport import Transport
from aipowertools.router._types import Completion

if TYPE_CHECKING:
    from aipowertools.router._shared_health import SharedHealth

# Kinds after which the next deployment may succeed where this one failed.
FAILOVER_KINDS = frozenset(
    {
        ErrorKind.RATE_LIMITED,
        ErrorKind.TIMEOUT,
        ErrorKind.TRANSIENT,
        ErrorKind.AUTHENTICATION,
        ErrorKind.CONTEXT_WINDOW,
    }
)
# Kinds that are the deployment's fault (count towards its circuit breaker).
_HEALTH_KINDS = frozenset({ErrorKind.TIMEOUT, ErrorKind.TRANSIENT, ErrorKind.AUTHENTICATION})
_DEFAULT_PARK_S = 1.0


class Accounting(Protocol):
    """Where attempts are reserved against the budget and recorded (the CostTracker adapter)."""

    async def reserve(
        self, attempt_id: str, candidate: Candidate, request_id: str, who: Any = None
    ) -> Any:
        """Reserve the worst-case cost of an attempt; raise BudgetExceededError if it cannot."""
        ...

    async def settle(
        self, token: Any, attempt: Attempt, candidate: Candidate, who: Any = None
    ) -> None:
        """Record what the attempt really cost and release the rest of the reservation."""
        ...


class Observer(Protocol):
    """Receives latency and outcome of every attempt (the ProviderMonitor adapter)."""

    def __call__(
        self,
        deployment: str,
        latency_ms: float,
        ok: bool,
        output_tokens: int,
        kind: str | None,
        ttft_ms: float | None = None,
    ) -> None:
        """Take one observation."""
        ...


class Executor:
    """Runs decisions: attempts with accounting, failover, hedging and parallel calls."""

    def __init__(
        self,
        transport: Transport,
        accounting: Accounting | None,
        observer: Observer | None,
        limiter: Callable[[Candidate, int], Awaitable[Any]] | None = None,
    ) -> None:
        self.transport = transport
        self.accounting = accounting
        self.observer = observer
        self.limiter = limiter
        #: Where circuit openings and parkings are published for other routers (or None).
        self.health: SharedHealth | None = None

    # ------------------------------------------------------------------ one attempt
    async def attempt(
        self,
        cand: Candidate,
        messages: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
        request_id: str,
        prompt_tokens: int,
        attempts: list[Attempt],
        *,
        hedge: bool = False,
    ) -> Completion:
        """Call one candidate; on failure raise a classified :class:`ProviderError`."""
        d = cand.deployment
        state = cand.state
        attempt_id = uuid.uuid4().hex
        accounting = self.accounting
        token = (
            await accounting.reserve(attempt_id, cand, request_id)
            if accounting is not None
            else None
        )
        record = Attempt(
            d.name, False, 0.0, hedge=hedge, attempt_id=attempt_id, ledger_key=attempt_id
        )
        attempts.append(record)
        start = time.perf_counter()
        state.begin(time.monotonic())
        ticket = None
        telemetry = AttemptTelemetry(d, params)
        try:
            if self.limiter is not None:
                ticket = await self.limiter(cand, prompt_tokens)
            transport = d.transport or self.transport
            completion = await transport.complete(d, messages, params)
        except asyncio.CancelledError:
            # Lost a race (or the caller gave up): the provider still bills the prompt.
            record.latency_ms = (time.perf_counter() - start) * 1000.0
            record.error_kind = "cancelled"
            record.input_tokens = prompt_tokens
            record.cost_usd = call_cost(d, usage_of(record))
            state.cancelled()
            telemetry.cancelled()
            if accounting is not None:
                await _shielded(accounting.settle(token, record, cand))
            raise
        except Warning as warning:
            # A library's warning turned into an exception by a warnings filter ("error"):
            # never a provider error, never the deployment's fault. It reaches the caller as
            # it is; the attempt is accounted like a cancelled one.
            record.latency_ms = (time.perf_counter() - start) * 1000.0
            record.error_kind = "warning"
            state.cancelled()
            if accounting is not None:
                await accounting.settle(token, record, cand)
            raise warning
        except StoreUnavailableError:
            # A store is down (the rate limiter's, set to fail closed): not the deployment's
            # fault, so its health is untouched, and no other deployment would do better.
            record.latency_ms = (time.perf_counter() - start) * 1000.0
            record.error_kind = "store_unavailable"
            state.cancelled()
            if accounting is not None:
                await accounting.settle(token, record, cand)
            raise
        except Exception as exc:
            latency = (time.perf_counter() - start) * 1000.0
            error = (
                exc
                if isinstance(exc, ProviderError)
                else as_provider_error(exc, provider=d.provider, model=d.model)
            )
            kind = error.kind
            record.latency_ms = latency
            record.error_kind = kind.value
            retry_after = error.retry_after
            if kind is ErrorKind.RATE_LIMITED and not retry_after:
                retry_after = _DEFAULT_PARK_S
            open_before, parked_before = state.open_until, state.parked_until
            state.failure(time.monotonic(), counts=kind in _HEALTH_KINDS, retry_after=retry_after)
            if self.health is not None:
                self.health.report(d.name, state, open_before, parked_before)
            if self.observer is not None:
                self.observer(d.name, latency, False, 0, kind.value)
            telemetry.failed(kind.value, error)
            if accounting is not None:
                await accounting.settle(token, record, cand)
            if error is not exc:
                raise error from exc
            raise
        latency = (time.perf_counter() - start) * 1000.0
        if ticket is not None:
            await ticket.asettle(completion.input_tokens + completion.output_tokens)
        if completion.usage_estimated and not completion.input_tokens:
            completion.input_tokens = prompt_tokens
            completion.output_tokens = len(completion.content) // 4
        record.ok = True
        if not any(a.ledger_key == request_id for a in attempts):
            record.ledger_key = request_id
        record.latency_ms = latency
        record.input_tokens = completion.input_tokens
        record.output_tokens = completion.output_tokens
        record.cached_input_tokens = completion.cached_input_tokens
        record.cache_creation_tokens = completion.cache_creation_tokens
        record.reasoning_tokens = completion.reasoning_tokens
        record.cost_usd = call_cost(d, usage_of(record))
        open_before = state.open_until
        state.success(latency)
        if self.health is not None:
            self.health.report(d.name, state, open_before, state.parked_until)
        if self.observer is not None:
            self.observer(d.name, latency, True, completion.output_tokens, None)
        telemetry.ok(
            input_tokens=completion.input_tokens, output_tokens=completion.output_tokens,
            response_model=completion.model, finish_reason=completion.finish_reason,
            cost_usd=record.cost_usd,
        )  # fmt: skip
        if accounting is not None:
            await accounting.settle(token, record, cand)
        return completion

    # ------------------------------------------------------------------ modes
    async def run(
        self,
        decision: Decision,
        strategy: Any,
        messages: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
        prompt_tokens: int,
        attempts: list[Attempt],
    ) -> tuple[Candidate, Completion]:
        """Call the decision's candidates in the strategy's mode; the winner and its answer."""
        if isinstance(strategy, Race) and len(decision.candidates) > 1:
            return await self._race(decision, strategy, messages, params, prompt_tokens, attempts)
        if isinstance(strategy, ParallelBest) and len(decision.candidates) > 1:
            return await self._parallel(
                decision, strategy, messages, params, prompt_tokens, attempts
            )
        return await self._sequential(
            decision.candidates, decision.request_id, messages, params, prompt_tokens, attempts
        )

    async def _sequential(
        self,
        candidates: Sequence[Candidate],
        request_id: str,
        messages: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
        prompt_tokens: int,
        attempts: list[Attempt],
        errors: list[Exception] | None = None,
    ) -> tuple[Candidate, Completion]:
        errors = errors if errors is not None else []
        for i, cand in enumerate(candidates):
            # Health can change while we fail over (another request opened the circuit).
            if i and not cand.state.available(time.monotonic()):
                continue
            try:
                completion = await self.attempt(
                    cand, messages, params, request_id, prompt_tokens, attempts
                )
            except (ProviderError, BudgetExceededError) as error:
                errors.append(error)
                if not can_fail_over(error):
                    raise
                continue
            return cand, completion
        raise exhausted(errors)

    async def _race(
        self,
        decision: Decision,
        strategy: Race,
        messages: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
        prompt_tokens: int,
        attempts: list[Attempt],
    ) -> tuple[Candidate, Completion]:
        candidates = decision.candidates
        rid = decision.request_id
        errors: list[Exception] = []
        pending: dict[asyncio.Task[Completion], Candidate] = {}
        next_i = 0
        hedges = 0
        delay = strategy.delay_s(candidates[0])

        def start(hedge: bool) -> None:
            nonlocal next_i
            while next_i < len(candidates):
                cand = candidates[next_i]
                next_i += 1
                if hedge or next_i == 1 or cand.state.available(time.monotonic()):
                    task = asyncio.ensure_future(
                        self.attempt(
                            cand, messages, params, rid, prompt_tokens, attempts, hedge=hedge
                        )
                    )
                    pending[task] = cand
                    return

        start(False)
        try:
            while pending:
                can_hedge = hedges < strategy.max_hedges and next_i < len(candidates)
                done, _ = await asyncio.wait(
                    pending,
                    timeout=delay if can_hedge else None,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if not done:
                    hedges += 1
                    start(True)
                    continue
                for task in done:
                    cand = pending.pop(task)
                    error = task.exception()
                    if error is None:
                        return cand, task.result()
                    if not isinstance(error, Exception) or not can_fail_over(error):
                        raise error
                    errors.append(error)
                if not pending:
                    start(False)
            raise exhausted(errors)
        finally:
            await _cancel_all(pending)

    async def _parallel(
        self,
        decision: Decision,
        strategy: ParallelBest,
        messages: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
        prompt_tokens: int,
        attempts: list[Attempt],
    ) -> tuple[Candidate, Completion]:
        chosen = decision.candidates[: strategy.n]
        rid = decision.request_id
        outcomes = await asyncio.gather(
            *(
                self.attempt(c, messages, params, rid, prompt_tokens, attempts, hedge=i > 0)
                for i, c in enumerate(chosen)
            ),
            return_exceptions=True,
        )
        answers: list[tuple[Candidate, Completion]] = []
        errors: list[Exception] = []
        for cand, outcome in zip(chosen, outcomes, strict=True):
            if isinstance(outcome, Completion):
                answers.append((cand, outcome))
            elif isinstance(outcome, Exception) and can_fail_over(outcome):
                errors.append(outcome)
            else:
                raise outcome
        if answers:
            return answers[strategy.scorer(answers)]
        return await self._sequential(
            decision.candidates[strategy.n :], rid, messages, params, prompt_tokens, attempts,
            errors,
        )  # fmt: skip


async def _shielded(awaitable: Awaitable[None]) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.shield(awaitable)


async def _cancel_all(pending: Mapping[asyncio.Task[Completion], Candidate]) -> None:
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)


def can_fail_over(error: Exception) -> bool:
    """Whether another deployment may succeed after ``error``."""
    if isinstance(error, ProviderError):
        return error.kind in FAILOVER_KINDS
    return isinstance(error, BudgetExceededError)


def exhausted(all_errors: Sequence[Exception]) -> Exception:
    """One error saying every candidate failed, of the last failure's kind.

    When only the budget stood in the way, the first :class:`BudgetExceededError`.
    """
    errors = [e for e in all_errors if isinstance(e, ProviderError)]
    if not errors:
        budget = [e for e in all_errors if isinstance(e, BudgetExceededError)]
        if budget:
            return budget[0]
        return ProviderError(
            "every candidate became unavailable (circuit open or rate limited) before it "
            "could be called; retry shortly",
            kind=ErrorKind.TRANSIENT,
        )
    last = errors[-1]
    summary = ", ".join(f"{e.model or '?'} ({e.kind.value})" for e in errors)
    retry_after = min((e.retry_after for e in errors if e.retry_after), default=None)
    error = type(last)(
        f"all {len(errors)} attempts failed: {summary}. Last error: {last.message}",
        kind=last.kind,
        provider=last.provider,
        model=last.model,
        status_code=last.status_code,
        retry_after=retry_after,
    )
    error.__cause__ = last
    return error
