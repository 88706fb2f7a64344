"""A writer process for the concurrency and crash tests (run as a script, not collected).

Usage: python _writer.py STORE_URL NAMESPACE SESSION_ID WRITER_ID COUNT [DELAY]
Appends COUNT items {"w": WRITER_ID, "i": i} and prints "ack i" after each acknowledged one.
"""

from __future__ import annotations

import sys
import time

from aipowertools.sessions import Session


def main() -> None:
    url, ns, sid, writer, count = sys.argv[1:6]
    delay = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    session = Session(sid, store=url, namespace=ns)
    print("ready", flush=True)
    for i in range(int(count)):
        session.append("history", {"w": int(writer), "i": i, "pad": "x" * 64})
        print(f"ack {i}", flush=True)
        if delay:
            time.sleep(delay)


if __name__ == "__main__":
    main()
