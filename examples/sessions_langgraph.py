"""LangGraph persistence on our stores: an agent's threads (checkpointer) and long-term memory.

A ``create_agent`` agent with two tools runs against the local provider simulator (no
network, no keys). ``CheckpointSaver`` keeps each conversation thread; ``Store`` keeps what
the agent learns about a user across threads. Both take a store URL: the embedded store
here, ``redis://...`` or ``postgresql://...`` in production, with the same code.

    python examples/sessions_langgraph.py
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain.tools import ToolRuntime
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from aipowertools.sessions import AESGCMEncryption, Codec
from aipowertools.sessions.langgraph import CheckpointSaver, Store
from aipowertools.testing import SimModel, Simulator, ToolCall


@tool
def save_fact(fact: str, runtime: ToolRuntime) -> str:
    """Remember a fact about the user, for every future conversation."""
    user = runtime.config["configurable"]["user_id"]
    runtime.store.put(("users", user, "facts"), uuid.uuid4().hex, {"fact": fact})  # type: ignore[union-attr]
    return f"saved: {fact}"


@tool
def recall_facts(runtime: ToolRuntime) -> str:
    """Everything remembered about the user."""
    user = runtime.config["configurable"]["user_id"]
    found = runtime.store.search(("users", user, "facts"))  # type: ignore[union-attr]
    return "; ".join(item.value["fact"] for item in found) or "nothing yet"


def model_script(request: Any) -> Any:
    """The simulated model: save what it is told, recall when asked, else count the turns."""
    messages = request.messages
    users = [m["content"] for m in messages if m["role"] == "user"]
    last = users[-1]
    turn = max(i for i, m in enumerate(messages) if m["role"] == "user")
    tool_results = [m["content"] for m in messages[turn:] if m["role"] == "tool"]
    if tool_results:
        return f"Done ({tool_results[-1]})."
    if last.startswith("Remember:"):
        return ToolCall("save_fact", {"fact": last.removeprefix("Remember:").strip()})
    if "know about me" in last:
        return ToolCall("recall_facts", {})
    return f"This thread has {len(users)} message(s) from you; the first was {users[0]!r}."


def main() -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        Simulator(models=[SimModel("gpt-4o-mini", reply=model_script)]) as sim,
    ):
        url = f"diskcache://{Path(tmp) / 'state'}"  # or redis://..., postgresql://...
        codec = Codec(  # optional: zstd and AES-GCM for everything stored
            compression="zstd", encryption=AESGCMEncryption({"k1": AESGCMEncryption.generate_key()})
        )
        model = ChatOpenAI(model="gpt-4o-mini", base_url=sim.base_url("openai"), api_key="sk-sim")

        def agent() -> Any:  # each call is like a new process: fresh objects, same store
            return create_agent(
                model,
                [save_fact, recall_facts],
                checkpointer=CheckpointSaver(url, codec=codec, ttl=30 * 86400),
                store=Store(url, codec=codec),
            )

        def ask(thread: str, text: str) -> None:
            config: Any = {"configurable": {"thread_id": thread, "user_id": "ada"}}
            result = agent().invoke({"messages": [{"role": "user", "content": text}]}, config)
            print(f"  [{thread}] > {text}\n  [{thread}] < {result['messages'][-1].content}")

        print("1. a conversation thread; the checkpointer keeps it between calls:")
        ask("monday", "Remember: I take my tea without sugar.")
        ask("monday", "And what was my first message?")

        print("2. a new thread knows nothing of monday's messages, but the store remembers:")
        ask("tuesday", "What do you know about me?")

        print("3. the saved state, read back by new objects:")
        saver = CheckpointSaver(url, codec=codec)
        monday = {"configurable": {"thread_id": "monday"}}
        state = agent().get_state(monday)
        print(f"  monday has {len(state.values['messages'])} messages")
        print(f"  and {len(list(saver.list(monday)))} checkpoints")
        saver.prune(["monday"], strategy="keep_latest")  # keep only the latest checkpoint
        print(
            f"  after prune: {len(list(saver.list(monday)))} checkpoint(s), same messages: "
            f"{len(agent().get_state(monday).values['messages'])}"
        )
        facts = Store(url, codec=codec).search(("users", "ada", "facts"))
        print(f"  long-term memory of ada: {[f.value['fact'] for f in facts]}")
        saver.delete_thread("tuesday")


if __name__ == "__main__":
    main()
