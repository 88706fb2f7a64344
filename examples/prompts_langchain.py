"""LangChain: optimise the prompt in a chain before the model, and trim a long history.

Runs against the local provider simulator (no network, no keys):

    python examples/prompts_langchain.py
"""

from __future__ import annotations

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI

from aipowertools.prompts import OptimizationReport
from aipowertools.prompts.langchain import optimize_prompt, trim_messages
from aipowertools.testing import SimModel, Simulator

CHUNKS = [
    "Refunds take 14 days to reach the original card. Shipping is free above 80 dollars.",
    "Shipping is free above 80 dollars. The Lyon warehouse ships within two working days.",
    "The Lyon warehouse ships within two working days. Gift cards are never paid out in cash.",
]


def main() -> None:
    reports: list[OptimizationReport] = []
    with Simulator(models=[SimModel("gpt-4o-mini", reply="14 days.")]) as sim:
        llm = ChatOpenAI(
            model="gpt-4o-mini", base_url=sim.base_url(), api_key="sk-sim", max_retries=0
        )
        prompt = ChatPromptTemplate.from_messages(
            [
                ("system", "Answer   from the context   only."),
                ("human", "Context:\n\n{context}\n\n{question}"),
            ]
        )
        chain = prompt | optimize_prompt(model="gpt-4o-mini", on_report=reports.append) | llm
        answer = chain.invoke(
            {"context": "\n\n".join(CHUNKS), "question": "How long do refunds take?"}
        )
        report = reports[0]
        print(answer.content, f"({report.tokens_before} -> {report.tokens_after} prompt tokens)")
        for change in report.changes:
            print(f"  {change.kind} x{change.count}: {change.why}")

    history = [
        SystemMessage("You are terse."),
        HumanMessage("I am Ada.", additional_kwargs={"pinned": True}),
    ]
    for i in range(200):
        history += [HumanMessage(f"question {i} " + "x " * 50), AIMessage(f"answer {i}")]
    history.append(HumanMessage("What is my name?"))
    kept = trim_messages(history, model="ollama/llama3")
    print(
        f"trim_messages kept {len(kept)} of {len(history)}: starts {[m.content for m in kept[:2]]}"
    )


if __name__ == "__main__":
    main()
