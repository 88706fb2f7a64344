from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from aipowertools.core import litellm


def test_loader_configures_once_and_is_thread_safe() -> None:
    with ThreadPoolExecutor(4) as pool:
        modules = list(pool.map(lambda _: litellm(), range(8)))
    assert all(m is modules[0] for m in modules)
    assert modules[0].__name__ == "litellm"
    assert modules[0].disable_hf_tokenizer_download is True
    assert os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP")


def test_user_setting_of_cost_map_env_is_kept() -> None:
    code = (
        "import os; os.environ['LITELLM_LOCAL_MODEL_COST_MAP'] = 'true';"
        "from aipowertools.core import litellm; litellm();"
        "print(os.environ['LITELLM_LOCAL_MODEL_COST_MAP'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "true"


def test_import_of_core_does_not_load_litellm_or_frameworks() -> None:
    code = (
        "import sys, aipowertools.core, aipowertools.core.errors;"
        "bad = [m for m in ('litellm', 'langchain_core', 'llama_index', 'openai', 'anthropic',"
        " 'httpx', 'redis', 'psycopg') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
