"""ContextManager: count, measure the room left, prune to fit, prioritise, warn."""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from aipowertools.core import ModelCatalog, TokenCount
from aipowertools.core.errors import ConfigurationError
from aipowertools.prompts._counting import REPLY_PRIMING, CounterPool, MessageCounter, window_of
from aipowertools.prompts._messages import (
    Message,
    Unit,
    as_messages,
    group_units,
    is_user_turn,
    stable_json,
    text_of,
    unpinned,
)
from aipowertools.prompts._scoring import overlap, terms
from aipowertools.prompts._warnings import (
    ContextOverflowError,
    ContextWarning,
    MessageTooLargeWarning,
    NearWindowWarning,
    OutputSqueezedWarning,
    OverWindowWarning,
)

#: Default output reservation: the model's maximum output, at most 4,096 and a quarter window.
DEFAULT_MAX_OUTPUT = 4_096
NEAR_WINDOW_SHARE = 0.9
RELEVANCE_WEIGHT = 0.6
RECENCY_WEIGHT = 0.4

Summarizer = Callable[[list[Message]], "str | Awaitable[str]"]
PolicyName = Literal["oldest", "relevance"]
_SUMMARY_ROUNDS = 3
_NO_ROOM = "the summary did not fit in the room left, so it was left out"


@dataclass(frozen=True)
class Summarize:
    """Prune policy: drop by ``then``, and put a summary of what was dropped in its place.

    Args:
        summarizer: Called with the dropped messages (oldest first); returns the summary text
            (or an awaitable of it, for :meth:`ContextManager.aprune`), for example a call to
            a cheap model through the router.
        then: Which messages to drop before summarising: ``"oldest"`` or ``"relevance"``.
        role: The role of the summary message.
        prefix: Text put before the summary.

    Example:
        >>> policy = Summarize(lambda dropped: f"{len(dropped)} earlier messages about cats")
    """

    summarizer: Summarizer
    then: PolicyName = "oldest"
    role: str = "system"
    prefix: str = "Summary of the earlier conversation: "


Policy = PolicyName | Summarize


@dataclass(frozen=True)
class Priority:
    """One message's place in :meth:`ContextManager.prioritize`.

    Attributes:
        index: The message's position in the request.
        score: ``inf`` for messages that are always kept, else
            ``0.6 x relevance + 0.4 x recency`` (see :meth:`ContextManager.prioritize`).
        reason: Why the message is always kept, or ``"relevance r, recency t"``.
        tokens: The message's tokens.
    """

    index: int
    score: float
    reason: str
    tokens: int


@dataclass(frozen=True)
class PruneResult:
    """A pruned request that fits, and what was done to it.

    Attributes:
        messages: The messages to send, in their original order, without ``pinned`` markers.
        tokens: Their tokens (with the request's fixed overhead).
        estimated: Whether ``tokens`` is an estimate rather than the model's own tokenizer.
        available: The tokens the prompt could use.
        dropped: Positions (in the input) of the messages that were left out.
        kept: Why each always-kept message is kept, as ``(index, reason)`` pairs.
        summary: The summary message put in place of the dropped ones, if any.
        notes: What else happened (for example a summary that did not fit).
    """

    messages: list[Message]
    tokens: int
    estimated: bool
    available: int
    dropped: tuple[int, ...] = ()
    kept: tuple[tuple[int, str], ...] = ()
    summary: Message | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def pruned(self) -> bool:
        """Whether any message was left out."""
        return bool(self.dropped)


@dataclass
class _Plan:
    units: list[Unit]
    kept: list[Unit]
    dropped: list[Unit]
    available: int
    estimated: bool
    overhead: int
    model: str | None
    order: list[Unit] = field(default_factory=list)

    @property
    def used(self) -> int:
        return self.overhead + sum(u.tokens for u in self.kept)

    def drop_more(self, tokens: int) -> bool:
        """Drop further units, in the policy's order, until ``tokens`` more are free."""
        free = self.available - self.used
        while free < tokens and self.order:
            unit = self.order.pop(0)
            self.kept.remove(unit)
            self.dropped.append(unit)
            free += unit.tokens
        self.dropped.sort(key=lambda u: u.first)
        return free >= tokens


class ContextManager:
    """Fits conversations into a model's context window, with the model's own token counts.

    Counts come from core's offline counters (litellm's tokenizers), per message and cached,
    so pruning a long history again after one more turn is cheap. Always kept by
    :meth:`prune`: system messages, messages marked ``"pinned": True``, the last user turn
    and a tool exchange after it still to be answered; a tool call is never separated from
    its results.

    Args:
        catalog: Where models are looked up; the default catalog when omitted.
        policy: The default prune policy: ``"oldest"`` (drop the oldest first),
            ``"relevance"`` (drop the least relevant to the last turn first, see
            :meth:`prioritize`), or a :class:`Summarize`.
        max_output: The default output reservation; when ``None``, the model's maximum output
            capped at 4,096 tokens and a quarter of its window.
        message_tokens: Count messages with this function instead of the model's tokenizer
            (results are flagged as estimates); prune then works without a model, against a
            ``budget``.
        overhead: Tokens a request adds to its messages (3 with the model's counter).

    Example:
        >>> manager = ContextManager()
        >>> history = [{"role": "system", "content": "Be brief."}]
        >>> history += [{"role": "user", "content": "word " * 5_000}] * 50
        >>> result = manager.prune(history, "gpt-4o-mini")
        >>> result.pruned, result.tokens <= manager.available_window("gpt-4o-mini")
        (True, True)
    """

    def __init__(
        self,
        *,
        catalog: ModelCatalog | None = None,
        policy: Policy = "oldest",
        max_output: int | None = None,
        message_tokens: Callable[[Mapping[str, Any]], int] | None = None,
        overhead: int | None = None,
    ) -> None:
        _check_policy(policy)
        self._counters = CounterPool(catalog)
        self.policy = policy
        self.max_output = _check_max_output(max_output)
        self._message_tokens = message_tokens
        self.overhead = (
            overhead if overhead is not None else (0 if message_tokens else REPLY_PRIMING)
        )

    # ------------------------------------------------------------------ counting

    def _counter(self, model: str | None) -> MessageCounter | None:
        if model is None:
            return None
        return self._counters.get(model)

    def _sizes(
        self, messages: Sequence[Mapping[str, Any]], counter: MessageCounter | None
    ) -> tuple[list[int], bool]:
        if counter is None:
            if self._message_tokens is None:
                raise ConfigurationError("model is required: name a catalog model, e.g. 'gpt-4o'")
            return [self._message_tokens(m) for m in messages], True
        sizes: list[int] = []
        estimated = False
        for message in messages:
            tokens, approx = counter.message(message)
            sizes.append(tokens)
            estimated = estimated or approx
        return sizes, estimated

    def estimate_tokens(self, text_or_messages: Any, model: str) -> TokenCount:
        """Count a string or a message list for ``model``, and say whether it is exact.

        A message list costs the sum of its messages plus the request's fixed overhead
        (3 tokens for the reply priming), exactly what :meth:`prune` fits.

        Raises:
            UnknownModelError: ``model`` is not in the catalog (with the closest names).
        """
        counter = self._counters.get(model)
        if isinstance(text_or_messages, str):
            tokens, estimated = counter.text(text_or_messages)
            return TokenCount(tokens, estimated)
        messages = as_messages(text_or_messages)
        sizes, estimated = self._sizes(messages, counter)
        return TokenCount(sum(sizes) + self.overhead, estimated)

    def _reserve(self, model: str, max_output: int | None) -> tuple[int, int]:
        info = self._counters.get(model).info
        window = window_of(info)
        reserve = _check_max_output(max_output)
        if reserve is None:
            reserve = self.max_output
        if reserve is None:
            reserve = min(info.max_output_tokens or DEFAULT_MAX_OUTPUT, DEFAULT_MAX_OUTPUT)
            reserve = min(reserve, window // 4)
        return window, reserve

    def available_window(
        self, model: str, messages: Any = None, max_output: int | None = None
    ) -> int:
        """Tokens left for the prompt: the window, minus the reserved output, minus ``messages``.

        Negative when ``messages`` already take more than there is.

        Args:
            model: A catalog model.
            messages: What is already in the prompt (a string or messages), if anything.
            max_output: Tokens reserved for the answer (default: see :class:`ContextManager`).
        """
        window, reserve = self._reserve(model, max_output)
        used = 0 if messages is None else self.estimate_tokens(messages, model).tokens
        return window - reserve - used

    # ------------------------------------------------------------------ pruning

    def _plan(
        self,
        messages: Sequence[Mapping[str, Any]],
        model: str | None,
        max_output: int | None,
        budget: int | None,
        policy: Policy,
        pinned: Iterable[int],
    ) -> _Plan:
        if budget is not None:
            if not isinstance(budget, int) or isinstance(budget, bool) or budget < 0:
                raise ConfigurationError(f"budget must be a token count >= 0, got {budget!r}")
            available = budget
        elif model is not None:
            window, reserve = self._reserve(model, max_output)
            available = window - reserve
        else:
            raise ConfigurationError("prune() needs a model (or a budget= in tokens)")
        counter = self._counter(model) if self._message_tokens is None else None
        sizes, estimated = self._sizes(messages, counter)
        units = group_units(messages, pinned)
        for unit in units:
            unit.tokens = sum(sizes[i] for i in unit.indices)
        overhead = self.overhead
        kept = [u for u in units if u.mandatory]
        needed = overhead + sum(u.tokens for u in kept)
        if needed > available:
            raise _overflow(units, needed, available, model, budget is not None)
        order = [u for u in units if not u.mandatory]
        name = policy.then if isinstance(policy, Summarize) else policy
        if name == "relevance" and overhead + sum(u.tokens for u in units) > available:
            scores = _unit_scores(messages, units)
            order.sort(key=lambda u: (scores[id(u)], u.first))
        plan = _Plan(
            units=units,
            kept=list(units),
            dropped=[],
            available=available,
            estimated=estimated,
            overhead=overhead,
            model=model,
            order=order,
        )
        plan.drop_more(0)
        return plan

    def _result(
        self,
        messages: Sequence[Mapping[str, Any]],
        plan: _Plan,
        summary: Message | None = None,
        summary_tokens: int = 0,
        notes: tuple[str, ...] = (),
    ) -> PruneResult:
        indices = sorted(i for u in plan.kept for i in u.indices)
        out = [unpinned(messages[i]) for i in indices]
        if summary is not None:
            first_dropped = plan.dropped[0].first
            at = sum(1 for i in indices if i < first_dropped)
            out.insert(at, summary)
        tokens = plan.overhead + sum(u.tokens for u in plan.kept) + summary_tokens
        kept = tuple((u.first, ", ".join(u.reasons)) for u in plan.kept if u.mandatory)
        return PruneResult(
            messages=out,
            tokens=tokens,
            estimated=plan.estimated,
            available=plan.available,
            dropped=tuple(sorted(i for u in plan.dropped for i in u.indices)),
            kept=kept,
            summary=summary,
            notes=notes,
        )

    def prune(
        self,
        messages: Any,
        model: str | None = None,
        *,
        max_output: int | None = None,
        policy: Policy | None = None,
        budget: int | None = None,
        pinned: Iterable[int] = (),
    ) -> PruneResult:
        """Drop (or summarise) messages until the request fits the model's window.

        Always kept: system messages, pinned messages (``"pinned": True`` or listed in
        ``pinned``), the last user turn, and a tool exchange after it still to be answered.
        A tool call and its results are kept or dropped together. The rest is dropped by the
        policy until ``tokens <= available``.

        Args:
            messages: OpenAI-format dicts (or LangChain / LlamaIndex messages).
            model: The catalog model whose window and tokenizer apply.
            max_output: Tokens reserved for the answer (default: see :class:`ContextManager`).
            policy: Override the manager's policy for this call.
            budget: Fit into this many prompt tokens instead of the model's window.
            pinned: Positions of further messages to keep.

        Returns:
            The messages that fit and what was done.

        Raises:
            ContextOverflowError: The messages that must be kept need more tokens than
                there are; the message says how many they need and which ones they are.
            UnknownModelError: ``model`` is not in the catalog.
        """
        chosen = self.policy if policy is None else policy
        _check_policy(chosen)
        messages = as_messages(messages)
        plan = self._plan(messages, model, max_output, budget, chosen, pinned)
        if not isinstance(chosen, Summarize) or not plan.dropped:
            return self._result(messages, plan)
        for _ in range(_SUMMARY_ROUNDS):
            text = chosen.summarizer(_dropped_messages(messages, plan))
            if inspect.isawaitable(text):
                _close(text)
                raise ConfigurationError(
                    "the summarizer returned an awaitable; use 'await manager.aprune(...)'"
                )
            done = self._summarized(messages, plan, chosen, str(text))
            if done is not None:
                return done
        return self._result(messages, plan, notes=(_NO_ROOM,))

    async def aprune(
        self,
        messages: Any,
        model: str | None = None,
        *,
        max_output: int | None = None,
        policy: Policy | None = None,
        budget: int | None = None,
        pinned: Iterable[int] = (),
    ) -> PruneResult:
        """:meth:`prune`, awaiting an asynchronous summarizer (for example a router call)."""
        chosen = self.policy if policy is None else policy
        _check_policy(chosen)
        messages = as_messages(messages)
        plan = self._plan(messages, model, max_output, budget, chosen, pinned)
        if not isinstance(chosen, Summarize) or not plan.dropped:
            return self._result(messages, plan)
        for _ in range(_SUMMARY_ROUNDS):
            text = chosen.summarizer(_dropped_messages(messages, plan))
            if inspect.isawaitable(text):
                text = await text
            done = self._summarized(messages, plan, chosen, str(text))
            if done is not None:
                return done
        return self._result(messages, plan, notes=(_NO_ROOM,))

    def _summarized(
        self, messages: list[Message], plan: _Plan, policy: Summarize, text: str
    ) -> PruneResult | None:
        """The result with the summary when it fits; else drop more to make room for it."""
        message: Message = {"role": policy.role, "content": policy.prefix + text}
        counter = self._counter(plan.model) if self._message_tokens is None else None
        tokens = self._sizes([message], counter)[0][0]
        if plan.used + tokens <= plan.available:
            return self._result(messages, plan, summary=message, summary_tokens=tokens)
        if not plan.drop_more(tokens):
            return self._result(messages, plan, notes=(_NO_ROOM,))
        return None  # summarise again: more was dropped

    # ------------------------------------------------------------------ priorities and checks

    def prioritize(self, messages: Any, model: str) -> list[Priority]:
        """Order messages by how much they are worth keeping, most valuable first.

        Score: ``inf`` for what :meth:`prune` always keeps (system, pinned, the last user
        turn, an unanswered tool exchange); otherwise
        ``0.6 x relevance + 0.4 x recency``, where relevance is the share of the last user
        turn's terms (words of 3+ letters, stop words removed) the message (with its tool
        exchange) contains, and recency is its position among the history's units from 0
        (oldest) to 1 (newest). Ties go to the newer message. The ``"relevance"`` prune
        policy drops from the bottom of this list.

        Raises:
            UnknownModelError: ``model`` is not in the catalog.
        """
        messages = as_messages(messages)
        counter = self._counters.get(model)
        sizes, _ = self._sizes(messages, counter)
        units = group_units(messages)
        scores = _unit_scores(messages, units, detail=True)
        rows: list[Priority] = []
        for unit in units:
            score, why = (math.inf, ", ".join(unit.reasons)) if unit.mandatory else scores[id(unit)]
            rows.extend(Priority(i, score, why, sizes[i]) for i in unit.indices)
        rows.sort(key=lambda p: (-p.score, -p.index))
        return rows

    def check(
        self, request: Any, model: str, *, max_output: int | None = None
    ) -> list[ContextWarning]:
        """Warn about a request that is over, or close to, the model's window.

        Args:
            request: A string, a message list, or a mapping with ``messages`` (and optionally
                ``max_tokens`` / ``max_completion_tokens`` and ``tools``, which are counted).
            model: A catalog model.
            max_output: The output reservation (default: the request's ``max_tokens``, else
                see :class:`ContextManager`).

        Returns:
            :class:`OverWindowWarning` (the prompt is larger than the window),
            :class:`OutputSqueezedWarning` (it fits but leaves less than the reservation for
            the answer), :class:`NearWindowWarning` (prompt plus reservation use over 90 % of
            the window), and one :class:`MessageTooLargeWarning` per message larger than the
            room for the prompt. Empty when all is well.
        """
        tools: Any = None
        if isinstance(request, Mapping) and "messages" in request:
            if max_output is None:
                max_output = request.get("max_completion_tokens") or request.get("max_tokens")
            tools = request.get("tools")
            request = request["messages"]
        window, reserve = self._reserve(model, max_output)
        counter = self._counters.get(model)
        messages = as_messages(request)
        sizes, _ = self._sizes(messages, counter)
        prompt = sum(sizes) + self.overhead
        if tools:
            prompt += counter.text(stable_json(tools))[0]
        room = window - reserve
        found: list[ContextWarning] = []
        if prompt > window:
            found.append(
                OverWindowWarning(
                    f"the prompt has {prompt} tokens, more than {model}'s {window}-token window",
                    model=model,
                    tokens=prompt,
                    limit=window,
                )
            )
        elif prompt > room:
            found.append(
                OutputSqueezedWarning(
                    f"the prompt ({prompt} tokens) leaves {window - prompt} tokens of {model}'s "
                    f"{window}-token window for the answer, less than the {reserve} reserved",
                    model=model,
                    tokens=prompt,
                    limit=room,
                )
            )
        elif prompt + reserve > NEAR_WINDOW_SHARE * window:
            found.append(
                NearWindowWarning(
                    f"the prompt ({prompt} tokens) plus {reserve} reserved for the answer use "
                    f"{(prompt + reserve) / window:.0%} of {model}'s {window}-token window",
                    model=model,
                    tokens=prompt,
                    limit=window,
                )
            )
        for i, size in enumerate(sizes):
            if size + self.overhead > room:
                found.append(
                    MessageTooLargeWarning(
                        f"message {i} alone has {size} tokens, more than the {room} {model} has "
                        "for the prompt; shorten or split it",
                        model=model,
                        tokens=size,
                        limit=room,
                        index=i,
                    )
                )
        return found


def _check_policy(policy: Any) -> None:
    if isinstance(policy, Summarize):
        if not callable(policy.summarizer):
            raise ConfigurationError("Summarize(summarizer=...) must be callable")
        _check_policy(policy.then)
        return
    if policy not in ("oldest", "relevance"):
        raise ConfigurationError(
            f"policy must be 'oldest', 'relevance' or Summarize(...), got {policy!r}"
        )


def _check_max_output(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigurationError(f"max_output must be a token count >= 0, got {value!r}")
    return value


def _dropped_messages(messages: Sequence[Mapping[str, Any]], plan: _Plan) -> list[Message]:
    return [unpinned(messages[i]) for u in plan.dropped for i in u.indices]


def _close(awaitable: Any) -> None:
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()


def _unit_scores(
    messages: Sequence[Mapping[str, Any]], units: list[Unit], detail: bool = False
) -> dict[int, Any]:
    last = max((i for i, m in enumerate(messages) if is_user_turn(m)), default=len(messages) - 1)
    query = terms(text_of(messages[last])) if messages else frozenset()
    span = max(len(units) - 1, 1)
    scores: dict[int, Any] = {}
    for position, unit in enumerate(units):
        relevance = overlap(terms(" ".join(text_of(messages[i]) for i in unit.indices)), query)
        recency = position / span
        score = RELEVANCE_WEIGHT * relevance + RECENCY_WEIGHT * recency
        scores[id(unit)] = (
            (score, f"relevance {relevance:.2f}, recency {recency:.2f}") if detail else score
        )
    return scores


def _overflow(
    units: list[Unit],
    needed: int,
    available: int,
    model: str | None,
    from_budget: bool,
) -> ContextOverflowError:
    kept = [(u.first, r) for u in units if u.mandatory for r in u.reasons]
    described = "; ".join(
        f"{reason} (message {', '.join(map(str, u.indices))}: {u.tokens} tokens)"
        for u in units
        if u.mandatory
        for reason in u.reasons[:1]
    )
    where = (
        f"the {available}-token budget"
        if from_budget
        else (f"the {available} tokens {model} leaves for the prompt after the output reservation")
    )
    return ContextOverflowError(
        f"the messages that are always kept need {needed} tokens, more than {where}: "
        f"{described}. Shorten the last turn, unpin messages, lower max_output or pick a "
        "model with a larger window",
        needed_tokens=needed,
        available_tokens=available,
        model=model,
        kept=kept,
    )
