"""Models, tokens and cost: look models up, count tokens, price a call, classify a failure.

Runs offline against the provider simulator: ``python examples/core_catalog.py``.
"""

from __future__ import annotations

from aipowertools.core import Usage, cost, count_tokens, default_catalog, estimate_cost, litellm
from aipowertools.core.errors import ErrorKind, UnknownModelError, as_provider_error
from aipowertools.testing import Fault, SimModel, Simulator

MESSAGES = [
    {"role": "system", "content": "You answer in one sentence."},
    {"role": "user", "content": "Why does caching prompts save money?"},
]


def main() -> None:
    module = litellm()
    module.suppress_debug_info = True  # type: ignore[attr-defined]  # no banner on handled errors
    catalog = default_catalog()

    # 1. Lookups over the curated models (prices come from litellm's bundled map).
    print("vision + tools under $0.002 per 1k tokens:")
    cheap = {m.id for m in catalog.by_max_cost(0.002)}
    for info in catalog.by_capability("vision", "tools"):
        if info.id in cheap:
            print(f"  {info.id:<14} ${info.price_per_1k:.5f}/1k  quality {info.quality}")
    print("local models (free):", ", ".join(m.id for m in catalog.models() if m.local))
    try:
        catalog.get("gpt-4-o")
    except UnknownModelError as exc:
        print("typo ->", exc.suggestions)

    # 2. Tokens and the worst case reserved before a call.
    tokens = count_tokens(MESSAGES, "gpt-4o-mini")
    print(f"prompt: {tokens.tokens} tokens (estimated={tokens.estimated})")
    print(f"worst case for 200 output tokens: ${estimate_cost(MESSAGES, 'gpt-4o-mini', 200):.6f}")

    # 3. A real call (to the simulator) priced exactly, cached tokens included.
    model = SimModel(
        "gpt-4o-mini", reply="Cached prompt tokens are billed at a discount.", cached_tokens=8
    )
    with Simulator([model]) as sim:
        call = {
            "model": "openai/gpt-4o-mini",
            "api_base": sim.base_url("openai"),
            "api_key": "sk-simulated",
            "messages": MESSAGES,
            "num_retries": 0,
            "max_retries": 0,
        }
        response = litellm().completion(**call)
        usage = Usage.from_any(response)
        print(f"usage: {usage}")
        ours = cost(usage, "gpt-4o-mini")
        theirs = litellm().completion_cost(completion_response=response, model="gpt-4o-mini")
        print(f"cost: ${ours:.8f} (litellm says ${theirs:.8f})")
        assert abs(ours - theirs) < 1e-9

        # 4. A rate-limited call, classified with its retry-after.
        sim.fail_next("gpt-4o-mini", 1, Fault("rate_limit", retry_after=2))
        try:
            litellm().completion(**call)
        except Exception as exc:  # litellm.RateLimitError
            error = as_provider_error(exc)
            print(f"failure: {error.kind.value}, retry after {error.retry_after} s")
            assert error.kind is ErrorKind.RATE_LIMITED


if __name__ == "__main__":
    main()
