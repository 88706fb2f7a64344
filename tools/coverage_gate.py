"""Report branch coverage per distribution from the combined coverage data, and gate it."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import coverage

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fail-under", type=float, default=90.0)
    args = parser.parse_args()
    cov = coverage.Coverage(config_file=str(ROOT / "pyproject.toml"))
    cov.load()
    failed = []
    rows = []
    for dist in sorted(p.name for p in (ROOT / "packages").iterdir() if p.is_dir()):
        include = [str(ROOT / "packages" / dist / "src" / "*")]
        try:
            percent = cov.report(include=include, file=io.StringIO(), skip_covered=True)
        except coverage.exceptions.NoDataError:
            rows.append((dist, None))
            continue
        rows.append((dist, percent))
        if percent < args.fail_under:
            failed.append(dist)
    cov.report(file=sys.stdout, skip_covered=True, show_missing=True)
    print(f"\n{'distribution':<16} branch coverage (gate {args.fail_under:.0f} %)")
    for dist, percent in rows:
        shown = "no code measured" if percent is None else f"{percent:6.2f} %"
        print(f"{dist:<16} {shown}{'   <- below the gate' if dist in failed else ''}")
    if failed:
        print(f"coverage gate failed for: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
