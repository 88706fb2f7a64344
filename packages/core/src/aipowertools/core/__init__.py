"""aipowertools.core: model catalog, tokens and cost, error taxonomy, store URLs, cost tracking.

Importing this package is cheap: litellm is loaded on first use through :func:`litellm`.
"""

from importlib.metadata import version as _version

from aipowertools.core._litellm import litellm

__version__ = _version("aipowertools-core")

__all__ = [
    "__version__",
    "litellm",
]
