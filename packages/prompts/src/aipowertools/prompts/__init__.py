"""Context management and prompt optimisation: prune to fit, compress, order for prompt caches.

Framework-free; the LangChain and LlamaIndex adapters live in ``aipowertools.prompts.langchain``
and ``aipowertools.prompts.llama_index``.
"""

from __future__ import annotations

from importlib.metadata import version as _version

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

__version__ = _version("aipowertools-prompts")

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
    "__version__",
    "part_tokens",
]
