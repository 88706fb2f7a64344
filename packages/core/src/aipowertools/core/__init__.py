"""aipowertools.core."""

from importlib.metadata import version as _version

__version__ = _version("aipowertools-core")

__all__ = ["__version__"]
