"""LangChain adapters: ``optimize_prompt`` (a Runnable) and ``trim_messages`` (agrees with prune).

Example:
    >>> from langchain_core.messages import HumanMessage, SystemMessage
    >>> from aipowertools.prompts.langchain import optimize_prompt, trim_messages
    >>> step = optimize_prompt(model="gpt-4o-mini")
    >>> step.invoke([SystemMessage("Be   brief."), HumanMessage("Hi  there")])[0].content
    'Be brief.'
    >>> history = [SystemMessage("rules")] + [HumanMessage("word " * 2_000)] * 5
    >>> len(trim_messages(history, model="ollama/codellama"))
    2

A message whose ``additional_kwargs`` hold ``{"pinned": True}`` is always kept, as the router
does. Both helpers also accept a ``PromptValue`` or a string, so they slot in after a prompt
template: ``prompt | optimize_prompt(model=...) | llm``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from langchain_core.messages import (
    BaseMessage,
    convert_to_messages,
    convert_to_openai_messages,
)
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import Runnable, RunnableLambda

from aipowertools.core.errors import ConfigurationError
from aipowertools.prompts._context import ContextManager, Policy, PruneResult
from aipowertools.prompts._optimizer import OptimizationReport, Optimized, PromptOptimizer

__all__ = ["optimize_prompt", "to_openai", "trim_messages"]

Mode = Literal["cost", "latency", "quality", "model"]


def to_openai(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """LangChain messages as OpenAI dicts, with ``"pinned": True`` carried over."""
    out: list[dict[str, Any]] = []
    for message, converted in zip(
        messages, convert_to_openai_messages(list(messages)), strict=True
    ):
        entry = dict(converted)
        if message.additional_kwargs.get("pinned"):
            entry["pinned"] = True
        out.append(entry)
    return out


def _as_messages(value: Any) -> list[BaseMessage] | str:
    if isinstance(value, PromptValue):
        return value.to_messages()
    if isinstance(value, str):
        return value
    if isinstance(value, BaseMessage):
        return [value]
    if isinstance(value, Sequence):
        return list(convert_to_messages(value))
    raise ConfigurationError(
        f"expected messages, a PromptValue or a string, got {type(value).__name__}"
    )


def trim_messages(
    messages: Any = None,
    *,
    model: str | None = None,
    max_output: int | None = None,
    policy: Policy | None = None,
    budget: int | None = None,
    manager: ContextManager | None = None,
) -> Any:
    """Keep what fits ``model``'s window, exactly as :meth:`ContextManager.prune` decides.

    Returns the kept messages themselves (not copies), in order. Called without
    ``messages``, returns a Runnable that does it (like LangChain's ``trim_messages``).

    Raises:
        ContextOverflowError: What must be kept does not fit.
    """
    chosen = manager or ContextManager()
    if messages is None:
        return RunnableLambda(
            lambda value: trim_messages(
                value,
                model=model,
                max_output=max_output,
                policy=policy,
                budget=budget,
                manager=chosen,
            ),
            name="trim_messages",
        )
    value = _as_messages(messages)
    if isinstance(value, str):
        value = list(convert_to_messages([value]))
    result: PruneResult = chosen.prune(
        to_openai(value), model, max_output=max_output, policy=policy, budget=budget
    )
    gone = set(result.dropped)
    return [m for i, m in enumerate(value) if i not in gone]


def _back(original: list[BaseMessage], optimized: list[dict[str, Any]]) -> list[BaseMessage]:
    if len(optimized) != len(original):
        return list(convert_to_messages(optimized))
    out: list[BaseMessage] = []
    for message, new in zip(original, optimized, strict=True):
        content = new.get("content")
        out.append(message.model_copy(update={"content": "" if content is None else content}))
    return out


def optimize_prompt(
    optimizer: PromptOptimizer | None = None,
    *,
    model: str | None = None,
    mode: Mode = "cost",
    on_report: Callable[[OptimizationReport], None] | None = None,
    **options: Any,
) -> Runnable[Any, Any]:
    """A Runnable that optimises the prompt on its way to the model.

    Args:
        optimizer: The :class:`PromptOptimizer` to use (a default one when omitted).
        model: The model the prompt is for (its tokenizer counts; its provider decides the
            cache layout in ``"model"`` mode).
        mode: ``"cost"``, ``"latency"``, ``"quality"`` or ``"model"``: which
            ``optimize_for_*`` method runs.
        on_report: Called with each :class:`OptimizationReport`.
        **options: Passed to the method (``level=``, ``target_tokens=``, ``max_output=``).

    Returns:
        A Runnable from messages / ``PromptValue`` / string to messages (or a string).
    """
    if mode not in ("cost", "latency", "quality", "model"):
        raise ConfigurationError(
            f"mode must be 'cost', 'latency', 'quality' or 'model', got {mode!r}"
        )
    engine = optimizer or PromptOptimizer()
    method: Callable[..., Optimized[Any]] = getattr(engine, f"optimize_for_{mode}")

    def run(value: Any) -> Any:
        prompt = _as_messages(value)
        if isinstance(prompt, str):
            result = method(prompt, model, **options)
            if on_report is not None:
                on_report(result.report)
            return result.prompt
        result = method(to_openai(prompt), model, **options)
        if on_report is not None:
            on_report(result.report)
        return _back(prompt, result.prompt)

    return RunnableLambda(run, name=f"optimize_prompt[{mode}]")
