"""``aipowertools demo``: a short routed LangChain conversation with cost, sessions and logs.

Real providers are used when their API keys are set, a local Ollama or llama.cpp server when
one answers; otherwise (or with ``--simulator``) the built-in simulator is started, and the
first line says which. The demo's stores (ledger, logs, sessions) go to a ``demo`` folder in
the data directory, emptied when the demo starts and kept afterwards, so that
``aipowertools dashboard --home <that folder>`` shows what it recorded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from aipowertools.router import Deployment

_KEYS = {
    "OPENAI_API_KEY": "openai",
    "ANTHROPIC_API_KEY": "anthropic",
    "GEMINI_API_KEY": "gemini",
    "MISTRAL_API_KEY": "mistral",
}
_OLLAMA_URL = os.environ.get("OLLAMA_HOST", "http://localhost:11434")
_LLAMACPP_URL = os.environ.get("LLAMACPP_URL", "http://localhost:8080")

TURNS = (
    "Hi! Suggest a name for a grey cat.",
    "Write a Python function that merges two sorted lists, then analyze its time complexity "
    "step by step and compare it with sorting the concatenation. Why is it better?",
    "Summarize our conversation in one sentence.",
)


def _sim_reply(request: Any) -> str:
    text = str(request.messages[-1].get("content", "")).lower()
    if "merge" in text:
        return (
            "def merge(a, b):\n    out, i, j = [], 0, 0\n    while i < len(a) and j < len(b):\n"
            "        if a[i] <= b[j]: out.append(a[i]); i += 1\n"
            "        else: out.append(b[j]); j += 1\n    return out + a[i:] + b[j:]\n"
            "Each element is looked at once: O(n + m), versus O((n + m) log(n + m)) to sort."
        )
    if "summar" in text:
        return "We named a cat Smokey and wrote a linear-time merge of two sorted lists."
    return "How about Smokey? It suits a grey cat."


def _local_servers() -> list[Deployment]:
    """Deployments for a local Ollama / llama.cpp server that answers right now."""
    import httpx

    from aipowertools.router import Deployment

    found: list[Deployment] = []
    try:
        tags = httpx.get(f"{_OLLAMA_URL}/api/tags", timeout=0.5).json()
        names = [m["name"] for m in tags.get("models", [])][:1]
        found += [
            Deployment(f"ollama_chat/{n}", api_base=_OLLAMA_URL, local=True,
                       catalog_model=f"ollama/{n}", input_cost_per_token=0.0,
                       output_cost_per_token=0.0)
            for n in names
        ]  # fmt: skip
    except (httpx.HTTPError, ValueError, KeyError):
        pass
    try:
        if httpx.get(f"{_LLAMACPP_URL}/health", timeout=0.5).status_code == 200:
            found.append(
                Deployment("openai/local", name="llamacpp", api_base=f"{_LLAMACPP_URL}/v1",
                           api_key="sk-no-key-required", local=True, input_cost_per_token=0.0,
                           output_cost_per_token=0.0, quality=0.55)
            )  # fmt: skip
    except httpx.HTTPError:
        pass
    return found


@contextmanager
def _deployments(stack: ExitStack, force_simulator: bool) -> Iterator[tuple[str, list[Any]]]:
    from aipowertools.router import PROVIDER_MODELS, Deployment

    providers = [] if force_simulator else [p for key, p in _KEYS.items() if os.environ.get(key)]
    local = [] if force_simulator else _local_servers()
    if providers or local:
        names = ", ".join(providers + [d.name for d in local])
        deployments: list[Any] = [Deployment(m) for p in providers for m in PROVIDER_MODELS[p]]
        yield f"Using your own providers: {names} (real calls, real cost).", deployments + local
        return
    from aipowertools.testing import SimModel, Simulator

    sim = stack.enter_context(
        Simulator(
            models=[
                SimModel("gpt-4o-mini", reply=_sim_reply, ttft_ms=40),
                SimModel("gpt-4o", reply=_sim_reply, ttft_ms=90),
                SimModel("llama3", reply=_sim_reply, ttft_ms=25),
            ]
        )
    )
    key = "sk-simulator"
    why = (
        "--simulator given"
        if force_simulator
        else "No provider API keys and no local Ollama / llama.cpp server found"
    )
    yield (
        f"{why}: this demo runs against the built-in simulator (no network calls, "
        "simulated prices).",
        [
            Deployment("openai/gpt-4o-mini", name="gpt-4o-mini", local=False, api_key=key,
                       api_base=sim.base_url("openai", "gpt-4o-mini")),
            Deployment("openai/gpt-4o", name="gpt-4o", local=False, api_key=key,
                       api_base=sim.base_url("openai", "gpt-4o")),
            Deployment("openai/llama3", name="local/llama3",
                       api_base=sim.base_url("llamacpp", "llama3"), api_key=key, local=True,
                       catalog_model="ollama/llama3", input_cost_per_token=0.0,
                       output_cost_per_token=0.0),
        ],
    )  # fmt: skip


def demo_home(home: str | None = None) -> str:
    """The demo's data directory (``demo`` under the data directory by default), emptied."""
    from aipowertools.core.stores import data_dir

    path = os.path.abspath(os.path.expanduser(home)) if home else str(data_dir() / "demo")
    for name in ("ledger.db", "ledger.db-wal", "ledger.db-shm", "events.db", "events.db-wal",
                 "events.db-shm"):  # fmt: skip
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(path, name))
    shutil.rmtree(os.path.join(path, "sessions"), ignore_errors=True)
    os.makedirs(path, exist_ok=True)
    return path


def run_demo(console: Console, *, force_simulator: bool = False, home: str | None = None) -> int:
    """Run the demo conversation, printing per turn who answered, why and what it cost."""
    start = time.perf_counter()
    with ExitStack() as stack:
        home = demo_home(home)
        old_home = os.environ.get("AIPOWERTOOLS_HOME")
        os.environ["AIPOWERTOOLS_HOME"] = home
        stack.callback(_restore, "AIPOWERTOOLS_HOME", old_home)
        banner, deployments = stack.enter_context(_deployments(stack, force_simulator))
        console.print(banner, markup=False)
        return _converse(console, home, deployments, start)
    return 1  # pragma: no cover - the with block always returns


def _restore(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


class _ListHistory:
    """The two methods of a chat history the demo uses, on a plain list."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    def add_messages(self, messages: list[Any]) -> None:
        self.messages.extend(messages)


def _session_history(home: str) -> tuple[Any, str]:
    try:
        from aipowertools.sessions.langchain import SessionChatMessageHistory
    except ImportError:
        # langchain-core's InMemoryChatMessageHistory is deprecated; a list does the same here.
        return _ListHistory(), "in-memory history (aipowertools-sessions absent)"
    return (
        SessionChatMessageHistory("demo-conversation", store=f"diskcache:///{home}/sessions"),
        "aipowertools.sessions (embedded diskcache)",
    )


def _converse(console: Console, home: str, deployments: list[Any], start: float) -> int:
    from langchain_core.messages import HumanMessage, SystemMessage

    from aipowertools.core import CostTracker
    from aipowertools.router import LLMRouter
    from aipowertools.router.langchain import RouterChatModel

    tracker = CostTracker(store=f"sqlite:///{home}/ledger.db", budget_usd=5.0)
    callbacks: list[Any] = []
    log_note = "no structured logger (aipowertools-callbacks absent)"
    logger: Any = None
    try:
        from aipowertools.callbacks import StructuredLogger
        from aipowertools.callbacks.langchain import CostCallbackHandler, LoggingCallbackHandler

        logger = StructuredLogger("aipowertools.demo", store=f"sqlite:///{home}/events.db")
        callbacks = [CostCallbackHandler(tracker), LoggingCallbackHandler(logger, spans=False)]
        log_note = f"structured logs in {home}/events.db"
    except ImportError:
        pass
    history, session_note = _session_history(home)
    llm = RouterChatModel(router=LLMRouter(deployments, cost_tracker=tracker, monitor=False))
    console.print(f"Session store: {session_note}; cost ledger: {home}/ledger.db; {log_note}.")
    console.print(
        "Routing between: " + ", ".join(d.name for d in llm.router.deployments), markup=False
    )
    console.print(
        "(complexity: 0-1 estimate of how hard the prompt is; quality floor: the lowest model "
        "quality score (0-1) the router accepts for it; confidence: 0-1, how clear-cut the "
        "choice was.)\n",
        markup=False,
    )
    system = SystemMessage("You are a concise assistant.")
    for turn, question in enumerate(TURNS, 1):
        history.add_messages([HumanMessage(question)])
        reply = llm.invoke([system, *history.messages], config={"callbacks": callbacks})
        history.add_messages([reply])
        meta = reply.response_metadata
        decision = meta["decision"]
        total = tracker.total_usd()
        console.print(f"Turn {turn} you: {question}", style="bold", markup=False)
        console.print(f"  assistant: {str(reply.content).strip()}", markup=False)
        why = decision["explanation"].split(" (strategy")[0].split(": ", 1)[-1]
        console.print(
            f"  -> {meta['deployment']} | why: {why} (complexity {decision['complexity']:.2f}, "
            f"confidence {decision['confidence']:.2f})",
            markup=False,
        )
        console.print(
            f"  -> cost ${meta['cost_usd']:.6f} | latency {meta['latency_ms']:.0f} ms | "
            f"running total ${total:.6f}\n",
            markup=False,
        )
    records = tracker.records()
    console.print(
        f"{len(records)} ledger records (router and cost handler share one per call), "
        f"total ${tracker.total_usd():.6f}, {len(history.messages)} messages in the session; "
        f"done in {time.perf_counter() - start:.1f} s.",
        markup=False,
    )
    if logger is not None:
        logger.flush()
        logger.close()
    tracker.close()
    console.print(f"\nThe demo's stores are kept in {home}. See what it recorded:", markup=False)
    console.print(
        f"  aipowertools dashboard --home {home}   (then open http://127.0.0.1:8470; "
        "from the README's nox command: nox -s dashboard)",
        markup=False,
    )
    console.print(f"  aipowertools costs --home {home}", markup=False)
    console.print(f"  aipowertools logs --home {home}", markup=False)
    return 0
