"""``@cached``: cache what a sync or async function that calls a model returns."""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

from aipowertools.cache._cache import LLMCache
from aipowertools.cache._hit import UNSET as _UNSET
from aipowertools.cache._hit import check_scope as _scope
from aipowertools.cache._hit import positive_or_none as _positive_or_none
from aipowertools.cache._key import Scope

F = TypeVar("F", bound=Callable[..., Any])
_default: LLMCache | None = None
_default_lock = threading.Lock()


def default_cache() -> LLMCache:
    """The process-wide cache ``@cached`` uses when given none (the embedded default store)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = LLMCache()
        return _default


def cached(
    cache: LLMCache | None = None,
    *,
    ttl: float | None = _UNSET,
    scope: Scope | None = None,
    user_arg: str = "user",
) -> Callable[[F], F]:
    """Cache a function's results by its arguments, like a model call.

    The key is the function's qualified name and its arguments in canonical form (keyword
    order and equivalent spellings do not matter); results must be JSON values. Exceptions are
    never cached. With ``scope="user"`` the argument named ``user_arg`` is the user.

    Args:
        cache: the :class:`LLMCache` to use (default: one on the embedded store).
        ttl: seconds results live (default: the cache's ``ttl``).
        scope: the cache's scope for these results (default: the cache's).
        user_arg: the argument holding the user id.

    Example:
        >>> cache = LLMCache("memory://")
        >>> @cached(cache, ttl=3600)
        ... def summarize(text: str) -> str:
        ...     return text[:10]  # a model call in real life
        >>> summarize("hello world, again"), summarize("hello world, again")
        ('hello worl', 'hello worl')
        >>> cache.stats().hits
        1
    """
    if ttl is not _UNSET:
        _positive_or_none("ttl", ttl)
    if scope is not None:
        _scope(scope)

    def decorate(fn: F) -> F:
        name = f"fn:{fn.__module__}.{fn.__qualname__}"
        signature = inspect.signature(fn)

        def request(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, str | None]:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            user = arguments.get(user_arg)
            return [{"role": "user", "content": arguments}], (
                str(user) if user is not None else None
            )

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                c = cache or default_cache()
                messages, user = request(args, kwargs)
                return await c.acall(
                    lambda: fn(*args, **kwargs), messages=messages, model=name, user=user,
                    scope=scope, ttl=ttl,
                )  # fmt: skip

            return cast("F", async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            c = cache or default_cache()
            messages, user = request(args, kwargs)
            return c.call(
                lambda: fn(*args, **kwargs), messages=messages, model=name, user=user,
                scope=scope, ttl=ttl,
            )  # fmt: skip

        return cast("F", wrapper)

    return decorate
