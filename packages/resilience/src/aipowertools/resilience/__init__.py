"""aipowertools.resilience."""

from importlib.metadata import version as _version

__version__ = _version("aipowertools-resilience")

__all__ = ["__version__"]
