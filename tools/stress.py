"""Run a command several times in a row while busy-loop processes hog every core.

``python tools/stress.py --runs 3 -- pytest tests`` starts ``--hogs`` (default: one per core)
interpreters spinning ``while True`` before each run, runs the command, and stops the hogs
after it. Each hog also stops by itself after ``--max-seconds`` (so a killed or crashed
driver never leaves a core spinning). Stops at the first failing run and exits with its
code; prints each run's wall time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

HOG = (
    "import time\n"
    "end = time.monotonic() + {seconds}\n"
    "while time.monotonic() < end:\n"
    "    for _ in range(100_000):\n"
    "        pass\n"
)


def start_hogs(count: int, seconds: float) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen([sys.executable, "-c", HOG.format(seconds=seconds)]) for _ in range(count)
    ]


def stop_hogs(hogs: list[subprocess.Popen[bytes]]) -> None:
    for hog in hogs:
        hog.terminate()
    for hog in hogs:
        try:
            hog.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - terminate is enough on POSIX
            hog.kill()
            hog.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs in a row (default 3)")
    parser.add_argument(
        "--hogs", type=int, default=os.cpu_count() or 2, help="busy-loop processes (one per core)"
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=1800.0,
        help="each hog stops by itself after this long (default 1800)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    if args.runs < 1 or args.hogs < 0 or args.max_seconds <= 0:
        parser.error("--runs must be >= 1, --hogs >= 0 and --max-seconds > 0")
    walls = []
    for run in range(1, args.runs + 1):
        print(f"stress: run {run}/{args.runs}, {args.hogs} busy-loop hogs: {command}", flush=True)
        hogs = start_hogs(args.hogs, args.max_seconds)
        started = time.monotonic()
        try:
            code = subprocess.call(command)
        finally:
            stop_hogs(hogs)
        walls.append(time.monotonic() - started)
        print(f"stress: run {run} exited {code} after {walls[-1]:.0f} s", flush=True)
        if code != 0:
            return code
    print("stress: all runs passed; wall times " + ", ".join(f"{w:.0f} s" for w in walls))
    return 0


if __name__ == "__main__":
    sys.exit(main())
