"""A checkpoint-writing process for the LangGraph durability tests (run as a script).

Usage: python _graph_writer.py PREFIX WRITER_ID COUNT STORE_URL [STORE_URL ...]
Prints "ready", waits for a line on stdin (or its end), then for i in range(COUNT) puts one
checkpoint on its own thread "w<WRITER_ID>" (each the child of the previous) and one on the
shared thread "shared", to every store, and prints "ack i" once all of them acknowledged.
"""

from __future__ import annotations

import sys

from langgraph.checkpoint.conformance.test_utils import (
    generate_checkpoint,
    generate_config,
    generate_metadata,
)

from aipowertools.sessions.langgraph import CheckpointSaver


def main() -> None:
    prefix, writer, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    savers = [CheckpointSaver(url, prefix=prefix) for url in sys.argv[4:]]
    parents: list[dict | None] = [None for _ in savers]
    print("ready", flush=True)
    sys.stdin.readline()
    for i in range(count):
        for k, saver in enumerate(savers):
            config = generate_config(f"w{writer}")
            if parents[k] is not None:
                config["configurable"]["checkpoint_id"] = parents[k]["configurable"][
                    "checkpoint_id"
                ]
            values = {"w": writer, "i": i, "pad": "x" * 200}
            md = generate_metadata(step=i, w=writer)
            cp = generate_checkpoint(channel_values=values, channel_versions={c: 1 for c in values})
            parents[k] = saver.put(config, cp, md, {})
            shared = generate_checkpoint(channel_values={"w": writer, "i": i})
            saver.put(generate_config("shared"), shared, generate_metadata(step=i, w=writer), {})
        print(f"ack {i}", flush=True)


if __name__ == "__main__":
    main()
