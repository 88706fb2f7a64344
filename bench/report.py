"""Print one table of every benchmark result under bench/results/ (medians and peer ratios)."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    table = Table("suite", "figure", "median", "unit", "peer", "peer median", "ratio", "target")
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        for r in data["results"]:
            ratio = r.get("ratio")
            table.add_row(
                data["suite"],
                r["name"],
                f"{r['median']:.4g}",
                r["unit"],
                r.get("peer") or "",
                "" if r.get("peer_median") is None else f"{r['peer_median']:.4g}",
                "" if ratio is None else f"{ratio:.3g}x",
                r.get("target") or "",
            )
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
