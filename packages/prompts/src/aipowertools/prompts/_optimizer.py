"""PromptOptimizer: fewer tokens without losing facts, fewer still when asked, cache-friendly."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from aipowertools.core import ModelCatalog
from aipowertools.core.errors import ConfigurationError
from aipowertools.prompts._cache_order import cache_friendly, stable_tools
from aipowertools.prompts._compress import Document, drop_to_target, score_sentences
from aipowertools.prompts._context import ContextManager
from aipowertools.prompts._lossless import NEAR_DUPLICATE, PassLog, lossless
from aipowertools.prompts._messages import Message, as_messages, is_pinned, is_user_turn, unpinned
from aipowertools.prompts._warnings import ContextOverflowError

P = TypeVar("P", str, list[Message])
Level = Literal["lossless", "aggressive"]
DEFAULT_AGGRESSIVE_RATIO = 0.7

_WHY = {
    "whitespace": "runs of spaces and blank lines outside code collapsed",
    "json": "embedded JSON minified (strings and numbers kept as written)",
    "duplicate paragraph": "repeated paragraph removed (first kept)",
    "exact duplicate sentence": "repeated sentence removed (first kept)",
    "near duplicate sentence": "near-identical sentence removed; its numbers and names are in "
    "the one kept",
    "boilerplate": "registered boilerplate removed",
    "extractive": "lowest-scored sentences dropped to meet the token target (lossy)",
    "cache": "laid out for prompt caching",
    "prune": "messages pruned to fit the window",
}


@dataclass(frozen=True)
class Change:
    """One kind of change an optimisation made.

    Attributes:
        kind: The pass (``"whitespace"``, ``"json"``, ``"exact duplicate sentence"``, ...).
        count: How many times it applied.
        why: What it does, in words.
    """

    kind: str
    count: int
    why: str


@dataclass(frozen=True)
class OptimizationReport:
    """Tokens before and after, and what changed.

    Attributes:
        model: The model whose counter measured the tokens.
        tokens_before: Tokens of the prompt as given.
        tokens_after: Tokens of the optimised prompt.
        estimated: Whether the counts are estimates rather than the model's own tokenizer.
        lossy: Whether any lossy pass ran (sentences dropped).
        changes: What was done, per pass.
        notes: Anything else worth knowing (layout changes, breakpoints).
    """

    model: str
    tokens_before: int
    tokens_after: int
    estimated: bool
    lossy: bool = False
    changes: tuple[Change, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def saved_tokens(self) -> int:
        """``tokens_before - tokens_after``."""
        return self.tokens_before - self.tokens_after

    @property
    def saved_share(self) -> float:
        """The share of tokens saved (0 for an empty prompt)."""
        return self.saved_tokens / self.tokens_before if self.tokens_before else 0.0


@dataclass(frozen=True)
class Optimized(Generic[P]):
    """An optimised prompt, its report and, when tools were given, the stable tool list."""

    prompt: P
    report: OptimizationReport
    tools: list[dict[str, Any]] | None = None


@dataclass
class _Work:
    log: PassLog = field(default_factory=PassLog)
    notes: list[str] = field(default_factory=list)
    lossy: bool = False


class PromptOptimizer:
    """Cuts prompt tokens; every method works on a string and on an OpenAI-style message list.

    * :meth:`optimize_for_cost`: the lossless passes (whitespace and blank lines outside
      code, embedded JSON minified, exact and near-duplicate sentences and paragraphs
      removed, registered boilerplate stripped); lossy extraction only with
      ``level="aggressive"`` or a ``target_tokens``.
    * :meth:`optimize_for_latency`: the lossless passes and a cache-friendly layout (a cached
      prefix is also read faster).
    * :meth:`optimize_for_quality`: whitespace, JSON and exact duplicates only, nothing that
      could lose a nuance; pruned by relevance when the model's window is exceeded.
    * :meth:`optimize_for_model`: the lossless passes, the layout the model's provider caches
      best (``cache_control`` breakpoints for Anthropic), pruned to its window.
    * :meth:`compress`: extractive compression to a token target, by the model's own counter.

    Pinned messages (``"pinned": True``) are never changed.

    Args:
        catalog: Where models are looked up; the default catalog when omitted.
        boilerplate: Strings or regular expressions to strip from prose.
        volatile: Extra patterns of lines that change from call to call (moved to the end).
        near_duplicate: Word-trigram similarity at which a sentence is a near-duplicate
            (``1.0`` turns near-duplicate removal off).
        aggressive_ratio: ``level="aggressive"`` compresses to this share of the tokens left
            after the lossless passes.
        model: The model used when a method is called without one.

    Example:
        >>> optimizer = PromptOptimizer()
        >>> result = optimizer.optimize_for_cost("Hello   world.\\n\\n\\n\\nBye.", "gpt-4o-mini")
        >>> result.prompt, result.report.saved_tokens > 0
        ('Hello world.\\n\\nBye.', True)
    """

    def __init__(
        self,
        *,
        catalog: ModelCatalog | None = None,
        boilerplate: Iterable[str | re.Pattern[str]] = (),
        volatile: Iterable[str | re.Pattern[str]] = (),
        near_duplicate: float = NEAR_DUPLICATE,
        aggressive_ratio: float = DEFAULT_AGGRESSIVE_RATIO,
        model: str | None = None,
    ) -> None:
        if not 0.0 < near_duplicate <= 1.0:
            raise ConfigurationError(f"near_duplicate must be in (0, 1], got {near_duplicate!r}")
        if not 0.0 < aggressive_ratio < 1.0:
            raise ConfigurationError(
                f"aggressive_ratio must be in (0, 1), got {aggressive_ratio!r}"
            )
        self.manager = ContextManager(catalog=catalog)
        self.boilerplate: list[re.Pattern[str]] = []
        self.register_boilerplate(*boilerplate)
        self.volatile = [_pattern(v) for v in volatile]
        self.near_duplicate = near_duplicate
        self.aggressive_ratio = aggressive_ratio
        self.model = model

    def register_boilerplate(self, *patterns: str | re.Pattern[str]) -> None:
        """Strip these from prose from now on (a string matches itself, verbatim)."""
        self.boilerplate.extend(_pattern(p) for p in patterns)

    # ------------------------------------------------------------------ helpers

    def _model(self, model: str | None) -> str:
        chosen = model or self.model
        if chosen is None:
            raise ConfigurationError(
                "name a model, e.g. model='gpt-4o-mini' (its tokenizer counts)"
            )
        self.manager.estimate_tokens("", chosen)  # unknown model -> UnknownModelError now
        return chosen

    def _count(self, prompt: str | list[Message], model: str) -> tuple[int, bool]:
        counted = self.manager.estimate_tokens(prompt, model)
        return counted.tokens, counted.estimated

    def _lossless_text(self, text: str, work: _Work, *, near: float, duplicates: bool) -> str:
        return lossless(
            text,
            boilerplate=self.boilerplate,
            duplicates=duplicates,
            near=near,
            log=work.log,
        )

    def _lossless(
        self, prompt: str | list[Message], work: _Work, *, near: float, duplicates: bool = True
    ) -> str | list[Message]:
        if isinstance(prompt, str):
            return self._lossless_text(prompt, work, near=near, duplicates=duplicates)
        out: list[Message] = []
        for message in prompt:
            if is_pinned(message):
                out.append(dict(message))
                continue
            new = dict(message)
            content = message.get("content")
            if isinstance(content, str):
                new["content"] = self._lossless_text(
                    content, work, near=near, duplicates=duplicates
                )
            elif isinstance(content, list):
                new["content"] = [
                    {
                        **part,
                        "text": self._lossless_text(
                            part["text"], work, near=near, duplicates=duplicates
                        ),
                    }
                    if isinstance(part, Mapping) and isinstance(part.get("text"), str)
                    else part
                    for part in content
                ]
            out.append(new)
        return out

    def _report(
        self,
        model: str,
        before: tuple[int, bool],
        prompt: str | list[Message],
        work: _Work,
    ) -> OptimizationReport:
        after, estimated = self._count(_sendable(prompt), model)
        return OptimizationReport(
            model=model,
            tokens_before=before[0],
            tokens_after=after,
            estimated=before[1] or estimated,
            lossy=work.lossy,
            changes=tuple(
                Change(kind, n, _WHY.get(kind, kind)) for kind, n in sorted(work.log.counts.items())
            ),
            notes=tuple(work.notes),
        )

    def _start(self, prompt: Any) -> str | list[Message]:
        if isinstance(prompt, str):
            return prompt
        return as_messages(prompt)

    # ------------------------------------------------------------------ public

    def optimize_for_cost(
        self,
        prompt: Any,
        model: str | None = None,
        *,
        level: Level = "lossless",
        target_tokens: int | None = None,
    ) -> Optimized[Any]:
        """Fewest tokens: the lossless passes, then extraction if asked.

        Args:
            prompt: A string or a message list.
            model: Whose counter measures the tokens.
            level: ``"lossless"`` (the default) or ``"aggressive"`` (then compress to
                ``aggressive_ratio`` of what is left).
            target_tokens: Compress (lossy) to at most this many tokens.

        Raises:
            ContextOverflowError: ``target_tokens`` is below what the untouchable parts need.
        """
        if level not in ("lossless", "aggressive"):
            raise ConfigurationError(f"level must be 'lossless' or 'aggressive', got {level!r}")
        name = self._model(model)
        start = self._start(prompt)
        before = self._count(_sendable(start), name)
        work = _Work()
        result = self._lossless(start, work, near=self.near_duplicate)
        if target_tokens is None and level == "aggressive":
            after = self._count(_sendable(result), name)[0]
            target_tokens = math.floor(after * self.aggressive_ratio)
        if target_tokens is not None:
            result = self._compress(result, target_tokens, name, work)
        return Optimized(_sendable(result), self._report(name, before, result, work))

    def optimize_for_latency(self, prompt: Any, model: str | None = None) -> Optimized[Any]:
        """Fewer tokens to read and a prefix the provider can serve from its cache."""
        name = self._model(model)
        start = self._start(prompt)
        before = self._count(_sendable(start), name)
        work = _Work()
        result = self._lossless(start, work, near=self.near_duplicate)
        if isinstance(result, list):
            result = self._layout(result, name, work)
        return Optimized(_sendable(result), self._report(name, before, result, work))

    def optimize_for_quality(
        self, prompt: Any, model: str | None = None, *, max_output: int | None = None
    ) -> Optimized[Any]:
        """Only changes that cannot lose a nuance; fits the window by relevance if needed."""
        name = self._model(model)
        start = self._start(prompt)
        before = self._count(_sendable(start), name)
        work = _Work()
        result = self._lossless(start, work, near=1.0)
        if isinstance(result, list):
            result = self._fit(result, name, max_output, "relevance", work)
        return Optimized(_sendable(result), self._report(name, before, result, work))

    def optimize_for_model(
        self,
        prompt: Any,
        model: str | None = None,
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        max_output: int | None = None,
    ) -> Optimized[Any]:
        """The lossless passes, the provider's best cache layout, and the model's window.

        Returns the tools (when given) sorted and serialised byte-stably in
        :attr:`Optimized.tools`: send those, not the originals.
        """
        name = self._model(model)
        start = self._start(prompt)
        before = self._count(_sendable(start), name)
        work = _Work()
        result = self._lossless(start, work, near=self.near_duplicate)
        if isinstance(result, list):
            result = self._fit(result, name, max_output, "oldest", work)
            result = self._layout(result, name, work)
        stable = stable_tools(tools) if tools is not None else None
        return Optimized(_sendable(result), self._report(name, before, result, work), stable)

    def order_for_cache(
        self,
        messages: Any,
        model: str | None = None,
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> Optimized[list[Message]]:
        """Only the cache-friendly layout: stable first, volatile last, breakpoints (Anthropic)."""
        name = self._model(model)
        start = as_messages(messages)
        before = self._count(_sendable(start), name)
        work = _Work()
        result = self._layout(start, name, work)
        stable = stable_tools(tools) if tools is not None else None
        return Optimized(_sendable(result), self._report(name, before, result, work), stable)

    def compress(self, prompt: Any, target_tokens: int, model: str | None = None) -> Optimized[Any]:
        """Drop the lowest-value sentences until the prompt has at most ``target_tokens``.

        Lossy. The lossless passes run first. Never touched: pinned messages, tool results,
        the last paragraph of the last user turn (the question), code blocks, inline code
        and quoted strings. Sentences are dropped by the score documented in
        :func:`aipowertools.prompts._compress.score_sentences`, and the count is the
        model's own (litellm's offline tokenizer), re-measured on the result.

        Raises:
            ContextOverflowError: The untouchable parts alone need more than
                ``target_tokens``; the error says how many tokens they need.
        """
        name = self._model(model)
        start = self._start(prompt)
        before = self._count(_sendable(start), name)
        work = _Work()
        result = self._lossless(start, work, near=self.near_duplicate)
        result = self._compress(result, target_tokens, name, work)
        return Optimized(_sendable(result), self._report(name, before, result, work))

    # ------------------------------------------------------------------ lossy and layout

    def _compress(
        self, prompt: str | list[Message], target: int, model: str, work: _Work
    ) -> str | list[Message]:
        if not isinstance(target, int) or isinstance(target, bool) or target < 0:
            raise ConfigurationError(f"target_tokens must be a token count >= 0, got {target!r}")
        if isinstance(prompt, str):
            documents = [Document(prompt)]
            sentences = score_sentences(documents, None)

            def count_text(texts: list[str]) -> int:
                return self.manager.estimate_tokens(texts[0], model).tokens

            texts, tokens, dropped = drop_to_target(documents, sentences, count_text, target)
            if tokens > target:
                raise _untouchable(tokens, target, model, "the code and quoted strings")
            _lossy(work, dropped)
            return texts[0]
        slots, documents, query, tails = _slots(prompt)
        sentences = score_sentences(documents, query)

        def count_messages(texts: list[str]) -> int:
            return self._count(_sendable(_fill(prompt, slots, texts, tails)), model)[0]

        texts, tokens, dropped = drop_to_target(documents, sentences, count_messages, target)
        if tokens > target:
            raise _untouchable(
                tokens,
                target,
                model,
                "pinned messages, tool results, the question, code and quoted strings",
            )
        _lossy(work, dropped)
        return _fill(prompt, slots, texts, tails)

    def _layout(self, messages: list[Message], model: str, work: _Work) -> list[Message]:
        provider = self.manager._counters.get(model).info.provider
        skip = [i for i, m in enumerate(messages) if is_pinned(m)]
        result, notes = cache_friendly(
            messages, provider=provider, volatile=self.volatile, skip=skip
        )
        work.notes.extend(notes)
        return result

    def _fit(
        self,
        messages: list[Message],
        model: str,
        max_output: int | None,
        policy: Literal["oldest", "relevance"],
        work: _Work,
    ) -> list[Message]:
        pinned = [i for i, m in enumerate(messages) if is_pinned(m)]
        pruned = self.manager.prune(messages, model, max_output=max_output, policy=policy)
        if not pruned.pruned:
            return messages
        work.log.add("prune", len(pruned.dropped))
        keep = [i for i in range(len(messages)) if i not in set(pruned.dropped)]
        return [
            {**m, "pinned": True} if i in pinned else m
            for i, m in zip(keep, pruned.messages, strict=True)
        ]


def _pattern(value: str | re.Pattern[str]) -> re.Pattern[str]:
    if isinstance(value, re.Pattern):
        return value
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"a pattern is a non-empty string or re.Pattern, got {value!r}")
    return re.compile(re.escape(value))


def _sendable(prompt: str | list[Message]) -> Any:
    if isinstance(prompt, str):
        return prompt
    return [unpinned(m) for m in prompt]


def _lossy(work: _Work, dropped: int) -> None:
    if dropped:
        work.lossy = True
        work.log.add("extractive", dropped)


def _untouchable(tokens: int, target: int, model: str, what: str) -> ContextOverflowError:
    return ContextOverflowError(
        f"target_tokens={target} is below what the parts compression may not touch need: "
        f"{tokens} tokens by {model}'s counter ({what}); raise the target or unpin messages",
        needed_tokens=tokens,
        available_tokens=target,
        model=model,
    )


# A slot is a compressible text inside a message list: (message index, part index or None).
_Slot = tuple[int, int | None]


def _slots(
    messages: list[Message],
) -> tuple[list[_Slot], list[Document], str | None, dict[_Slot, str]]:
    last = max((i for i, m in enumerate(messages) if is_user_turn(m)), default=None)
    query: str | None = None
    slots: list[_Slot] = []
    documents: list[Document] = []
    tails: dict[_Slot, str] = {}
    for i, message in enumerate(messages):
        if is_pinned(message) or message.get("role") in ("tool", "function"):
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts: list[tuple[int | None, str]] = [(None, content)]
        elif isinstance(content, list):
            texts = [
                (j, p["text"])
                for j, p in enumerate(content)
                if isinstance(p, Mapping) and isinstance(p.get("text"), str)
            ]
        else:
            continue
        for j, text in texts:
            if i == last and j == texts[-1][0]:
                body, sep, question = text.rpartition("\n\n")
                query = question or body
                if not sep:
                    continue  # the question alone: untouchable
                tails[(i, j)] = sep + question
                text = body
            slots.append((i, j))
            documents.append(Document(text))
    return slots, documents, query, tails


def _fill(
    messages: list[Message], slots: list[_Slot], texts: list[str], tails: dict[_Slot, str]
) -> list[Message]:
    out = [dict(m) for m in messages]
    for (i, j), text in zip(slots, texts, strict=True):
        full = text + tails.get((i, j), "")
        if j is None:
            out[i]["content"] = full
        else:
            parts = list(out[i]["content"])
            parts[j] = {**parts[j], "text": full}
            out[i]["content"] = parts
    return out
