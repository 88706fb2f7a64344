"""Shared helpers for the benchmarks: timing, medians of several runs, JSON results.

Every ``bench/bench_*.py`` script measures one or more figures, each against a named peer
measured in the same run where there is one, and writes them with :func:`write_results`::

    from _harness import Result, measure, write_results

    ours = measure(lambda: tracker.record(...), runs=5, number=1000)   # seconds per call
    peer = measure(lambda: untracked_call(), runs=5, number=1000)
    write_results("core", [Result("record overhead", "ms", ours * 1e3, peer="untracked call",
                                  peer_median=peer * 1e3, target="<= 0.5 ms")])

``nox -s bench`` runs every script and then ``bench/report.py``, which prints one table of
medians and ratios from the JSON files under ``bench/results/``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@dataclass
class Result:
    """One measured figure: the median of ``runs`` and, where there is one, the peer's."""

    name: str
    unit: str
    median: float
    peer: str | None = None
    peer_median: float | None = None
    target: str | None = None
    runs: list[float] = field(default_factory=list)
    peer_runs: list[float] = field(default_factory=list)
    notes: str = ""

    @property
    def ratio(self) -> float | None:
        """Ours divided by the peer's median (below 1 means we are faster for time units)."""
        if self.peer_median in (None, 0):
            return None
        return self.median / self.peer_median  # type: ignore[operator]


def measure(
    fn: Callable[[], object], *, runs: int = 5, number: int = 100
) -> tuple[float, list[float]]:
    """Call ``fn`` ``number`` times per run, ``runs`` times; return (median seconds/call, runs)."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples), samples


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` percentile (0-100) of ``values`` by nearest rank."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def write_results(suite: str, results: list[Result]) -> Path:
    """Write ``results`` to ``bench/results/<suite>.json`` and print them."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{suite}.json"
    payload = {
        "suite": suite,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": sys.version.split()[0],
        "machine": f"{platform.machine()} {os.cpu_count()} cpu",
        "results": [asdict(r) | {"ratio": r.ratio} for r in results],
    }
    path.write_text(json.dumps(payload, indent=2))
    for r in results:
        peer = (
            f" | {r.peer}: {r.peer_median:.4g} (ratio {r.ratio:.3g})" if r.ratio is not None else ""
        )
        target = f" | target {r.target}" if r.target else ""
        print(f"[{suite}] {r.name}: {r.median:.4g} {r.unit}{peer}{target}")
    return path
