"""Mutation testing of the code that guards money and data, one target at a time, with mutmut.

mutmut 3 mutates a source tree it finds at ``src/`` under its working directory, so each target
runs inside its distribution's folder (``packages/<dist>``) with a throwaway ``setup.cfg`` that
names the module to mutate and the tests that guard it; the tests themselves run from the
workspace's ``tests/``. Results go to ``tools/mutation-results.json`` (dated, per target: killed,
survived, timeouts, score) and the survivors are listed so each gets a test or a reason in
``docs/development.md``.

Run: ``nox -s mutation`` (every target) or ``nox -s mutation -- core.cost`` (some of them).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "tools" / "mutation-results.json"

# name -> (distribution, module globs under src/, the tests that guard them)
TARGETS: dict[str, tuple[str, list[str], list[str]]] = {
    "core.cost": ("core", ["aipowertools/core/_cost.py"], ["tests/core/test_cost.py"]),
    "core.budget": (
        "core",
        ["aipowertools/core/_budget.py"],
        ["tests/core/test_budget.py", "tests/core/test_budget_properties.py"],
    ),
    "core.ledger": (
        "core",
        ["aipowertools/core/_ledger*.py"],
        ["tests/core/test_ledger_contract.py", "tests/integration/core"],
    ),
    "resilience.limiter": (
        "resilience",
        ["aipowertools/resilience/_limiter.py", "aipowertools/resilience/_backend.py"],
        ["tests/resilience/test_limiter.py"],
    ),
    "sessions.append_cas": (
        "sessions",
        ["aipowertools/sessions/_session.py", "aipowertools/sessions/_backend.py"],
        ["tests/sessions/test_session.py"],
    ),
    "callbacks.audit": (
        "callbacks",
        ["aipowertools/callbacks/_audit.py"],
        ["tests/callbacks/test_audit.py"],
    ),
}

_COUNTS = re.compile(r"(\d+)/(\d+)\s+🎉 (\d+) 🫥 (\d+)\s+⏰ (\d+)\s+🤔 (\d+)\s+🙁 (\d+)\s+🔇 (\d+)")


def run(name: str, max_children: int) -> dict[str, object]:
    """Mutate one target and return its counts and survivors."""
    dist, modules, tests = TARGETS[name]
    where = ROOT / "packages" / dist
    shutil.rmtree(where / "mutants", ignore_errors=True)
    config = where / "setup.cfg"
    config.write_text(
        "[mutmut]\nsource_paths=src\n"
        + "only_mutate=\n"
        + "".join(f"    src/{m}\n" for m in modules)
        + "pytest_add_cli_args_test_selection=\n"
        + "".join(f"    {ROOT / t}\n" for t in tests)
        + "pytest_add_cli_args=\n    -p\n    no:cacheprovider\n    -x\n    -q\n"
    )
    mutmut = Path(sys.executable).with_name("mutmut")
    try:
        done = subprocess.run(
            [str(mutmut), "run", "--max-children", str(max_children)],
            cwd=where, capture_output=True, text=True, check=False,
            env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
        )  # fmt: skip
        found = _COUNTS.findall(done.stdout)
        if done.returncode != 0 or not found:
            raise SystemExit(f"mutmut failed on {name}:\n{done.stdout[-2000:]}\n{done.stderr}")
        _, total, killed, skipped, timeout, suspicious, survived, no_tests = map(int, found[-1])
        listing = subprocess.run(
            [str(mutmut), "results"], cwd=where, capture_output=True, text=True, check=False
        ).stdout
        survivors = sorted(
            line.split(":")[0].strip() for line in listing.splitlines() if "survived" in line
        )
    finally:
        config.unlink(missing_ok=True)
        shutil.rmtree(where / "mutants", ignore_errors=True)
    tested = total - skipped - no_tests
    # A timeout means the mutant made the tests hang: the tests noticed it.
    score = (killed + timeout) / tested if tested else 0.0
    return {
        "modules": modules,
        "tests": tests,
        "mutants": total,
        "killed": killed,
        "timeout": timeout,
        "suspicious": suspicious,
        "survived": survived,
        "no_tests": no_tests,
        "score": round(score, 4),
        "survivors": survivors,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("targets", nargs="*", help=f"some of: {', '.join(TARGETS)}")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--fail-under", type=float, default=0.85)
    args = parser.parse_args()
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown targets {unknown}; choose from {', '.join(TARGETS)}")
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    low = []
    for name in args.targets or list(TARGETS):
        result = run(name, args.max_children)
        result["date"] = dt.date.today().isoformat()
        results[name] = result
        RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        print(f"{name:<22} {result['score']:7.1%} killed of {result['mutants']} mutants; "
              f"{len(result['survivors'])} survived")  # fmt: skip
        if float(result["score"]) < args.fail_under:  # type: ignore[arg-type]
            low.append(name)
    if low:
        print(f"below {args.fail_under:.0%}: {', '.join(low)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
