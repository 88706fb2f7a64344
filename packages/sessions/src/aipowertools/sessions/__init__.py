"""aipowertools.sessions."""

from importlib.metadata import version as _version

__version__ = _version("aipowertools-sessions")

__all__ = ["__version__"]
