"""CostTracker: one source of truth for money (ledger, budgets, reports, forecast)."""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import random
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from aipowertools.core._budget import (
    BudgetAlert,
    BudgetLimit,
    Budgets,
    Reservation,
    _check_period,
    tag_tuple,
    usd,
)
from aipowertools.core._errors import (
    BudgetExceededError,
    ConfigurationError,
    StoreUnavailableError,
    StoreURLError,
)
from aipowertools.core._journal import SettleJournal
from aipowertools.core._ledger import (
    LedgerBackend,
    LedgerRecord,
    Period,
    bucket_key,
    call_buckets,
    check_namespace,
    from_nanos,
    to_nanos,
)
from aipowertools.core._ledger_memory import MemoryLedger
from aipowertools.core._reports import LedgerQueries, TimeLike, to_ts
from aipowertools.core._span import CallSpan

if TYPE_CHECKING:
    from aipowertools.core._usage import Usage
    from aipowertools.core.stores import StoreURL

logger = logging.getLogger("aipowertools.core")
T = TypeVar("T")
_FIRST_DELAY_S = 0.005
_MAX_DELAY_S = 0.05


def _overrun(record: LedgerRecord, reservation: Reservation) -> None:
    """Log a settle above its reservation: the real cost is recorded and counts in full.

    Reservations bound the prompt by ``prompt_upper_bound`` (a 25 % margin for estimated
    token counts plus chat framing); a provider billing beyond that, or a reservation made
    with a too-low ``estimate_usd``, lands here.
    """
    logger.warning(
        "call %s settled at $%.9f, above its reservation of $%.9f (+%.1f%%): the real cost is "
        "recorded and counts against the budget in full; raise estimate_usd or max_tokens if "
        "this repeats",
        record.request_id,
        record.cost_usd,
        reservation.amount_usd,
        (record.cost_usd / reservation.amount_usd - 1) * 100 if reservation.amount_usd else 100.0,
        extra={
            "event": "budget.overrun",
            "request_id": record.request_id,
            "cost_usd": record.cost_usd,
            "reserved_usd": reservation.amount_usd,
        },
    )


def _backoff(attempt: int) -> float:
    """Jittered exponential delay between reservation attempts while waiting."""
    return min(_MAX_DELAY_S, _FIRST_DELAY_S * 1.5**attempt) * random.uniform(0.5, 1.5)


def _memory(url: StoreURL, namespace: str) -> LedgerBackend:
    return MemoryLedger()


def _sqlite(url: StoreURL, namespace: str) -> LedgerBackend:
    from aipowertools.core._ledger_sqlite import SQLiteLedger

    assert url.path is not None  # parse_store_url always gives sqlite URLs a path
    return SQLiteLedger(url.path, namespace)


def _redis(url: StoreURL, namespace: str) -> LedgerBackend:
    from aipowertools.core._ledger_redis import RedisLedger

    return RedisLedger(url.raw, namespace)


def _postgres(url: StoreURL, namespace: str) -> LedgerBackend:
    from aipowertools.core._ledger_postgres import PostgresLedger

    return PostgresLedger(url.raw, namespace)


# Backends are imported on first use: redis-py and psycopg only when asked for.
_BACKENDS: dict[str, Callable[[StoreURL, str], LedgerBackend]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "redis": _redis,
    "postgresql": _postgres,
}


def open_backend(store: str | None, namespace: str) -> LedgerBackend:
    """Open the ledger backend a store URL names (``None``: env, then the SQLite default)."""
    from aipowertools.core.stores import data_dir, parse_store_url

    url = parse_store_url(store, default=f"sqlite:///{data_dir() / 'ledger.db'}")
    opener = _BACKENDS.get(url.scheme)
    if opener is None:
        raise StoreURLError(
            url.raw,
            f"the cost ledger cannot live in a {url.scheme!r} store; use memory://, "
            "sqlite:///path, redis://... or postgresql://...",
        )
    return opener(url, namespace)


def _meta(response: object) -> tuple[str | None, str | None]:
    """Provider request id and model name carried by a response, where it has them."""
    source: object = response
    if hasattr(response, "response_metadata"):  # LangChain AIMessage
        source = getattr(response, "response_metadata", None)
    elif hasattr(response, "raw") and not hasattr(response, "choices"):  # LlamaIndex
        source = getattr(response, "raw", None)
    if isinstance(source, Mapping):
        rid, model = source.get("id"), source.get("model_name") or source.get("model")
    else:  # litellm ModelResponse, OpenAI ChatCompletion, Anthropic Message, ...
        rid, model = getattr(source, "id", None), getattr(source, "model", None)
    return (rid if isinstance(rid, str) and rid else None), (
        model if isinstance(model, str) and model else None
    )


def _provider(model: str) -> str | None:
    if "/" in model:
        return model.split("/", 1)[0]
    from aipowertools.core import default_catalog

    try:
        info = default_catalog().get(model)
    except KeyError:
        return None
    provider = getattr(info, "provider", None)
    return provider if isinstance(provider, str) else None


class CostTracker(LedgerQueries):
    """Record what every LLM call cost, enforce budgets, and report and forecast spend.

    The ledger, budget counters and reservations live in one store chosen by URL:
    ``sqlite:///path`` (the default, under :func:`aipowertools.core.stores.data_dir`),
    ``redis://...``, ``postgresql://...`` or ``memory://``; ``AIPOWERTOOLS_STORE`` sets the
    default. Every process that shares a store shares the budget.

    Args:
        budget_usd: hard global limit per ``budget_period``; calls that could pass it are
            refused with :class:`~aipowertools.core.errors.BudgetExceededError`.
        alert_threshold_usd: global spend that raises a :class:`BudgetAlert` (logged on
            ``aipowertools.core`` and sent to ``on_alert`` callbacks) once per crossing.
        store: store URL (see above).
        budget_period: ``"month"`` (default), ``"day"`` or ``"total"``; UTC windows.
        namespace: separates ledgers sharing one store (table names / key prefixes).
        reservation_ttl_s: a reservation not settled within this many seconds expires and its
            budget returns (a crashed process cannot hold budget forever).
        reserve_wait_s: how long a reservation may wait for other calls' reservations to
            settle when only they stand in the way (0: refuse at once).
        on_alert: a callback for budget alerts (more with :meth:`on_alert`).

    Example:
        >>> from aipowertools.core import CostTracker, Usage
        >>> tracker = CostTracker(budget_usd=100.0, alert_threshold_usd=80.0, store="memory://")
        >>> with tracker.track_call(task_name="summarize", model="gpt-4o-mini") as span:
        ...     span.record(Usage(input_tokens=1200, output_tokens=300))  # or a response
        >>> tracker.get_daily_report().task_count
        1
    """

    def __init__(
        self,
        budget_usd: float | None = None,
        alert_threshold_usd: float | None = None,
        store: str | None = None,
        *,
        budget_period: Period = "month",
        namespace: str = "default",
        reservation_ttl_s: float = 600.0,
        reserve_wait_s: float = 0.0,
        on_alert: Callable[[BudgetAlert], object] | None = None,
    ) -> None:
        if not reservation_ttl_s > 0:
            raise ConfigurationError(
                f"reservation_ttl_s must be > 0 seconds, got {reservation_ttl_s!r}"
            )
        if not reserve_wait_s >= 0:
            raise ConfigurationError(f"reserve_wait_s must be >= 0 seconds, got {reserve_wait_s!r}")
        self.budgets = Budgets()
        if budget_usd is not None:
            self.budgets.add(
                BudgetLimit("global", budget_period, budget_usd, True, alert_threshold_usd)
            )
        elif alert_threshold_usd is not None:
            self.budgets.add(BudgetLimit("global", budget_period, alert_threshold_usd, False))
        if on_alert is not None:
            self.budgets.on_alert(on_alert)
        self.budget_period: Period = budget_period
        self.reservation_ttl_s = reservation_ttl_s
        self.reserve_wait_s = reserve_wait_s
        self.namespace = check_namespace(namespace)
        self._backend = open_backend(store, self.namespace)
        # Stores that can be down (Redis, PostgreSQL) journal what they refuse at settle time.
        url = getattr(self._backend, "url", None)
        self._journal: SettleJournal | None = (
            SettleJournal.for_store(f"{url}#{self.namespace}") if url else None
        )
        # The in-memory backend never blocks: no thread hop for it in async code.
        self._inline = isinstance(self._backend, MemoryLedger)
        self._gate = threading.Lock()
        self._async_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    # ------------------------------------------------------------------ configuration

    def add_budget(
        self,
        limit_usd: float,
        *,
        scope: str = "global",
        period: Period = "month",
        hard: bool = True,
        alert_at_usd: float | None = None,
    ) -> BudgetLimit:
        """Add (or replace) a limit on ``scope`` for ``period``.

        Args:
            limit_usd: the limit in USD.
            scope: ``"global"``, ``"user:<id>"``, ``"task:<name>"``, ``"tag:<project>"``, or
                ``"user:*"`` / ``"task:*"`` / ``"tag:*"`` for one limit per user, task or tag.
            period: ``"day"``, ``"month"`` (UTC calendar windows) or ``"total"``.
            hard: refuse calls that could pass it (True) or only alert when crossed (False).
            alert_at_usd: spend level that raises an alert once per crossing.

        Returns:
            The limit as stored.
        """
        if not isinstance(scope, str):
            raise ConfigurationError(
                f"scope must be a string such as 'global' or 'user:42', got {scope!r}"
            )
        return self.budgets.add(BudgetLimit(scope, period, limit_usd, hard, alert_at_usd))

    def on_alert(self, callback: Callable[[BudgetAlert], object]) -> None:
        """Call ``callback(alert)`` whenever spend crosses an alert threshold."""
        self.budgets.on_alert(callback)

    # ------------------------------------------------------------------ threading helpers

    async def _off_loop(self, fn: Callable[[], T]) -> T:
        if self._inline:
            return fn()
        return await asyncio.to_thread(fn)

    # ------------------------------------------------------------------ reserve / settle

    def _estimate(
        self,
        estimate_usd: float | None,
        model: str | None,
        messages: str | Sequence[Any] | None,
        max_tokens: int | None,
    ) -> float:
        if estimate_usd is not None:
            return usd(estimate_usd, "estimate_usd")
        if messages is not None and model is not None and max_tokens is not None:
            from aipowertools.core import estimate_cost

            return float(estimate_cost(messages, model, max_tokens))
        return 0.0

    def _try_reserve(
        self, res: Reservation, buckets: Sequence[str], rules: Any, optimistic: bool = False
    ) -> tuple[BudgetExceededError, bool] | None:
        """One attempt: None when held, else the error and whether waiting could help."""
        amount = max(to_nanos(res.amount_usd), 1)
        outcome = self._backend.reserve(
            res.id,
            amount,
            buckets,
            self.budgets.checks(rules),
            expires_at=res.expires_at,
            now=time.time(),
            optimistic=optimistic,
        )
        if outcome.ok:
            return None
        failed = outcome.failed
        assert failed is not None
        scope = failed.bucket.partition("|")[0]
        err = BudgetExceededError(
            scope,
            from_nanos(failed.limit_nanos),
            from_nanos(outcome.spent_nanos + outcome.reserved_nanos),
            res.amount_usd,
        )
        # Waiting can help only if settled spend alone leaves room for this call.
        return err, outcome.spent_nanos + amount <= failed.limit_nanos

    def _new_reservation(
        self,
        estimate_usd: float | None,
        *,
        model: str | None,
        messages: str | Sequence[Any] | None,
        max_tokens: int | None,
        user: str | None,
        task: str | None,
        tags: Sequence[str],
        request_id: str | None,
        ttl_s: float | None,
        ts: float | None = None,
    ) -> tuple[Reservation, list[str], Any]:
        amount = self._estimate(estimate_usd, model, messages, max_tokens)
        now = time.time() if ts is None else ts
        ttl = self.reservation_ttl_s if ttl_s is None else ttl_s
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 0 < ttl < math.inf:
            raise ConfigurationError(f"ttl_s must be a number of seconds > 0, got {ttl!r}")
        tags = tag_tuple(tags)
        res = Reservation(uuid.uuid4().hex, amount, now + ttl, now, user, task, tags, request_id)
        return res, call_buckets(user, task, tags, now), self.budgets.rules(user, task, tags, now)

    def reserve(
        self,
        estimate_usd: float | None = None,
        *,
        model: str | None = None,
        messages: str | Sequence[Any] | None = None,
        max_tokens: int | None = None,
        user: str | None = None,
        task: str | None = None,
        tags: Sequence[str] = (),
        request_id: str | None = None,
        ttl_s: float | None = None,
        wait_s: float | None = None,
    ) -> Reservation:
        """Hold the worst-case cost of a call before making it, atomically across processes.

        Args:
            estimate_usd: worst-case cost; else computed from ``messages``, ``model`` and
                ``max_tokens`` with :func:`~aipowertools.core.estimate_cost`; else 0 (the call
                is then only refused once the budget is used up).
            model: model to be called.
            messages: the prompt, for the estimate.
            max_tokens: the output cap, for the estimate.
            user: user the call is for (``user:`` budgets).
            task: task name (``task:`` budgets).
            tags: project tags (``tag:`` budgets).
            request_id: request id the ledger record will carry.
            ttl_s: expiry of this reservation (default ``reservation_ttl_s``).
            wait_s: how long to wait for other reservations to settle (default
                ``reserve_wait_s``).

        Returns:
            The reservation; pass it to :meth:`settle` (or :meth:`record`) after the call,
            or to :meth:`release` if the call failed.

        Raises:
            BudgetExceededError: a hard limit would be passed; no provider was called.
        """
        res, buckets, rules = self._new_reservation(
            estimate_usd,
            model=model,
            messages=messages,
            max_tokens=max_tokens,
            user=user,
            task=task,
            tags=tags,
            request_id=request_id,
            ttl_s=ttl_s,
        )
        if not self.budgets.limits:
            return res
        deadline = time.monotonic() + (self.reserve_wait_s if wait_s is None else wait_s)
        failure = self._try_reserve(res, buckets, rules)
        if failure is None:
            return res
        # Waiters of this process queue (FIFO) behind one that polls the store.
        if not failure[1] or not self._gate.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise failure[0]
        try:
            attempt = 0
            while True:
                failure = self._try_reserve(res, buckets, rules, optimistic=True)
                if failure is None:
                    return res
                if not failure[1] or time.monotonic() >= deadline:
                    raise failure[0]
                time.sleep(_backoff(attempt))
                attempt += 1
        finally:
            self._gate.release()

    async def areserve(
        self,
        estimate_usd: float | None = None,
        *,
        model: str | None = None,
        messages: str | Sequence[Any] | None = None,
        max_tokens: int | None = None,
        user: str | None = None,
        task: str | None = None,
        tags: Sequence[str] = (),
        request_id: str | None = None,
        ttl_s: float | None = None,
        wait_s: float | None = None,
    ) -> Reservation:
        """Async :meth:`reserve` (the store is called off the event loop).

        Counting the tokens of ``messages`` (which loads litellm's tokenizers and model map
        on first use, seconds) runs on a worker thread too: nothing heavy runs on the loop.
        """
        new = functools.partial(
            self._new_reservation,
            estimate_usd,
            model=model,
            messages=messages,
            max_tokens=max_tokens,
            user=user,
            task=task,
            tags=tags,
            request_id=request_id,
            ttl_s=ttl_s,
        )
        counts = estimate_usd is None and messages is not None and model is not None
        res, buckets, rules = await asyncio.to_thread(new) if counts else new()
        if not self.budgets.limits:
            return res
        deadline = time.monotonic() + (self.reserve_wait_s if wait_s is None else wait_s)
        failure = await self._off_loop(lambda: self._try_reserve(res, buckets, rules))
        if failure is None:
            return res
        if not failure[1]:
            raise failure[0]
        gate = self._async_gate()
        try:
            await asyncio.wait_for(gate.acquire(), max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            raise failure[0] from None
        try:
            attempt = 0
            while True:
                failure = await self._off_loop(
                    lambda: self._try_reserve(res, buckets, rules, optimistic=True)
                )
                if failure is None:
                    return res
                if not failure[1] or time.monotonic() >= deadline:
                    raise failure[0]
                await asyncio.sleep(_backoff(attempt))
                attempt += 1
        finally:
            gate.release()

    def _async_gate(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        gate = self._async_gates.get(loop)
        if gate is None:
            gate = self._async_gates[loop] = asyncio.Lock()
        return gate

    def _span_reserve(self, span: CallSpan) -> Reservation | None:
        if not self.budgets.limits:
            return None
        return self.reserve(
            span._estimate,
            model=span.model,
            messages=span._messages,
            max_tokens=span._max_tokens,
            user=span.user,
            task=span.task,
            tags=span.tags,
            request_id=span.request_id,
        )

    async def _span_reserve_async(self, span: CallSpan) -> Reservation | None:
        if not self.budgets.limits:
            return None
        return await self.areserve(
            span._estimate,
            model=span.model,
            messages=span._messages,
            max_tokens=span._max_tokens,
            user=span.user,
            task=span.task,
            tags=span.tags,
            request_id=span.request_id,
        )

    def release(self, reservation: Reservation) -> bool:
        """Return a reservation's budget (the call failed or was not made).

        Returns:
            False when it had been settled, released or expired already.
        """
        if not isinstance(reservation, Reservation):
            raise ConfigurationError(
                f"release() takes the Reservation reserve() returned, got "
                f"{type(reservation).__name__} {reservation!r}"
            )
        if reservation.done:
            return False
        reservation.done = True
        return self._backend.release(reservation.id)

    async def arelease(self, reservation: Reservation) -> bool:
        """Async :meth:`release`."""
        return await self._off_loop(lambda: self.release(reservation))

    # ------------------------------------------------------------------ recording

    def _write(
        self, response: object = None, *, reservation: Reservation | None = None, **fields: Any
    ) -> tuple[LedgerRecord, bool]:
        try:
            record = self._build(response, reservation=reservation, **fields)
        except BaseException:
            # A record that cannot be built must not leave its budget held until expiry.
            if reservation is not None:
                self.release(reservation)
            raise
        rules = self.budgets.rules(record.user, record.task, record.tags, record.ts)
        reservation_id = None
        if reservation is not None and not reservation.done:
            reservation.done = True
            reservation_id = reservation.id
            if to_nanos(record.cost_usd) > max(to_nanos(reservation.amount_usd), 1):
                _overrun(record, reservation)
        if self._journal is not None and self._journal.has_pending():
            self._replay_journal()
        try:
            result = self._backend.write(
                record, reservation_id=reservation_id, thresholds=self.budgets.thresholds(rules)
            )
        except StoreUnavailableError as exc:
            if self._journal is None:
                raise
            # The call happened and is billed: keep its record durably and write it when the
            # store is back; the reservation's hold stays until then (or until it expires).
            self._journal.add(record, reservation_id)
            logger.warning(
                "ledger store unavailable (%s): record %s journaled in %s, written when the "
                "store answers again",
                exc, record.request_id, self._journal.path,
            )  # fmt: skip
            return record, True
        if result.crossed:
            self.budgets.alert(rules, result.crossed)
        return record, result.inserted

    def _replay_journal(self) -> int:
        """Write the journaled records the store refused before; returns how many landed."""
        journal = self._journal
        if journal is None:
            return 0

        def write(record: LedgerRecord, reservation_id: str | None) -> None:
            rules = self.budgets.rules(record.user, record.task, record.tags, record.ts)
            result = self._backend.write(
                record, reservation_id=reservation_id, thresholds=self.budgets.thresholds(rules)
            )
            if result.crossed:
                self.budgets.alert(rules, result.crossed)

        landed = journal.replay(write)
        if landed:
            logger.warning("ledger store answers again: %d journaled record(s) written", landed)
        return landed

    def flush_journal(self) -> int:
        """Write the records journaled during a store outage now; returns how many landed.

        They are also written by the next :meth:`record` / :meth:`settle`; this is for a
        process that wants them in before it exits (or an operator's ``doctor`` run).
        """
        return self._replay_journal()

    def _build(
        self,
        response: object = None,
        *,
        model: str | None = None,
        request_id: str | None = None,
        usage: Usage | None = None,
        cost_usd: float | None = None,
        cost_exact: bool | None = None,
        provider: str | None = None,
        task: str | None = None,
        user: str | None = None,
        session: str | None = None,
        tags: Sequence[str] = (),
        trace_id: str | None = None,
        latency_ms: float | None = None,
        status: str = "ok",
        ts: TimeLike = None,
        reservation: Reservation | None = None,
        saved_usd: float = 0.0,
    ) -> LedgerRecord:
        rid, response_model = _meta(response)
        model = model or response_model
        if model is not None and not isinstance(model, str):
            raise ConfigurationError(
                f"model must be a model name (str), got {type(model).__name__} {model!r}"
            )
        if model is None:
            raise ConfigurationError(
                "cannot record a call without its model: pass model=... (the response "
                "did not name one)"
            )
        if usage is None and response is not None:
            from aipowertools.core import Usage

            usage = Usage.from_any(response)
        exact = True
        if cost_usd is None:
            if usage is None:
                raise ConfigurationError(
                    f"cannot price a call to {model!r} without its usage: pass the response, "
                    "usage=Usage(...) or cost_usd=..."
                )
            else:
                from aipowertools.core import cost

                cost_usd = float(cost(usage, model))
                exact = not bool(getattr(usage, "estimated", False))
        else:
            cost_usd = usd(cost_usd, "cost_usd")
        if cost_exact is not None:
            exact = cost_exact
        res = reservation
        if res is not None:
            user = user if user is not None else res.user
            task = task if task is not None else res.task
            tags = tags or res.tags
        record = LedgerRecord(
            request_id=request_id or rid or (res.request_id if res else None) or uuid.uuid4().hex,
            ts=to_ts(ts, res.ts if res is not None else time.time()),
            model=model,
            provider=provider or _provider(model),
            input_tokens=int(getattr(usage, "input_tokens", 0) or 0),
            output_tokens=int(getattr(usage, "output_tokens", 0) or 0),
            cached_input_tokens=int(getattr(usage, "cached_input_tokens", 0) or 0),
            cache_creation_tokens=int(getattr(usage, "cache_creation_tokens", 0) or 0),
            reasoning_tokens=int(getattr(usage, "reasoning_tokens", 0) or 0),
            cost_usd=cost_usd,
            cost_exact=exact,
            latency_ms=latency_ms,
            status=status,
            task=task,
            user=user,
            session=session,
            tags=tag_tuple(tags),
            trace_id=trace_id,
            saved_usd=usd(saved_usd, "saved_usd") if saved_usd else 0.0,
        )
        return record

    def record(
        self,
        response: object = None,
        *,
        model: str | None = None,
        request_id: str | None = None,
        usage: Usage | None = None,
        cost_usd: float | None = None,
        cost_exact: bool | None = None,
        provider: str | None = None,
        task: str | None = None,
        user: str | None = None,
        session: str | None = None,
        tags: Sequence[str] = (),
        trace_id: str | None = None,
        latency_ms: float | None = None,
        status: str = "ok",
        ts: TimeLike = None,
        reservation: Reservation | None = None,
        saved_usd: float = 0.0,
    ) -> bool:
        """Write one call to the ledger; a second write with the same request id is a no-op.

        Args:
            response: a litellm ``ModelResponse``, LangChain ``AIMessage``, LlamaIndex
                ``ChatResponse``, provider usage payload or :class:`Usage`; its usage, model
                and provider request id are read from it.
            model: the model that answered (required unless the response names it).
            request_id: the idempotency key; default: the response's provider id, then the
                reservation's ``request_id``, then a fresh uuid.
            usage: token usage (instead of, or overriding, the response's).
            cost_usd: the cost, if known (default: computed from usage with catalog prices).
            cost_exact: whether ``cost_usd`` is exact (default: True unless usage was
                estimated).
            provider: the provider (default: from the model name or the catalog).
            task: task name.
            user: user id.
            session: session id.
            tags: project tags.
            trace_id: trace id to join the record to logs and spans.
            latency_ms: call latency.
            status: ``"ok"`` or ``"error"`` (or a finer error kind).
            ts: time of the call (datetime or epoch seconds; default now, or the
                reservation's time).
            reservation: the reservation made for this call; it is settled in the same
                atomic step.
            saved_usd: what the call saved (a response cache answering instead of the
                provider records a $0 call with what the provider would have charged).

        Returns:
            True if the record was written, False if the request id was already recorded.
        """
        return self._write(
            response,
            model=model,
            request_id=request_id,
            usage=usage,
            cost_usd=cost_usd,
            cost_exact=cost_exact,
            provider=provider,
            task=task,
            user=user,
            session=session,
            tags=tags,
            trace_id=trace_id,
            latency_ms=latency_ms,
            status=status,
            ts=ts,
            reservation=reservation,
            saved_usd=saved_usd,
        )[1]

    async def arecord(self, response: object = None, **kwargs: Any) -> bool:
        """Async :meth:`record` (same arguments)."""
        return await self._off_loop(lambda: self.record(response, **kwargs))

    def settle(self, reservation: Reservation, response: object = None, **kwargs: Any) -> bool:
        """Record the call a reservation was made for and return the unused budget.

        Same arguments as :meth:`record`; user, task and tags default to the reservation's.

        Returns:
            True if the record was written, False if its request id was already recorded
            (the reservation is released either way).
        """
        return self.record(response, reservation=reservation, **kwargs)

    async def asettle(
        self, reservation: Reservation, response: object = None, **kwargs: Any
    ) -> bool:
        """Async :meth:`settle`."""
        return await self._off_loop(lambda: self.settle(reservation, response, **kwargs))

    def track_call(
        self,
        task_name: str | None = None,
        *,
        model: str | None = None,
        provider: str | None = None,
        user: str | None = None,
        session: str | None = None,
        tags: Sequence[str] = (),
        trace_id: str | None = None,
        request_id: str | None = None,
        estimate_usd: float | None = None,
        messages: str | Sequence[Any] | None = None,
        max_tokens: int | None = None,
    ) -> CallSpan:
        """Track one call: ``with`` or ``async with``; call ``span.record(response)`` inside.

        On entry the call's worst case is reserved against every hard limit that applies
        (``estimate_usd``, or ``messages`` + ``max_tokens`` priced for ``model``; without
        either, the call is only refused once the budget is used up). On exit the record is
        written and the reservation settled in one step; if the block raised before
        ``record``, the reservation is released and an ``"error"`` record of $0 is written.

        Calls the library makes inside the block record themselves into it: an
        ``LLMRouter`` call (directly or through ``RouterChatModel`` / ``RouterLLM``) takes the
        span's user, task, session and tags and hands its row to the span, so no
        ``span.record()`` is needed. ``task_name`` may be given positionally:
        ``track_call("code_gen")``.

        Raises:
            BudgetExceededError: on entry, before the block runs.
        """
        return CallSpan(
            self,
            model=model,
            provider=provider,
            task=task_name,
            user=user,
            session=session,
            tags=tag_tuple(tags),
            trace_id=trace_id,
            request_id=request_id,
            estimate_usd=estimate_usd,
            messages=messages,
            max_tokens=max_tokens,
        )

    # ------------------------------------------------------------------ budget state

    def _limits_for(
        self, scope: str, period: Period | None, hard: bool = True
    ) -> list[BudgetLimit]:
        return [
            limit
            for limit in self.budgets.limits
            if limit.hard == hard
            and (period is None or limit.period == period)
            and limit.applies_to([scope]) is not None
        ]

    def spent_usd(self, scope: str = "global", period: Period = "month") -> float:
        """Settled spend of ``scope`` in the current ``period`` window (UTC)."""
        key = bucket_key(scope, _check_period(period), time.time())
        return from_nanos(self._backend.buckets([key], time.time())[key][0])

    def reserved_usd(self, scope: str = "global", period: Period = "month") -> float:
        """Budget held by open (unexpired) reservations in ``scope`` for ``period``."""
        key = bucket_key(scope, _check_period(period), time.time())
        return from_nanos(self._backend.buckets([key], time.time())[key][1])

    def remaining_usd(self, scope: str = "global", period: Period | None = None) -> float | None:
        """What the tightest hard limit on ``scope`` still allows now (never negative).

        Open reservations count as spent. ``None`` when no hard limit applies to ``scope``.
        """
        limits = self._limits_for(scope, period)
        if not limits:
            return None
        now = time.time()
        keys = [bucket_key(scope, limit.period, now) for limit in limits]
        state = self._backend.buckets(keys, now)
        return max(
            0.0,
            min(
                limit.limit_usd - from_nanos(sum(state[key]))
                for limit, key in zip(limits, keys, strict=True)
            ),
        )

    def sweep_expired(self) -> int:
        """Release reservations past their expiry now (reserve does it too); return how many."""
        return self._backend.sweep(time.time())

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the store connections this tracker opened."""
        self._backend.close()

    def __enter__(self) -> CostTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
