"""Imports from ``aipowertools.core``, with fallbacks while core is still landing."""

from __future__ import annotations

import os
import threading
from types import ModuleType

try:
    from aipowertools.core.errors import ConfigurationError
except ImportError:  # pragma: no cover - core's errors module not landed yet

    class ConfigurationError(ValueError):  # type: ignore[no-redef]
        """A usage error: bad configuration or arguments."""


__all__ = ["ConfigurationError", "litellm"]

_lock = threading.Lock()
_module: ModuleType | None = None


def litellm() -> ModuleType:
    """Return litellm, imported lazily and configured offline once (core's helper if present)."""
    global _module
    if _module is not None:
        return _module
    with _lock:
        if _module is None:
            try:
                from aipowertools.core import litellm as core_litellm

                _module = core_litellm()
            except ImportError:  # pragma: no cover - core helper not landed yet
                os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
                import litellm as imported

                imported.disable_hf_tokenizer_download = True
                _module = imported
        return _module
