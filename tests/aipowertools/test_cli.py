"""The aipowertools command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from aipowertools.cli import app

runner = CliRunner()


def test_version_lists_every_distribution() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0, result.output
    for dist in ("core", "resilience", "sessions", "callbacks", "router", "testing"):
        assert f"aipowertools-{dist}" in result.output
    assert "0.1.0" in result.output


def test_where_prints_the_data_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIPOWERTOOLS_HOME", str(tmp_path))
    monkeypatch.delenv("AIPOWERTOOLS_STORE", raising=False)
    result = runner.invoke(app, ["where"])
    assert result.exit_code == 0, result.output
    assert str(tmp_path) in result.output.replace("\n", "")
    assert "embedded" in result.output


def test_no_arguments_shows_help() -> None:
    result = runner.invoke(app, [])
    assert "demo" in result.output
    assert "version" in result.output
