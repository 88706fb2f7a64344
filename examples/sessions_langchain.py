"""LangChain: conversations that survive restarts, the LangChain 1.x way (LangGraph) and in LCEL.

1. LangGraph persistence: a chat graph compiled with our ``CheckpointSaver`` (what LangChain
   1.x recommends for memory; ``create_agent`` takes the same ``checkpointer=``).
2. Plain LCEL with ``SessionChatMessageHistory``: read the history, call the model, add both.
3. The legacy ``RunnableWithMessageHistory``: deprecated since langchain-core 1.3.3 and to be
   removed in 2.0. It still works with ``SessionChatMessageHistory``; the deprecation warning
   is caught and shown here, not silenced.

Runs against the local provider simulator (no network, no keys):

    python examples/sessions_langchain.py
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_openai import ChatOpenAI
from langgraph.graph import START, MessagesState, StateGraph

from aipowertools.sessions.langchain import SessionChatMessageHistory
from aipowertools.sessions.langgraph import CheckpointSaver
from aipowertools.testing import SimModel, Simulator


def reply(request: Any) -> str:
    """The simulated model says how many user messages it was sent."""
    users = [m for m in request.messages if m.get("role") == "user"]
    return f"I can see {len(users)} message(s) from you; the last was {users[-1]['content']!r}."


def main() -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        Simulator(models=[SimModel("gpt-4o-mini", reply=reply)]) as sim,
    ):
        store = f"diskcache://{Path(tmp) / 'state'}"  # or redis://..., postgresql://...
        model = ChatOpenAI(model="gpt-4o-mini", base_url=sim.base_url("openai"), api_key="sk-sim")

        print("1. LangGraph: a chat graph with our checkpointer, one thread per conversation:")
        builder = StateGraph(MessagesState)
        builder.add_node("chat", lambda state: {"messages": [model.invoke(state["messages"])]})
        builder.add_edge(START, "chat")
        config: Any = {"configurable": {"thread_id": "user-42"}}
        for question in ("My name is Ada.", "What is my name?"):
            graph = builder.compile(checkpointer=CheckpointSaver(store))  # e.g. a new process
            out = graph.invoke({"messages": [HumanMessage(question)]}, config)
            print(f"  > {question}\n  < {out['messages'][-1].content}")

        print("2. plain LCEL: read the history, call the model, add both messages in one write:")
        history = SessionChatMessageHistory("user-7", store=store)
        for text in ("My name is Grace.", "And what did I ask first?"):
            question = HumanMessage(text)
            answer = model.invoke([*history.messages, question])
            history.add_messages([question, answer])
            print(f"  > {text}\n  < {answer.content}")
        print(f"  the history has {len(history.messages)} messages")

        print("3. legacy: RunnableWithMessageHistory (deprecated; prefer 1 or 2):")
        from langchain_core.runnables.history import RunnableWithMessageHistory

        prompt = ChatPromptTemplate.from_messages(
            [("system", "Be brief."), MessagesPlaceholder("history"), ("human", "{question}")]
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            chain = RunnableWithMessageHistory(
                prompt | model,
                lambda session_id: SessionChatMessageHistory(session_id, store=store),
                input_messages_key="question",
                history_messages_key="history",
            )
        for w in caught:
            print(f"  {w.category.__name__}: {w.message}")
        legacy: Any = {"configurable": {"session_id": "user-99"}}
        for question in ("My name is Alan.", "What is my name?"):
            answer = chain.invoke({"question": question}, config=legacy)
            print(f"  > {question}\n  < {answer.content}")


if __name__ == "__main__":
    main()
