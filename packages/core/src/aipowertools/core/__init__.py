"""aipowertools.core: model catalog, tokens and cost, error taxonomy, store URLs, cost tracking.

Importing this package is cheap: litellm is loaded on first use through :func:`litellm`.
"""

from importlib.metadata import version as _version

from aipowertools.core._litellm import litellm
from aipowertools.core._monitor import ProviderMonitor, ProviderStats

__version__ = _version("aipowertools-core")

__all__ = [
    "ProviderMonitor",
    "ProviderStats",
    "__version__",
    "litellm",
]
