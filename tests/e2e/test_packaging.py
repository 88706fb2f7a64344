"""Distributions install on their own from their folders and share one namespace."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

PROBE = """
import importlib.util, json, sys
import aipowertools
names = {}
for sub in sys.argv[1:]:
    module = __import__(f"aipowertools.{sub}", fromlist=["_"])
    names[sub] = module.__file__
print(json.dumps({
    "files": names,
    "namespace_file": getattr(aipowertools, "__file__", None),
    "frameworks": [m for m in ("langchain_core", "llama_index", "litellm")
                   if importlib.util.find_spec(m) is not None],
    "loaded": sorted(m for m in sys.modules
                     if m.split(".")[0] in {"langchain_core", "llama_index", "litellm"}),
}))
"""


def _uv() -> str:
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is needed for the packaging tests (pip install uv)")
    return uv


def _venv_with(tmp_path: Path, *dists: str) -> Path:
    uv = _uv()
    venv = tmp_path / "venv"
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    subprocess.run(
        [uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, env=env
    )
    python = venv / "bin" / "python"
    paths = [str(ROOT / "packages" / d) for d in dists]
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--no-sources", "--python", str(python), *paths],
        cwd=tmp_path,
        check=True,
        env=env,
        timeout=600,
    )
    return python


def _probe(python: Path, *subs: str) -> dict[str, object]:
    out = subprocess.run(
        [str(python), "-c", PROBE, *subs], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_core_installs_alone_without_any_framework(tmp_path: Path) -> None:
    python = _venv_with(tmp_path, "core")
    result = _probe(python, "core")
    files = result["files"]
    assert isinstance(files, dict)
    assert "site-packages/aipowertools/core/" in files["core"], "installed as a wheel, not a link"
    assert result["namespace_file"] is None, "aipowertools must be a PEP 420 namespace"
    assert result["frameworks"] == ["litellm"], "core must not pull in LangChain or LlamaIndex"
    assert result["loaded"] == [], "importing aipowertools.core must not load litellm"


def test_two_distributions_share_one_namespace(tmp_path: Path) -> None:
    python = _venv_with(tmp_path, "core", "resilience", "cache", "prompts", "router")
    result = _probe(python, "core", "router")
    files = result["files"]
    assert isinstance(files, dict)
    assert "site-packages/aipowertools/core/" in files["core"]
    assert "site-packages/aipowertools/router/" in files["router"]
    assert result["namespace_file"] is None
