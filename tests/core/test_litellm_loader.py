from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from aipowertools.core import _litellm, litellm
from aipowertools.core._litellm import bundled_model_map


def test_loader_configures_once_and_is_thread_safe() -> None:
    with ThreadPoolExecutor(4) as pool:
        modules = list(pool.map(lambda _: litellm(), range(8)))
    assert all(m is modules[0] for m in modules)
    assert modules[0].__name__ == "litellm"
    assert modules[0].disable_hf_tokenizer_download is True
    assert os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP")


@pytest.mark.parametrize(("user_value", "seen"), [(None, "True"), ("false", "false")])
def test_cost_map_env_is_set_before_import_unless_the_user_set_it(
    user_value: str | None, seen: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in litellm records the environment it is imported under, so the loader's
    # first import is exercised in-process (a fresh interpreter importing the real litellm
    # takes 15 s on a busy machine and proves no more).
    (tmp_path / "litellm.py").write_text(
        "import os\n"
        "seen_cost_map_env = os.environ.get('LITELLM_LOCAL_MODEL_COST_MAP')\n"
        "disable_hf_tokenizer_download = False\n"
        "suppress_debug_info = False\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "litellm", raising=False)
    monkeypatch.setattr(_litellm, "_module", None)
    if user_value is None:
        monkeypatch.delenv("LITELLM_LOCAL_MODEL_COST_MAP", raising=False)
    else:
        monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", user_value)
    module = litellm()
    assert module.__file__ == str(tmp_path / "litellm.py")
    assert module.seen_cost_map_env == seen
    assert os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] == seen
    assert module.disable_hf_tokenizer_download is True
    assert module.suppress_debug_info is True
    assert litellm() is module  # configured once


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


def test_bundled_model_map_is_litellms_map_without_importing_it() -> None:
    code = (
        "import sys, json; from aipowertools.core._litellm import bundled_model_map;"
        "m = bundled_model_map(); print(json.dumps(['litellm' in sys.modules, len(m)]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    imported, size = json.loads(out.stdout)
    assert imported is False
    assert bundled_model_map() == litellm().model_cost  # litellm is loaded here: its own map
    assert size == len(litellm().model_cost)


def test_bundled_model_map_falls_back_to_litellm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = litellm()
    monkeypatch.setattr(_litellm, "_module", None)
    monkeypatch.delitem(sys.modules, "litellm")
    # A layout the direct read does not handle: litellm's own loader decides.
    (tmp_path / "litellm").mkdir()
    (tmp_path / "litellm" / "__init__.py").write_text("model_cost = {'m': {}}\n")
    (tmp_path / "litellm" / _litellm._MAP_FILE).write_text('{"a": {"aliases": ["b"]}}')
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _litellm.bundled_model_map() == {"m": {}}
    monkeypatch.setattr(_litellm, "_module", None)
    monkeypatch.delitem(sys.modules, "litellm")
    (tmp_path / "litellm" / _litellm._MAP_FILE).write_text("not json")
    assert _litellm.bundled_model_map() == {"m": {}}
    monkeypatch.setattr(_litellm, "_module", None)
    monkeypatch.delitem(sys.modules, "litellm")
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "false")
    (tmp_path / "litellm" / _litellm._MAP_FILE).write_text('{"x": {}}')
    assert _litellm.bundled_model_map() == {"m": {}}  # the user wants litellm's remote map
    assert real.__name__ == "litellm"
