"""LangChain: a chat model behind a shared rate limiter, retry, circuit breaker and a fallback.

Runs against the local provider simulator (no network, no keys):

    python examples/resilience_langchain.py
"""

from __future__ import annotations

from langchain_core.callbacks import BaseCallbackHandler
from langchain_openai import ChatOpenAI

from aipowertools.resilience import CircuitBreaker, RateLimiter, RetryPolicy
from aipowertools.resilience.langchain import ChatRateLimiter, with_resilience
from aipowertools.testing import Fault, SimModel, Simulator


class RetryPrinter(BaseCallbackHandler):
    """Print LangChain's on_retry events."""

    def on_retry(self, retry_state, **kwargs):  # type: ignore[no-untyped-def]
        """Called by LangChain before each retry."""
        exc = retry_state.outcome.exception()
        print(f"  on_retry: attempt {retry_state.attempt_number} failed with {type(exc).__name__}")


def main() -> None:
    models = [SimModel("gpt-4o", reply="Paris."), SimModel("gpt-4o-mini", reply="Paris (mini).")]
    with Simulator(models=models) as sim:
        base = sim.base_url("openai")
        limiter = RateLimiter(requests_per_minute=600, tokens_per_minute=200_000)
        breaker = CircuitBreaker("gpt-4o", failure_threshold=3, recovery_timeout=30)
        primary = ChatOpenAI(model="gpt-4o", base_url=base, api_key="sk-sim", max_retries=0)
        backup = ChatOpenAI(
            model="gpt-4o-mini",
            base_url=base,
            api_key="sk-sim",
            rate_limiter=ChatRateLimiter(limiter, key="openai/gpt-4o-mini"),
        )
        chain = with_resilience(
            primary,
            rate_limiter=limiter,
            limiter_key="openai/gpt-4o",
            tokens=1_000,
            retry=RetryPolicy(max_attempts=3, base_delay=0.05),
            circuit_breaker=breaker,
            fallbacks=[backup],
        )

        print("1. two 429s with Retry-After, then success:")
        sim.fail_next("gpt-4o", 2, Fault("rate_limit", retry_after=0.2))
        reply = chain.invoke("Capital of France?", {"callbacks": [RetryPrinter()]})
        print(f"  answer: {reply.content}")

        print("2. the primary keeps failing: the breaker opens, the fallback answers:")
        sim.fail_next("gpt-4o", 9, "unavailable")
        for _ in range(2):
            print(f"  answer: {chain.invoke('Capital of France?').content}")
        print(f"  breaker state: {breaker.state.value}")

        print("3. streaming (retries happen before the first chunk only):")
        breaker.reset()
        sim.clear_faults("gpt-4o")
        print("  " + "".join(str(chunk.content) for chunk in chain.stream("Capital?")))

        stats = limiter.get_stats()
        print(f"limiter: admitted={stats.admitted} utilisation={stats.utilisation:.3f}")


if __name__ == "__main__":
    main()
