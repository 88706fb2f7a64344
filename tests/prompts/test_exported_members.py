"""The public API of aipowertools.prompts, locked (httpx's test_exported_members)."""

from __future__ import annotations

import subprocess
import sys

import aipowertools.prompts as prompts
import aipowertools.prompts.langchain as lc
import aipowertools.prompts.llama_index as li


def test_public_api_is_exactly_this() -> None:
    assert prompts.__all__ == [
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
    for name in prompts.__all__:
        assert hasattr(prompts, name), name
    public = {n for n in dir(prompts) if not n.startswith("_")}
    # besides __all__: the adapter submodules once imported, and the __future__ import
    assert public - set(prompts.__all__) <= {"annotations", "langchain", "llama_index"}


def test_adapter_exports() -> None:
    assert lc.__all__ == ["optimize_prompt", "to_openai", "trim_messages"]
    assert li.__all__ == ["PromptCompressor"]


def test_import_is_light() -> None:
    code = (
        "import sys; import aipowertools.prompts;"
        "print([m for m in ('litellm', 'langchain_core', 'llama_index', 'tiktoken')"
        " if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
