"""An LCEL chain (prompt | RouterChatModel | parser) that routes each call by cost and quality.

Runs against the built-in simulator: no network, no keys. ``python examples/router_lcel_chain.py``
"""

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from aipowertools.router import Deployment, LLMRouter
from aipowertools.router.langchain import RouterChatModel
from aipowertools.testing import SimModel, Simulator

with Simulator(
    models=[SimModel("gpt-4o-mini", reply="echo"), SimModel("gpt-4o", reply="echo")]
) as sim:
    router = LLMRouter(
        [
            Deployment(
                "openai/gpt-4o-mini",
                name="mini",
                api_key="sk-sim",
                local=False,
                api_base=sim.base_url("openai", "gpt-4o-mini"),
            ),
            Deployment(
                "openai/gpt-4o",
                name="big",
                api_key="sk-sim",
                local=False,
                api_base=sim.base_url("openai", "gpt-4o"),
            ),
        ],
        monitor=False,
    )
    llm = RouterChatModel(router=router)
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Answer briefly."), ("human", "{question}")]
    )
    chain = prompt | llm
    for question in (
        "What is the capital of France?",
        "Design a fault-tolerant job queue, analyze the trade-offs step by step and prove "
        "that no job is lost when a worker dies. Why is at-least-once delivery needed?",
    ):
        message = chain.invoke({"question": question})
        meta = message.response_metadata
        print(f"Q: {question[:60]}...")
        print(
            f"   -> {meta['deployment']} (complexity {meta['decision']['complexity']:.2f}), "
            f"${meta['cost_usd']:.6f}, {message.usage_metadata['total_tokens']} tokens"
        )
    text = (prompt | llm | StrOutputParser()).invoke({"question": "Say hi"})
    print(f"with a parser: {text!r}")
