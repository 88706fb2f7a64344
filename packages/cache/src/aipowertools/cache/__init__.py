"""An LLM response cache: exact and semantic, scoped by content, model and user."""

from __future__ import annotations

__all__: list[str] = []
