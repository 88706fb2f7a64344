"""Context management and prompt optimisation: prune to fit, compress, order for prompt caches.

Framework-free; the LangChain and LlamaIndex adapters live in ``aipowertools.prompts.langchain``
and ``aipowertools.prompts.llama_index``.
"""

from __future__ import annotations

from aipowertools.prompts._context import ContextManager, Priority, PruneResult, Summarize
from aipowertools.prompts._counting import part_tokens
from aipowertools.prompts._optimizer import (
    Change,
    OptimizationReport,
    Optimized,
    PromptOptimizer,
)
from aipowertools.prompts._warnings import (
    ContextOverflowError,
    ContextWarning,
    MessageTooLargeWarning,
    NearWindowWarning,
    OutputSqueezedWarning,
    OverWindowWarning,
)

__all__ = [
    "Change",
    "ContextManager",
    "ContextOverflowError",
    "ContextWarning",
    "MessageTooLargeWarning",
    "NearWindowWarning",
    "OptimizationReport",
    "Optimized",
    "OutputSqueezedWarning",
    "OverWindowWarning",
    "Priority",
    "PromptOptimizer",
    "PruneResult",
    "Summarize",
    "part_tokens",
]
