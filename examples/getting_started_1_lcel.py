"""Getting started 1/3: the router as the model of an LCEL chain.

Paste the part between the markers into your app; it reads your provider keys from the
environment (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``...). Without a key (and under
``nox -s examples``) it runs against the built-in provider simulator.
``python examples/getting_started_1_lcel.py``
"""

import os
from contextlib import ExitStack

from aipowertools.testing import SimModel, Simulator

with ExitStack() as stack:
    if os.environ.get("AIPOWERTOOLS_EXAMPLE") or not os.environ.get("OPENAI_API_KEY"):
        sim = stack.enter_context(
            Simulator(models=[SimModel("gpt-4o-mini", reply="Paris."), SimModel("gpt-4o")])
        )
        os.environ.update(OPENAI_API_KEY="sk-sim", OPENAI_BASE_URL=sim.base_url("openai"))

    # --- paste from here -------------------------------------------------------------
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate

    from aipowertools.router import LLMRouter
    from aipowertools.router.langchain import RouterChatModel

    llm = RouterChatModel(router=LLMRouter(cloud_providers=["openai"]))
    prompt = ChatPromptTemplate.from_messages([("system", "Answer briefly."), ("human", "{q}")])
    chain = prompt | llm
    message = chain.invoke({"q": "What is the capital of France?"})
    meta = message.response_metadata
    print(f"{message.content}  ({meta['deployment']}, ${meta['cost_usd']:.6f})")
    print((prompt | llm | StrOutputParser()).invoke({"q": "And of Italy?"}))
    # --- to here ---------------------------------------------------------------------
