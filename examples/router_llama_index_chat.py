"""``RouterLLM`` as ``Settings.llm`` in a LlamaIndex chat engine and a query engine.

``python examples/router_llama_index_chat.py`` (simulator; no network, no keys)
"""

from llama_index.core import Document, Settings, SummaryIndex
from llama_index.core.chat_engine import SimpleChatEngine
from llama_index.core.memory import ChatMemoryBuffer

from aipowertools.router import Deployment, LLMRouter
from aipowertools.router.llama_index import RouterLLM
from aipowertools.testing import SimModel, Simulator

with Simulator(
    models=[SimModel("gpt-4o-mini", reply="echo"), SimModel("llama3", reply="echo")]
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
                "ollama_chat/llama3", name="local-llama3", api_base=sim.base_url("ollama", "llama3")
            ),
        ],
        monitor=False,
    )
    Settings.llm = RouterLLM(router=router)
    print(
        f"metadata: window {Settings.llm.metadata.context_window} tokens, "
        f"function calling {Settings.llm.metadata.is_function_calling_model}"
    )
    chat = SimpleChatEngine.from_defaults(memory=ChatMemoryBuffer.from_defaults())
    for text in ("Hello!", "Explain step by step why the sky is blue and compare it with sunsets."):
        response = chat.chat(text)
        print(f"chat: {text[:40]!r} -> {str(response)[:50]!r}")
    index = SummaryIndex.from_documents([Document(text="The router picks a deployment per call.")])
    answer = index.as_query_engine().query("What does the router pick?")
    print(f"query engine answer: {str(answer)[:80]!r}")
    raw = Settings.llm.complete("Which deployment answers this?").raw
    print(f"complete(): answered by {raw['deployment']} for ${raw['cost_usd']:.6f}")
