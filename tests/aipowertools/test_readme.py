"""The READMEs say what a newcomer needs, and the commands they name exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_meta_readme_is_real_and_says_how_to_install_from_a_checkout() -> None:
    text = (ROOT / "packages" / "aipowertools" / "README.md").read_text()
    assert "placeholder" not in text
    assert "uv sync --all-packages --all-extras" in text
    # the pip form names every sibling distribution the meta distribution depends on
    for folder in ("core", "resilience", "sessions", "callbacks", "cache", "prompts", "router",
                   "testing", "aipowertools"):  # fmt: skip
        assert f"-e packages/{folder}" in text or f'-e "packages/{folder}[' in text, folder
    assert 'pip install "aipowertools[langchain,console]"' in text


def test_readme_demo_ends_with_how_to_open_the_dashboard() -> None:
    text = (ROOT / "README.md").read_text()
    demo = text.index("nox -s demo")
    assert text.index("nox -s dashboard", demo) > demo
    noxfile = (ROOT / "noxfile.py").read_text()
    assert re.search(r'def dashboard\(session.*?"aipowertools", "dashboard".*?"--demo"', noxfile,
                     re.S)  # fmt: skip


def test_dashboard_demo_flag_opens_the_demo_folder(tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    import aipowertools.console as console
    from aipowertools.cli import app

    monkeypatch.setenv("AIPOWERTOOLS_HOME", str(tmp_path))
    monkeypatch.delenv("AIPOWERTOOLS_STORE", raising=False)
    seen = {}
    monkeypatch.setattr(console, "serve_dashboard", lambda stores, **kw: seen.update(s=stores))
    result = CliRunner().invoke(app, ["dashboard", "--demo"])
    assert result.exit_code == 0, result.output
    assert seen["s"].ledger == f"sqlite:///{tmp_path.resolve() / 'demo' / 'ledger.db'}"
