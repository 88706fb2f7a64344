"""Every distribution's public face: a sorted ``__all__`` that is exactly what it exposes.

Each distribution also locks its exact names in ``tests/<distribution>/``; this test holds the
rules that apply to all of them (the model is httpx's ``test_exported_members.py``).
"""

from __future__ import annotations

import importlib
import types

import pytest

PACKAGES = [
    "aipowertools.core",
    "aipowertools.core.errors",
    "aipowertools.core.stores",
    "aipowertools.resilience",
    "aipowertools.resilience.langchain",
    "aipowertools.resilience.llama_index",
    "aipowertools.sessions",
    "aipowertools.sessions.langchain",
    "aipowertools.sessions.langgraph",
    "aipowertools.sessions.llama_index",
    "aipowertools.callbacks",
    "aipowertools.callbacks.langchain",
    "aipowertools.callbacks.llama_index",
    "aipowertools.router",
    "aipowertools.router.langchain",
    "aipowertools.router.llama_index",
    "aipowertools.testing",
    "aipowertools.cli",
    "aipowertools.console",
]


def _isort_key(name: str) -> tuple[int, str]:
    """The order ruff's RUF022 keeps ``__all__`` in: CONSTANTS, Classes, then functions."""
    if name.isupper():
        return (0, name)
    return (1, name) if name[:1].isupper() else (2, name)


def _defined_here_but_unlisted(module: types.ModuleType) -> set[str]:
    """Public names a package re-exports from its own private modules without listing them."""
    if not hasattr(module, "__path__"):  # plain modules (adapters) import helpers freely
        return set()
    prefix = module.__name__ + "._"
    names = set()
    for name, value in vars(module).items():
        if name.startswith("_") or isinstance(value, types.ModuleType):
            continue
        if getattr(value, "__module__", "").startswith(prefix):
            names.add(name)
    return names - set(module.__all__)


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_complete_and_resolvable(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported, key=_isort_key), f"{name}.__all__ must be sorted"
    assert len(set(exported)) == len(exported), f"{name}.__all__ has duplicates"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what the module does not have: {missing}"
    unlisted = _defined_here_but_unlisted(module)
    assert not unlisted, f"{name} re-exports names missing from __all__: {sorted(unlisted)}"


def test_cli_surface() -> None:
    import aipowertools.cli as cli

    assert cli.__all__ == ["app", "main"]


def test_console_surface() -> None:
    import aipowertools.console as console

    assert console.__all__ == [
        "Stores",
        "create_app",
        "generate_report",
        "report_data",
        "serve_dashboard",
    ]


CONSOLE_PROBE = """
import json, sys
import aipowertools.console, aipowertools.cli
heavy = sorted(m for m in sys.modules if m.split('.')[0] in {'starlette', 'uvicorn', 'fpdf',
               'litellm', 'langchain_core'})
print(json.dumps(heavy))
"""


def test_importing_the_console_and_cli_loads_no_web_or_pdf_library() -> None:
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", CONSOLE_PROBE], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == []
