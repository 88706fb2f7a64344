"""aipowertools.testing."""

from importlib.metadata import version as _version

__version__ = _version("aipowertools-testing")

__all__ = ["__version__"]
