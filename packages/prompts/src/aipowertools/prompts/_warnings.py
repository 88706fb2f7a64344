"""Typed warnings about a request's size, and the error raised when nothing can fit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aipowertools.core.errors import ContextWindowExceededError


class ContextWarning(UserWarning):
    """Base of the warnings :meth:`ContextManager.check` returns.

    Attributes:
        model: The model checked against.
        tokens: The prompt tokens (or, for :class:`MessageTooLargeWarning`, the message's).
        limit: The limit they were compared with.
    """

    def __init__(self, message: str, *, model: str, tokens: int, limit: int) -> None:
        super().__init__(message)
        self.message = message
        self.model = model
        self.tokens = tokens
        self.limit = limit

    def __str__(self) -> str:
        return self.message


class OverWindowWarning(ContextWarning):
    """The prompt alone is larger than the model's context window: the provider will refuse."""


class NearWindowWarning(ContextWarning):
    """Prompt plus reserved output fit, but use more than 90 % of the window."""


class OutputSqueezedWarning(ContextWarning):
    """The prompt fits, but leaves less room for the answer than the output reservation."""


class MessageTooLargeWarning(ContextWarning):
    """One message is larger than the room for the prompt: no pruning of others can help.

    Attributes:
        index: The message's position in the request.
    """

    def __init__(self, message: str, *, model: str, tokens: int, limit: int, index: int) -> None:
        super().__init__(message, model=model, tokens=tokens, limit=limit)
        self.index = index


class ContextOverflowError(ContextWindowExceededError):
    """The messages that must be kept need more tokens than the prompt may have.

    A :class:`~aipowertools.core.errors.ContextWindowExceededError`, so code that handles a
    provider's context-window refusal handles this one too, before any call is made.

    Attributes:
        needed_tokens: What the kept messages need (with the request's fixed overhead).
        available_tokens: What the prompt may use (window minus the reserved output, or the
            target that was given).
        kept: Why each kept message is kept, as ``(index, reason)`` pairs.
    """

    def __init__(
        self,
        message: str,
        *,
        needed_tokens: int,
        available_tokens: int,
        model: str | None = None,
        provider: str | None = None,
        kept: Sequence[tuple[int, str]] = (),
    ) -> None:
        super().__init__(message, model=model, provider=provider)
        self.needed_tokens = needed_tokens
        self.available_tokens = available_tokens
        self.kept = tuple(kept)

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild,
            (
                self.message,
                self.needed_tokens,
                self.available_tokens,
                self.model,
                self.provider,
                self.kept,
            ),
        )


def _rebuild(
    message: str,
    needed: int,
    available: int,
    model: str | None,
    provider: str | None,
    kept: tuple[tuple[int, str], ...],
) -> ContextOverflowError:
    return ContextOverflowError(
        message,
        needed_tokens=needed,
        available_tokens=available,
        model=model,
        provider=provider,
        kept=kept,
    )
