"""Talk to the provider simulator with litellm and the OpenAI SDK, then break it on purpose.

Runs offline in a few seconds: python examples/testing_simulator.py
"""

from __future__ import annotations

import os
import warnings

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import openai

from aipowertools.testing import Fault, SimModel, Simulator, ToolCall

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def main() -> None:
    warnings.filterwarnings("ignore")  # litellm's own import-time warnings
    import litellm

    models = [
        SimModel("gpt-4o-mini", reply="Paris.", rpm=3, rate_window_s=10),
        SimModel("claude-3-5-haiku-latest", reply=ToolCall("get_weather", {"city": "Paris"})),
    ]
    with Simulator(models=models, seed=42) as sim:
        # 1. litellm through the OpenAI wire format: usage equals litellm's own token counter.
        response = litellm.completion(
            model="openai/gpt-4o-mini",
            api_base=sim.base_url("openai"),
            api_key="sk-sim",
            messages=MESSAGES,
        )
        counted = litellm.token_counter(model="gpt-4o-mini", messages=MESSAGES)
        print(
            f"reply: {response.choices[0].message.content!r}; prompt tokens "
            f"{response.usage.prompt_tokens} (litellm counts {counted})"
        )

        # 2. The Anthropic wire format, with a tool call.
        response = litellm.completion(
            model="anthropic/claude-3-5-haiku-latest",
            api_base=sim.base_url("anthropic"),
            api_key="sk-sim",
            messages=MESSAGES,
            tools=TOOLS,
            _skip_mcp_handler=True,
        )
        call = response.choices[0].message.tool_calls[0]
        print(f"tool call: {call.function.name}({call.function.arguments})")

        # 3. Faults: the next request gets a 429 with Retry-After.
        client = openai.OpenAI(base_url=sim.base_url("openai"), api_key="sk-sim", max_retries=0)
        sim.fail_next("gpt-4o-mini", 1, Fault("rate_limit", retry_after=2))
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
        except openai.RateLimitError as exc:
            print(f"injected 429, Retry-After: {exc.response.headers['retry-after']}s")

        # 4. The enforced limit, 3 requests per 10 s window: with the call in step 1 (the
        #    injected 429 does not count), the third request here is over it.
        statuses = []
        for _ in range(3):
            try:
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
                statuses.append(200)
            except openai.RateLimitError:
                statuses.append(429)
        print(f"statuses under rpm=3: {statuses}")

        # 5. An outage: connection refused until the model comes back up.
        own = openai.OpenAI(
            base_url=sim.base_url("openai", "claude-3-5-haiku-latest"),
            api_key="sk-sim",
            max_retries=0,
        )
        sim.down("claude-3-5-haiku-latest")
        try:
            own.chat.completions.create(model="claude-3-5-haiku-latest", messages=MESSAGES)  # type: ignore[arg-type]
        except openai.APIConnectionError:
            print("down: connection refused")
        sim.up("claude-3-5-haiku-latest")
        client.close()
        own.close()

        stats = sim.stats()
        print(
            f"the provider saw {stats.requests} requests: {stats.served} served, "
            f"{stats.rate_limited} rate-limited, faults {stats.faults}"
        )


if __name__ == "__main__":
    main()
