"""langchain-tests' cache suites on Redis and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from langchain_core.caches import BaseCache
from langchain_tests.integration_tests.cache import AsyncCacheTestSuite, SyncCacheTestSuite

from aipowertools.cache.langchain import LangChainCache


def _cache(url: str) -> LangChainCache:
    return LangChainCache(store=url, namespace="lc" + uuid.uuid4().hex[:10])


class TestRedisSync(SyncCacheTestSuite):
    @pytest.fixture
    def cache(self, redis_url: str) -> BaseCache:
        return _cache(redis_url)


class TestRedisAsync(AsyncCacheTestSuite):
    @pytest.fixture
    async def cache(self, redis_url: str) -> BaseCache:
        return _cache(redis_url)


class TestPostgresSync(SyncCacheTestSuite):
    @pytest.fixture
    def cache(self, postgres_url: str) -> BaseCache:
        return _cache(postgres_url)


class TestPostgresAsync(AsyncCacheTestSuite):
    @pytest.fixture
    async def cache(self, postgres_url: str) -> BaseCache:
        return _cache(postgres_url)
