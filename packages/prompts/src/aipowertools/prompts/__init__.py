"""Context management and prompt optimisation."""

from __future__ import annotations

__all__: list[str] = []
