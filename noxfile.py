"""Every developer task of the AI PowerTools workspace: ``nox -l`` lists them.

Sessions install the workspace with uv from ``uv.lock`` into their own virtualenv, so a fresh
machine with only Python and ``pip install nox uv`` runs them all.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "typecheck", "tests"]
nox.needs_version = ">=2024.10"

ROOT = Path(__file__).parent
DISTRIBUTIONS = [
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
# uv must use the interpreter nox runs on, never download one.
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")
# litellm must never fetch its price map from the network.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def install(session: nox.Session, *groups: str, extras: bool = True) -> None:
    """Install every workspace distribution editable (plus dependency groups) from uv.lock."""
    args = ["uv", "sync", "--frozen", "--all-packages", "--inexact"]
    if extras:
        args.append("--all-extras")
    for group in groups:
        args += ["--group", group]
    session.run_install(
        *args,
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
        silent=True,
    )


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite with branch coverage, gated per distribution."""
    install(session, "test")
    session.run("coverage", "erase")
    # pytest exits 5 when it collected nothing: that is a failure here, never a pass.
    session.run(
        "coverage",
        "run",
        "-m",
        "pytest",
        "--durations=15",
        *(session.posargs or ["tests"]),
        success_codes=[0],
    )
    session.run("coverage", "combine", "--quiet", success_codes=[0, 1])
    session.run("python", "tools/coverage_gate.py", "--fail-under", "90")


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff."""
    install(session, "lint", extras=False)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check every distribution with mypy --strict."""
    install(session, "typecheck")
    session.run("mypy", "packages/", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site, failing on any warning."""
    install(session, "docs")
    session.run("mkdocs", "build", "--strict", "--site-dir", str(ROOT / "site"))


@nox.session
def examples(session: nox.Session) -> None:
    """Run every runnable example in examples/ against the provider simulator."""
    install(session, "test")
    scripts = sorted((ROOT / "examples").glob("*.py"))
    if not scripts:
        session.error("no examples found in examples/")
    for script in scripts:
        session.log(f"example: {script.name}")
        session.run("python", str(script), env={"AIPOWERTOOLS_EXAMPLE": "1"})


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks against their named peers; write JSON to bench/results/."""
    install(session, "bench", "test")
    scripts = sorted((ROOT / "bench").glob("bench_*.py"))
    if session.posargs:
        scripts = [s for s in scripts if any(a in s.name for a in session.posargs)]
    for script in scripts:
        session.log(f"benchmark: {script.name}")
        session.run("python", str(script))
    session.run("python", str(ROOT / "bench" / "report.py"))


@nox.session
def mutation(session: nox.Session) -> None:
    """Mutation-test the code that guards money and data (mutmut), into tools/mutation-results.json.

    Slow (minutes per target on two cores) and not part of CI; pass target names to run some:
    ``nox -s mutation -- core.cost``.
    """
    install(session, "mutation")
    session.run("python", "tools/mutation.py", *session.posargs)


@nox.session
def screenshots(session: nox.Session) -> None:
    """Make docs/images/dashboard.png and report.png from the simulator's data (needs chromium)."""
    install(session, "test")
    session.run("python", str(ROOT / "tools" / "screenshots.py"))


@nox.session
def dashboard(session: nox.Session) -> None:
    """Serve the live dashboard on what the demo recorded (or: nox -s dashboard -- --home DIR)."""
    install(session)
    session.run("aipowertools", "dashboard", *(session.posargs or ["--demo"]))


@nox.session
def demo(session: nox.Session) -> None:
    """Run the demo: a routed LangChain conversation with cost, sessions and logs."""
    install(session)
    session.run("aipowertools", "demo")


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run this file with nox, e.g. `nox -s tests`")
