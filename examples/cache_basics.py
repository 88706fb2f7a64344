"""The response cache without a framework: exact and semantic hits, scopes, TTL, savings.

Runs against the built-in simulator, on a temporary embedded store: no network, no keys.
``python examples/cache_basics.py``
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import httpx

from aipowertools.cache import Answer, LLMCache, cached
from aipowertools.core import CostTracker
from aipowertools.testing import SimModel, Simulator


def word_embedding(text: str) -> list[float]:
    """A toy embedder (bag of words); use a real one, e.g. OpenAIEmbeddings, in production."""
    vector = [0.0] * 64
    for word in text.lower().replace("?", " ").split():
        vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % 64] += 1.0
    return vector


def main() -> None:
    with (
        Simulator(models=[SimModel("gpt-4o-mini", reply="echo")]) as sim,
        tempfile.TemporaryDirectory() as tmp,
    ):
        # The first answer loads the token counter (litellm): allow it more than 5 s.
        client = httpx.Client(base_url=sim.base_url("openai"), timeout=60)

        def ask(messages: list[dict[str, str]], **params: object) -> Answer:
            body = {"model": "gpt-4o-mini", "messages": messages, **params}
            reply = client.post("/chat/completions", json=body).json()
            usage = reply["usage"]
            return Answer(
                reply["choices"][0]["message"]["content"],
                input_tokens=usage["prompt_tokens"],
                output_tokens=usage["completion_tokens"],
                finish_reason=reply["choices"][0]["finish_reason"],
            )

        tracker = CostTracker(store="memory://")
        cache = LLMCache(
            f"diskcache://{Path(tmp) / 'cache'}", ttl=3600, normalize="whitespace",
            semantic=word_embedding, threshold=0.9, cost_tracker=tracker,
        )  # fmt: skip

        print("1. a miss calls the provider, the same request again is a hit:")
        question = [{"role": "user", "content": "What is the capital of France?"}]
        for spelling in (
            {"max_tokens": 50, "temperature": 0},
            {"temperature": 0.0, "max_completion_tokens": 50},  # same request, other spelling
        ):
            answer = cache.call(
                lambda spelling=spelling: ask(question, **spelling), messages=question,
                model="gpt-4o-mini", **spelling,
            )  # fmt: skip
            print(f"   {answer!r}")
        print(f"   provider calls: {sim.stats().requests}")

        print("2. a semantic hit (marked, and refusable per call):")
        similar = [{"role": "user", "content": "Tell me: what is the capital of France?"}]
        hit = cache.lookup(similar, model="gpt-4o-mini", max_tokens=50, temperature=0)
        assert hit is not None
        print(f"   {hit.kind} (similarity {hit.similarity:.2f}): {hit.value!r}")
        refused = cache.lookup(
            similar, model="gpt-4o-mini", max_tokens=50, temperature=0, semantic=False
        )
        print(f"   with semantic=False: {refused}")

        print("3. what the hits saved (stats, and the ledger next to spending):")
        stats = cache.stats()
        print(
            f"   hits {stats.hits}, misses {stats.misses}, hit rate {stats.hit_rate:.0%}, "
            f"tokens saved {stats.tokens_saved}, USD saved {stats.saved_usd:.8f}"
        )
        print(f"   ledger: spent ${tracker.total_usd():.6f}, saved ${tracker.saved_usd():.8f}")

        print("4. invalidate by model, user or tag; clear:")
        print(f"   invalidated {cache.invalidate('model:gpt-4o-*')} entries")

        print("5. @cached on a plain function:")

        @cached(cache, ttl=600)
        def summarize(text: str) -> str:
            return ask([{"role": "user", "content": text}]).value  # type: ignore[no-any-return]

        before = sim.stats().requests
        summarize("Summarize: caches save money.")
        summarize("Summarize: caches save money.")
        print(f"   two calls, {sim.stats().requests - before} provider request")
        cache.close()
        client.close()


if __name__ == "__main__":
    main()
