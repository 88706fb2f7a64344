"""LangChain adapter: a ``BaseCache`` for ``set_llm_cache(...)`` and ``ChatModel(cache=...)``.

Example:
    >>> from langchain_core.globals import set_llm_cache
    >>> from aipowertools.cache.langchain import LangChainCache
    >>> set_llm_cache(LangChainCache(store="memory://", ttl=3600))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Sequence
from typing import Any

from langchain_core._api import LangChainBetaWarning
from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.load import dumps, loads

from aipowertools.cache._cache import LLMCache

__all__ = ["LangChainCache"]

_MODEL = re.compile(r"""['"]model(?:_name)?['"]\s*[,:]\s*['"]([^'"]+)['"]""")


def model_of(llm_string: str) -> str:
    """The model name inside LangChain's ``llm_string`` (``"langchain"`` when it has none)."""
    match = _MODEL.search(llm_string)
    return match.group(1) if match else "langchain"


def messages_of(prompt: str) -> str | list[dict[str, Any]]:
    """The messages inside a chat model's prompt (LangChain serializes them as JSON).

    Reading them lets the key fold what does not reach the provider (message ids, response
    metadata of earlier answers) and lets semantic matching embed the last user message
    rather than the JSON. A prompt that is not serialized messages stays a string.
    """
    if not prompt.startswith("[{"):
        return prompt
    try:
        items = json.loads(prompt)
    except ValueError:
        return prompt
    messages = []
    for item in items:
        kwargs = item.get("kwargs") if isinstance(item, dict) and item.get("lc") == 1 else None
        if not isinstance(kwargs, dict) or "type" not in kwargs:
            return prompt
        messages.append(kwargs)
    return messages


def _usage(generations: RETURN_VAL_TYPE) -> tuple[int, int, str | None]:
    input_tokens = output_tokens = 0
    finish: str | None = None
    for generation in generations:
        message = getattr(generation, "message", None)
        usage = getattr(message, "usage_metadata", None) or {}
        input_tokens += int(usage.get("input_tokens", 0) or 0)
        output_tokens += int(usage.get("output_tokens", 0) or 0)
        info = generation.generation_info or {}
        metadata = getattr(message, "response_metadata", None) or {}
        reason = info.get("finish_reason") or metadata.get("finish_reason")
        if reason is not None:
            finish = str(reason) if finish in (None, "stop") else finish
    return input_tokens, output_tokens, finish


class LangChainCache(BaseCache):
    """LangChain's LLM cache interface on an :class:`~aipowertools.cache.LLMCache`.

    The key is LangChain's prompt (the serialized messages) and its ``llm_string`` (the model
    and every parameter), canonicalised by the engine; the model named in ``llm_string``
    prices what each hit saved. Answers cut off by a content filter are not cached.

    Args:
        cache: the engine to use; when None one is built from ``**options``.
        user: the user the calls are made for (needed with ``scope="user"``).
        tags: tags for the entries (``invalidate("tag:...")``) and the ledger.
        **options: :class:`~aipowertools.cache.LLMCache` arguments (``store``, ``ttl``...).

    Example:
        >>> from aipowertools.cache.langchain import LangChainCache
        >>> cache = LangChainCache(store="memory://")
        >>> cache.lookup("prompt", "llm") is None
        True
    """

    def __init__(
        self,
        cache: LLMCache | None = None,
        *,
        user: str | None = None,
        tags: Sequence[str] = (),
        **options: Any,
    ) -> None:
        self.cache = cache if cache is not None else LLMCache(**options)
        self.user = user
        self.tags = tuple(tags)

    def _kw(self, llm_string: str) -> dict[str, Any]:
        return {
            "model": model_of(llm_string),
            "user": self.user,
            "tags": self.tags,
            "llm_string": llm_string,
        }

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """Cached generations for ``prompt`` and ``llm_string``, or None."""
        hit = self.cache.lookup(messages_of(prompt), **self._kw(llm_string))
        return None if hit is None else _load(hit.value)

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Cache the generations of a call."""
        input_tokens, output_tokens, finish = _usage(return_val)
        self.cache.store(
            dumps(list(return_val)), messages=messages_of(prompt), input_tokens=input_tokens,
            output_tokens=output_tokens, finish_reason=finish, **self._kw(llm_string),
        )  # fmt: skip

    def clear(self, **kwargs: Any) -> None:
        """Delete every entry of the cache."""
        self.cache.clear()

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """Async :meth:`lookup`."""
        hit = await self.cache.alookup(messages_of(prompt), **self._kw(llm_string))
        return None if hit is None else _load(hit.value)

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Async :meth:`update`."""
        input_tokens, output_tokens, finish = _usage(return_val)
        await self.cache.astore(
            dumps(list(return_val)), messages=messages_of(prompt), input_tokens=input_tokens,
            output_tokens=output_tokens, finish_reason=finish, **self._kw(llm_string),
        )  # fmt: skip

    async def aclear(self, **kwargs: Any) -> None:
        """Async :meth:`clear`."""
        await self.cache.aclear()


def _load(value: Any) -> RETURN_VAL_TYPE | None:
    if not isinstance(value, str):
        return None
    try:
        with warnings.catch_warnings():
            # loads() is marked beta on every call; the format is LangChain's stable one
            warnings.simplefilter("ignore", LangChainBetaWarning)
            generations = loads(value, allowed_objects="core")
    except Exception:  # an entry written by something else: a miss
        return None
    return list(generations) if isinstance(generations, list) else None
