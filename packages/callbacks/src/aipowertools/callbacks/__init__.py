"""aipowertools.callbacks."""

from importlib.metadata import version as _version

__version__ = _version("aipowertools-callbacks")

__all__ = ["__version__"]
