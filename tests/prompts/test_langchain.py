"""LangChain: optimize_prompt in a chain, and trim_messages agreeing with ContextManager.prune."""

from __future__ import annotations

import random
from typing import Any

import pytest
from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.prompts import ChatPromptTemplate

from aipowertools.core.errors import ConfigurationError
from aipowertools.prompts import ContextManager, ContextOverflowError, OptimizationReport
from aipowertools.prompts.langchain import optimize_prompt, to_openai, trim_messages


def history(seed: int) -> list[Any]:
    rng = random.Random(seed)
    out: list[Any] = [SystemMessage("You are terse.")]
    for i in range(rng.randint(5, 40)):
        roll = rng.random()
        text = f"turn {i} " + "lorem ipsum " * rng.randint(1, 300)
        if roll < 0.15:
            out.append(AIMessage("", tool_calls=[{"id": f"c{i}", "name": "f", "args": {}}]))
            out.append(ToolMessage(text, tool_call_id=f"c{i}"))
        elif roll < 0.2:
            out.append(HumanMessage(text, additional_kwargs={"pinned": True}))
        else:
            out.append(HumanMessage(text) if roll < 0.6 else AIMessage(text))
    out.append(HumanMessage("last question"))
    return out


@pytest.mark.parametrize("seed", range(30))
def test_trim_messages_agrees_with_prune(seed: int) -> None:
    manager = ContextManager()
    messages = history(seed)
    try:
        expected = manager.prune(to_openai(messages), "ollama/codellama")
    except ContextOverflowError:
        with pytest.raises(ContextOverflowError):
            trim_messages(messages, model="ollama/codellama", manager=manager)
        return
    kept = trim_messages(messages, model="ollama/codellama", manager=manager)
    assert [m for i, m in enumerate(messages) if i not in set(expected.dropped)] == kept
    assert all(any(k is m for m in messages) for k in kept)  # the same objects, untouched
    assert kept[-1].content == "last question"
    assert to_openai(kept)
    assert expected.messages == [
        {k: v for k, v in m.items() if k != "pinned"} for m in to_openai(kept)
    ]


def test_trim_messages_as_a_runnable_after_a_template() -> None:
    template = ChatPromptTemplate.from_messages(
        [("system", "rules"), ("placeholder", "{history}"), ("human", "{q}")]
    )
    trimmer = trim_messages(model="gpt-4o-mini", budget=60)
    chain = template | trimmer
    out = chain.invoke(
        {"history": [HumanMessage("old " * 200), AIMessage("old answer")], "q": "new?"}
    )
    assert [m.content for m in out] == ["rules", "old answer", "new?"]
    assert trim_messages("just text", model="gpt-4o-mini")[0].content == "just text"
    with pytest.raises(ConfigurationError, match="expected messages"):
        trim_messages(42, model="gpt-4o-mini")


def test_optimize_prompt_in_a_chain_reports_and_keeps_pins() -> None:
    reports: list[OptimizationReport] = []
    llm = FakeListChatModel(responses=["ok"])
    template = ChatPromptTemplate.from_messages(
        [("system", "Answer   from the   context."), ("human", "{context}\n\n{question}")]
    )
    step = optimize_prompt(model="gpt-4o-mini", on_report=reports.append)
    seen: list[Any] = []

    def capture(messages: Any) -> Any:
        seen.append(messages)
        return messages

    chain = template | step | capture | llm
    context = "Refunds take 14 days to reach the card.  " * 3
    assert chain.invoke({"context": context, "question": "How long?"}).content == "ok"
    assert seen[0][0].content == "Answer from the context."
    assert seen[0][1].content.count("Refunds take 14 days") == 1
    assert reports[0].tokens_after < reports[0].tokens_before
    pinned = HumanMessage("keep   this", additional_kwargs={"pinned": True})
    out = step.invoke([pinned, HumanMessage("a  b")])
    assert out[0].content == "keep   this"
    assert out[0].additional_kwargs == {"pinned": True}
    assert step.invoke("a  b") == "a b"
    assert step.invoke(HumanMessage("x  y"))[0].content == "x y"


def test_optimize_prompt_modes() -> None:
    messages = [SystemMessage("Today is 2025-01-02\n" + "Rule. " * 300), HumanMessage("q")]
    model_step = optimize_prompt(model="claude-sonnet", mode="model")
    out = model_step.invoke(messages)
    assert out[0].content[0]["cache_control"] == {"type": "ephemeral"}
    quality = optimize_prompt(model="ollama/codellama", mode="quality", max_output=100)
    long = [HumanMessage(f"old {i} " + "word " * 400) for i in range(20)] + [HumanMessage("q")]
    assert len(quality.invoke(long)) < len(long)
    lossy = optimize_prompt(model="gpt-4o-mini", target_tokens=20)
    assert isinstance(lossy.invoke("One sentence here. " * 20), str)
    with pytest.raises(ConfigurationError, match="mode"):
        optimize_prompt(model="gpt-4o-mini", mode="fast")  # type: ignore[arg-type]
