"""LlamaIndex: ChatMemoryBuffer and the newer Memory on a session store that survives restarts.

Runs against the local provider simulator (no network, no keys):

    python examples/sessions_llama_index.py
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from llama_index.core.chat_engine import SimpleChatEngine
from llama_index.core.memory import ChatMemoryBuffer, Memory
from llama_index.llms.openai import OpenAI

from aipowertools.sessions.llama_index import SessionChatStore, SessionDBChatStore
from aipowertools.testing import SimModel, Simulator


def reply(request: Any) -> str:
    """The simulated model says how many user messages it was sent."""
    users = [m for m in request.messages if m.get("role") == "user"]
    return f"I can see {len(users)} message(s) from you."


def main() -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        Simulator(models=[SimModel("gpt-4o-mini", reply=reply)]) as sim,
    ):
        store = (
            f"diskcache://{Path(tmp) / 'sessions'}"  # or redis://..., postgresql://..., s3://...
        )
        llm = OpenAI(model="gpt-4o-mini", api_base=sim.base_url("openai"), api_key="sk-sim")

        print("1. ChatMemoryBuffer on SessionChatStore:")
        for turn in ("Hello!", "Do you remember me?"):
            memory = ChatMemoryBuffer.from_defaults(  # rebuilt each turn, as after a restart
                chat_store=SessionChatStore(store), chat_store_key="user-42", token_limit=3000
            )
            engine = SimpleChatEngine.from_defaults(llm=llm, memory=memory)
            print(f"  > {turn}\n  < {engine.chat(turn).response}")
        print(f"  stored: {len(SessionChatStore(store).get_messages('user-42'))} messages")

        print("2. Memory (with archiving) on SessionDBChatStore:")
        db_store = SessionDBChatStore(store)
        memory = Memory.from_defaults(session_id="user-7", chat_store=db_store, token_limit=80)
        engine = SimpleChatEngine.from_defaults(llm=llm, memory=memory)
        for turn in ("one " * 10, "two " * 10, "three " * 10):
            engine.chat(turn)
        active = asyncio.run(db_store.count_messages("user-7"))
        everything = asyncio.run(db_store.count_messages("user-7", status=None))
        print(f"  {everything} messages kept, {active} active, {everything - active} archived")


if __name__ == "__main__":
    main()
