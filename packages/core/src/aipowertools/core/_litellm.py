"""Lazy, configured-once import of litellm.

litellm takes seconds to import and, unless told otherwise, fetches its price map from the
network at import time. Every package of the suite goes through :func:`litellm` so that the
import happens at first use, offline by default, and is configured exactly once.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["bundled_model_map", "litellm"]

_MAP_FILE = "model_prices_and_context_window_backup.json"

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


def bundled_model_map() -> dict[str, Any]:
    """litellm's price map, read from its bundled JSON when litellm is not imported yet.

    Importing litellm takes seconds; pricing a call needs only its model map. When litellm
    is not loaded and would read its bundled map anyway (``LITELLM_LOCAL_MODEL_COST_MAP``
    unset or true), the same JSON file is read directly (tens of milliseconds). Otherwise,
    or when the file is missing or uses a layout we do not read (``aliases`` entries), the
    map is ``litellm().model_cost``.
    """
    if _module is None and "litellm" not in sys.modules:
        flag = os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP", "true").lower()
        spec = importlib.util.find_spec("litellm") if flag == "true" else None
        if spec is not None and spec.origin:
            try:
                data = json.loads(Path(spec.origin).with_name(_MAP_FILE).read_text("utf-8"))
            except (OSError, ValueError):
                data = None
            if isinstance(data, dict) and not any(
                isinstance(entry, dict) and "aliases" in entry for entry in data.values()
            ):
                data.pop("fallback_generalizations", None)  # not a model; litellm pops it too
                return data
    model_cost: dict[str, Any] = litellm().model_cost
    return model_cost
