"""aipowertools.router."""

from importlib.metadata import version as _version

__version__ = _version("aipowertools-router")

__all__ = ["__version__"]
