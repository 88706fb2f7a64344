"""One chat turn per framework, in a fresh process (run as a script by test_persistence.py).

Usage: python _turn.py STORE_URL OPENAI_BASE_URL QUESTION
Prints one line per framework: "<framework>: <reply>".
"""

from __future__ import annotations

import sys


def langchain_turn(store: str, base_url: str, question: str) -> str:
    from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
    from langchain_core.runnables.history import RunnableWithMessageHistory
    from langchain_openai import ChatOpenAI

    from aipowertools.sessions.langchain import SessionChatMessageHistory

    prompt = ChatPromptTemplate.from_messages(
        [("system", "Be brief."), MessagesPlaceholder("history"), ("human", "{question}")]
    )
    model = ChatOpenAI(model="gpt-4o-mini", base_url=base_url, api_key="sk-sim", max_retries=0)
    chain = RunnableWithMessageHistory(
        prompt | model,
        lambda session_id: SessionChatMessageHistory(session_id, store=store),
        input_messages_key="question",
        history_messages_key="history",
    )
    reply = chain.invoke({"question": question}, config={"configurable": {"session_id": "lc-user"}})
    return str(reply.content)


def llama_turn(store: str, base_url: str, question: str, new_memory: bool) -> str:
    from llama_index.core.chat_engine import SimpleChatEngine
    from llama_index.core.memory import ChatMemoryBuffer, Memory
    from llama_index.llms.openai import OpenAI

    from aipowertools.sessions.llama_index import SessionChatStore, SessionDBChatStore

    llm = OpenAI(model="gpt-4o-mini", api_base=base_url, api_key="sk-sim", max_retries=0)
    if new_memory:
        memory = Memory.from_defaults(session_id="li-memory", chat_store=SessionDBChatStore(store))
    else:
        memory = ChatMemoryBuffer.from_defaults(
            chat_store=SessionChatStore(store), chat_store_key="li-buffer", token_limit=3000
        )
    engine = SimpleChatEngine.from_defaults(llm=llm, memory=memory)
    return str(engine.chat(question).response)


def main() -> None:
    store, base_url, question = sys.argv[1:4]
    print("langchain:", langchain_turn(store, base_url, question), flush=True)
    print("buffer:", llama_turn(store, base_url, question, new_memory=False), flush=True)
    print("memory:", llama_turn(store, base_url, question, new_memory=True), flush=True)


if __name__ == "__main__":
    main()
