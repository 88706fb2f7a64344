"""Lazy, configured-once import of litellm.

litellm takes seconds to import and, unless told otherwise, fetches its price map from the
network at import time. Every package of the suite goes through :func:`litellm` so that the
import happens at first use, offline by default, and is configured exactly once.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["litellm"]

_lock = threading.Lock()
_module: ModuleType | None = None


def litellm() -> ModuleType:
    """Import litellm on first use, configured for offline use, and return the module.

    Sets ``LITELLM_LOCAL_MODEL_COST_MAP=True`` (unless the user set it already) before the
    import, so that litellm reads its bundled price map instead of fetching one, and
    ``litellm.disable_hf_tokenizer_download = True`` after it, so that token counting never
    reaches for the network, and ``litellm.suppress_debug_info = True``, so that the errors
    we classify and handle do not print litellm's "Give Feedback / Get Help" banner.
    Safe to call from many threads; configuration happens once.

    Returns:
        The imported ``litellm`` module.

    Example:
        >>> from aipowertools.core import litellm
        >>> entry = litellm().model_cost["gpt-4o"]
        >>> entry["litellm_provider"]
        'openai'
    """
    global _module
    module = _module
    if module is not None:
        return module
    with _lock:
        if _module is None:
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            import litellm as imported

            imported.disable_hf_tokenizer_download = True
            imported.suppress_debug_info = True
            _module = imported
        return _module
