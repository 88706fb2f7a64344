"""The workspace keeps its promises: one namespace, typed distributions, no heavy imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ROOT / "packages"
DISTS = [
    "core",
    "resilience",
    "sessions",
    "callbacks",
    "cache",
    "prompts",
    "router",
    "testing",
    "aipowertools",
]


def _pyproject(dist: str) -> dict:
    return tomllib.loads((PACKAGES / dist / "pyproject.toml").read_text())


def test_every_distribution_is_present() -> None:
    assert sorted(p.name for p in PACKAGES.iterdir() if p.is_dir()) == sorted(DISTS)


@pytest.mark.parametrize("dist", DISTS)
def test_distribution_is_one_typed_namespace_subpackage(dist: str) -> None:
    src = PACKAGES / dist / "src"
    assert not (src / "aipowertools" / "__init__.py").exists(), "aipowertools must stay PEP 420"
    subpackages = [
        p for p in (src / "aipowertools").iterdir() if p.is_dir() and p.name != "__pycache__"
    ]
    # The meta distribution ships the command line and the console (dashboard, reports);
    # every other distribution ships exactly the subpackage named after it.
    expected = {"cli", "console"} if dist == "aipowertools" else {dist}
    assert {p.name for p in subpackages} == expected, f"{dist} ships {subpackages}"
    for sub in subpackages:
        assert (sub / "py.typed").exists()
        assert (sub / "__init__.py").exists()
    meta = _pyproject(dist)["project"]
    assert meta["name"] == ("aipowertools" if dist == "aipowertools" else f"aipowertools-{dist}")
    assert "Typing :: Typed" in meta["classifiers"]
    assert meta["requires-python"] == ">=3.10"
    assert (PACKAGES / dist / "README.md").read_text().strip()


def test_extras_match_design() -> None:
    extras = {d: set(_pyproject(d)["project"].get("optional-dependencies", {})) for d in DISTS}
    assert {"redis", "postgres", "otel"} <= extras["core"]
    assert {"langchain", "llama-index", "redis"} <= extras["resilience"]
    assert {"langchain", "llama-index", "redis", "postgres", "s3"} <= extras["sessions"]
    assert {"langchain", "llama-index", "otel"} <= extras["callbacks"]
    assert {"langchain", "llama-index"} <= extras["router"]
    assert {"langchain", "llama-index", "redis", "postgres", "s3", "otel", "console", "all"} <= (
        extras["aipowertools"]
    )


def test_dependency_floors() -> None:
    text = "\n".join((PACKAGES / d / "pyproject.toml").read_text() for d in DISTS)
    assert '"langchain-core>=1.0"' in text
    assert '"llama-index-core>=0.14"' in text
    assert '"pydantic>=2' in text
    assert '"litellm>=1.' in text


def test_dependency_arrows_point_down() -> None:
    allowed = {
        "core": set(),
        "resilience": {"core"},
        "sessions": {"core"},
        "callbacks": {"core"},
        "testing": {"core"},
        "cache": {"core"},
        "prompts": {"core"},
        "router": {"core", "resilience", "cache", "prompts"},
    }
    for dist, ok in allowed.items():
        deps = " ".join(_pyproject(dist)["project"]["dependencies"])
        extras = _pyproject(dist)["project"].get("optional-dependencies", {})
        deps += " " + " ".join(" ".join(v) for v in extras.values())
        used = {d for d in allowed if d != dist and f"aipowertools-{d}" in deps}
        assert used <= ok, f"{dist} depends on {used - ok}"


IMPORT_PROBE = """
import json, sys
import aipowertools.core
heavy = sorted(m for m in sys.modules if m.split('.')[0] in {'langchain', 'langchain_core',
               'llama_index', 'litellm', 'openai', 'anthropic'})
print(json.dumps(heavy))
"""


def test_importing_core_loads_no_framework_and_no_litellm() -> None:
    out = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == []
