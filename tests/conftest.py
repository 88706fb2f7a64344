"""Fixtures shared by every test directory: the LangGraph conformance report, printed at the end."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from typing import Any

import pytest


class _ConformanceReports:
    """Keeps each conformance report and prints them all in pytest's terminal summary."""

    name = "aipowertools-langgraph-conformance"

    def __init__(self) -> None:
        self.reports: list[str] = []

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.reports:
            terminalreporter.section("langgraph-checkpoint-conformance")
            for text in self.reports:
                terminalreporter.write(text)


@pytest.fixture
def conformance(request: pytest.FixtureRequest) -> Callable[[Any, str], Any]:
    """``await conformance(factory, name)``: run the suite, keep its report for the summary."""
    from langgraph.checkpoint.conformance import checkpointer_test, validate

    manager = request.config.pluginmanager
    plugin = manager.get_plugin(_ConformanceReports.name)
    if plugin is None:
        plugin = _ConformanceReports()
        manager.register(plugin, _ConformanceReports.name)

    async def run(factory: Any, name: str) -> Any:
        report = await validate(checkpointer_test(name=name)(factory))
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            report.print_report()
        plugin.reports.append(out.getvalue())
        return report

    return run
