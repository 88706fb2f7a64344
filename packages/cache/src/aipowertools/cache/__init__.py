"""aipowertools.cache: an LLM response cache that saves real money.

Exact and (opt-in) semantic matching, scoped by content, model and user, on the embedded
store (diskcache), Redis or PostgreSQL. :class:`LLMCache` is the framework-free engine;
``aipowertools.cache.langchain`` and ``aipowertools.cache.llama_index`` hold the adapters.

Example:
    >>> from aipowertools.cache import LLMCache
    >>> cache = LLMCache("memory://", ttl=3600)
    >>> cache.store("4", messages="2+2?", model="gpt-4o-mini", input_tokens=9, output_tokens=1)
    True
    >>> hit = cache.lookup("2+2?", model="gpt-4o-mini")
    >>> hit.value, hit.kind
    ('4', 'hit')
"""

from importlib.metadata import version as _version

from aipowertools.cache._cache import LLMCache
from aipowertools.cache._decorator import cached
from aipowertools.cache._hit import Answer, CacheHit
from aipowertools.cache._protocol import ResponseCache
from aipowertools.cache._stats import CacheStats

__version__ = _version("aipowertools-cache")

__all__ = [
    "Answer",
    "CacheHit",
    "CacheStats",
    "LLMCache",
    "ResponseCache",
    "__version__",
    "cached",
]
