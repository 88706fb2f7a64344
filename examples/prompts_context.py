"""Plain Python: fit a long chat into a model's window, then lay it out for the prompt cache.

Runs against the local provider simulator (no network, no keys):

    python examples/prompts_context.py
"""

from __future__ import annotations

import openai

from aipowertools.prompts import ContextManager, PromptOptimizer, Summarize
from aipowertools.testing import SimModel, Simulator

SYSTEM = "You are the support assistant of an online shop.\n" + "Be precise and brief. " * 400


def main() -> None:
    manager = ContextManager()
    history = [{"role": "system", "content": SYSTEM}]
    history.append({"role": "user", "content": "My order number is 4711.", "pinned": True})
    for i in range(60):
        history.append({"role": "user", "content": f"Question {i}: " + "details " * 120})
        history.append({"role": "assistant", "content": f"Answer {i}: " + "reply " * 120})
    history.append({"role": "user", "content": "So when does order 4711 arrive?"})

    model = "llamacpp/llama3"  # an 8,192-token window
    print("warnings:", [type(w).__name__ for w in manager.check(history, model)])
    print("room for the prompt:", manager.available_window(model), "tokens")
    pruned = manager.prune(history, model)
    print(f"pruned {len(history)} -> {len(pruned.messages)} messages, {pruned.tokens} tokens")
    print("always kept:", pruned.kept)
    summarized = manager.prune(
        history, model, policy=Summarize(lambda dropped: f"{len(dropped)} earlier turns on 4711")
    )
    print("summary:", summarized.summary)

    optimizer = PromptOptimizer()
    with Simulator(models=[SimModel("gpt-4.1", reply="Tomorrow.")]) as sim:
        client = openai.OpenAI(base_url=sim.base_url(), api_key="sk-sim", max_retries=0)
        for question in ("Where is order 4711?", "And order 4712?"):
            messages = [
                {"role": "system", "content": "Current time: 2026-12-04T10:00Z\n" + SYSTEM},
                {"role": "user", "content": question},
            ]
            done = optimizer.optimize_for_model(messages, "gpt-4.1")
            reply = client.chat.completions.create(model="gpt-4.1", messages=done.prompt)
            details = reply.usage.prompt_tokens_details if reply.usage else None
            cached = details.cached_tokens if details else 0
            print(f"{question!r}: {done.report.notes}; cached prompt tokens: {cached}")
        client.close()


if __name__ == "__main__":
    main()
