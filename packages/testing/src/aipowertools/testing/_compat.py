"""The two things this package takes from ``aipowertools.core``, in one place."""

from __future__ import annotations

from aipowertools.core import litellm
from aipowertools.core.errors import ConfigurationError

__all__ = ["ConfigurationError", "litellm"]
