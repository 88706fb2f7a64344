"""A writer process for the concurrency and crash tests (run as a script, not collected).

Usage: python _writer.py NAMESPACE SESSION_ID WRITER_ID STORE_URL=COUNT [STORE_URL=COUNT ...]
Prints "ready" once started, waits for a line on stdin (or its end: run it with stdin from
/dev/null to go at once), then appends COUNT items {"w": WRITER_ID, "i": i} to each store,
interleaving the stores, and prints "ack i" after item i was acknowledged by every store.
"""

from __future__ import annotations

import sys

from aipowertools.sessions import Session


def main() -> None:
    ns, sid, writer = sys.argv[1:4]
    targets = []
    for arg in sys.argv[4:]:
        url, _, count = arg.rpartition("=")
        targets.append((Session(sid, store=url, namespace=ns), int(count)))
    print("ready", flush=True)
    sys.stdin.readline()  # "go": all writers append at the same time
    for i in range(max(count for _, count in targets)):
        for session, count in targets:
            if i < count:
                session.append("history", {"w": int(writer), "i": i, "pad": "x" * 64})
        print(f"ack {i}", flush=True)


if __name__ == "__main__":
    main()
