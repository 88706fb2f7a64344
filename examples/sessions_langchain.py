"""LangChain: chat history that survives restarts, with RunnableWithMessageHistory and plain LCEL.

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
from langchain_core.runnables.history import RunnableWithMessageHistory
from langchain_openai import ChatOpenAI

from aipowertools.sessions.langchain import SessionChatMessageHistory
from aipowertools.testing import SimModel, Simulator

warnings.filterwarnings("ignore", message=".*RunnableWithMessageHistory.*")


def reply(request: Any) -> str:
    """The simulated model says how many user messages it was sent."""
    users = [m for m in request.messages if m.get("role") == "user"]
    return f"I can see {len(users)} message(s) from you; the last was {users[-1]['content']!r}."


def main() -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        Simulator(models=[SimModel("gpt-4o-mini", reply=reply)]) as sim,
    ):
        store = (
            f"diskcache://{Path(tmp) / 'sessions'}"  # or redis://..., postgresql://..., s3://...
        )
        model = ChatOpenAI(model="gpt-4o-mini", base_url=sim.base_url("openai"), api_key="sk-sim")
        prompt = ChatPromptTemplate.from_messages(
            [("system", "Be brief."), MessagesPlaceholder("history"), ("human", "{question}")]
        )

        print("1. RunnableWithMessageHistory:")
        chain = RunnableWithMessageHistory(
            prompt | model,
            lambda session_id: SessionChatMessageHistory(session_id, store=store),
            input_messages_key="question",
            history_messages_key="history",
        )
        config: Any = {"configurable": {"session_id": "user-42"}}
        for question in ("My name is Ada.", "What is my name?"):
            print(
                f"  > {question}\n  < {chain.invoke({'question': question}, config=config).content}"
            )

        print("2. a new history object (think: a restarted process) sees the conversation:")
        history = SessionChatMessageHistory("user-42", store=store)
        for message in history.messages:
            print(f"  {message.type}: {message.content}")

        print("3. plain LCEL: read the history, call the model, add both messages in one write:")
        question = HumanMessage("And what did I ask first?")
        answer = model.invoke([*history.messages, question])
        history.add_messages([question, answer])
        print(f"  < {answer.content}")
        print(
            f"  the history now has {len(history.messages)} messages; last 2: "
            f"{[m.type for m in history.last(2)]}"
        )


if __name__ == "__main__":
    main()
