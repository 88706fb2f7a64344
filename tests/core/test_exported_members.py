"""The public API of aipowertools.core, locked (httpx's test_exported_members)."""

from __future__ import annotations

import subprocess
import sys

import aipowertools.core
from aipowertools.core import errors, stores

CORE_MODULE_NAMES = {  # owned by the catalog / tokens / cost part of core
    "ModelCatalog",
    "ModelInfo",
    "PriceTier",
    "TokenCount",
    "Usage",
    "__version__",
    "cost",
    "count_tokens",
    "default_catalog",
    "estimate_cost",
    "litellm",
    "prompt_upper_bound",
    "worst_case_cost",
    "worst_case_rates",
}


def test_package_exports_are_sorted_and_exist() -> None:
    names = aipowertools.core.__all__
    assert names == sorted(names)
    assert len(set(names)) == len(names)
    for name in names:
        assert hasattr(aipowertools.core, name), name
    assert set(names) >= CORE_MODULE_NAMES
    public = {n for n in dir(aipowertools.core) if not n.startswith("_")}
    submodules = {"errors", "stores"} | {n for n in public if n.startswith("_")}
    assert public - set(names) - submodules == set()


def test_errors_module_exports() -> None:
    assert errors.__all__ == [
        "AIPowerToolsError",
        "AuthenticationError",
        "BudgetExceededError",
        "CircuitOpenError",
        "ConfigurationError",
        "ContentPolicyError",
        "ContextWindowExceededError",
        "ErrorKind",
        "PermanentProviderError",
        "ProviderError",
        "ProviderTimeoutError",
        "RateLimitExceededError",
        "RateLimitedError",
        "SessionConflictError",
        "StoreURLError",
        "StoreUnavailableError",
        "TransientProviderError",
        "UnknownModelError",
        "as_provider_error",
        "classify",
        "retry_after_seconds",
    ]


def test_stores_module_exports() -> None:
    assert stores.__all__ == [
        "StoreURL",
        "async_postgres_pool",
        "async_redis_client",
        "data_dir",
        "parse_store_url",
        "postgres_pool",
        "redis_budget_problems",
        "redis_client",
    ]


def test_import_is_light_and_fast() -> None:
    code = (
        "import sys, time; t = time.perf_counter(); import aipowertools.core;"
        "import aipowertools.core.errors, aipowertools.core.stores;"
        "heavy = [m for m in ('litellm', 'langchain', 'langchain_core', 'llama_index', 'openai',"
        " 'anthropic', 'httpx', 'redis', 'psycopg', 'psycopg_pool', 'tiktoken')"
        " if m in sys.modules]; print(heavy, round(time.perf_counter() - t, 3))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    heavy, seconds = out.stdout.rsplit(" ", 1)
    assert heavy == "[]"
    assert float(seconds) < 2.0  # pydantic is the only non-stdlib import of note
