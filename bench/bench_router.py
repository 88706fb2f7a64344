"""Router benchmarks: decision time, routed-call CPU against bare litellm and LiteLLM's Router,
import time, and the failover / hedging acceptance figures, all against the simulator.

The simulator runs in its own process, so the CPU figures are the client's alone.
Run: ``python bench/bench_router.py`` (about a minute).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from _harness import Result, percentile, write_results

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

KEY = "sk-sim"
MESSAGES = [{"role": "user", "content": "Say hello in five words."}]

_SERVER = """
import json, sys
from aipowertools.testing import Fault, SimModel, Simulator
spec = json.loads(sys.argv[1])
models = [SimModel(m["name"], reply=m.get("reply", "Hello there, how are you?"),
                   ttft_ms=m.get("ttft_ms", 0.0), fault_rates=m.get("fault_rates", {}))
          for m in spec["models"]]
with Simulator(models=models, seed=spec.get("seed", 0)) as sim:
    for name, n, delay in spec.get("slow", []):
        sim.schedule(name, [Fault("slow_first_token", delay_s=delay) if i % 10 == 5 else None
                            for i in range(n)])
    for name in spec.get("down", []):
        sim.base_url("openai", name)
        sim.down(name)
    urls = {m.name: sim.base_url("openai", m.name) for m in models}
    for flavor in ("anthropic", "ollama"):
        urls.update({f"{m.name}@{flavor}": sim.base_url(flavor, m.name) for m in models})
    print(json.dumps(urls), flush=True)
    sys.stdin.read()
"""


@contextmanager
def simulator(spec: dict[str, Any]) -> Iterator[dict[str, str]]:
    """A simulator in a child process; yields each model's own OpenAI base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVER, json.dumps(spec)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the simulator process did not start")
        yield json.loads(line)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)


def bench_decision() -> Result:
    from aipowertools.router import DecisionEngine, Deployment, RouteRequest, get_strategy

    deployments = [
        Deployment(
            f"openai/m{i}",
            name=f"m{i}",
            input_cost_per_token=1e-7 * (i + 1),
            output_cost_per_token=4e-7 * (i + 1),
            quality=0.3 + 0.012 * i,
            local=i < 5,
            context_window=8_000 + 4_000 * i,
            supports_tools=i % 3 != 0,
            supports_json=True,
        )
        for i in range(50)
    ]
    engine = DecisionEngine(deployments)
    strategy = get_strategy("cost_optimal")
    request = RouteRequest(prompt_tokens=1200, complexity=0.6, needs_tools=True)
    p99s = []
    for _ in range(5):
        samples = []
        for _ in range(4000):
            start = time.perf_counter()
            engine.decide(request, strategy)
            samples.append(time.perf_counter() - start)
        p99s.append(percentile(samples, 99) * 1e3)
    return Result(
        "decision p99, 50 deployments", "ms", statistics.median(p99s), runs=p99s,
        target="<= 0.2 ms",
    )  # fmt: skip


def _cpu_per_call(fn: Callable[[], Awaitable[Any]], n: int) -> float:
    async def run() -> float:
        for _ in range(20):  # warm pools and caches
            await fn()
        start = time.process_time()
        for _ in range(n):
            await fn()
        return (time.process_time() - start) / n

    return asyncio.run(run())


def bench_call_cpu() -> list[Result]:
    from aipowertools.core import litellm
    from aipowertools.router import Deployment, LiteLLMTransport, LLMRouter

    lm = litellm()
    lm.suppress_debug_info = True
    spec = {"models": [{"name": "gpt-4o-mini"}, {"name": "gpt-4o"}]}
    with simulator(spec) as urls:
        mini, big = urls["gpt-4o-mini"], urls["gpt-4o"]

        async def bare() -> Any:
            return await lm.acompletion(
                model="openai/gpt-4o-mini", api_base=mini, api_key=KEY, messages=MESSAGES,
                max_retries=0,
            )  # fmt: skip

        deployments = [
            Deployment("openai/gpt-4o-mini", api_base=mini, api_key=KEY, local=False),
            Deployment("openai/gpt-4o", api_base=big, api_key=KEY, local=False),
        ]
        routers = {
            "routed": LLMRouter(deployments),  # the default transport
            "via_litellm": LLMRouter(deployments, transport=LiteLLMTransport()),
            "via_litellm_quiet": LLMRouter(
                deployments, transport=LiteLLMTransport(), monitor=False
            ),
        }
        theirs = lm.Router(
            model_list=[
                {"model_name": "chat", "litellm_params": {
                    "model": "openai/gpt-4o-mini", "api_base": mini, "api_key": KEY}},
                {"model_name": "chat", "litellm_params": {
                    "model": "openai/gpt-4o", "api_base": big, "api_key": KEY}},
            ],
            num_retries=0,
        )  # fmt: skip

        def through(router: Any) -> Callable[[], Awaitable[Any]]:
            async def call() -> Any:
                return await router.route(messages=MESSAGES, complexity_score=0.2)

            return call

        async def litellm_router() -> Any:
            return await theirs.acompletion(model="chat", messages=MESSAGES)

        calls = {"bare": bare, "router": litellm_router}
        calls.update({name: through(r) for name, r in routers.items()})
        n = 150
        runs: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(7):  # interleaved, so drift on a shared machine hits all alike
            for name, call in calls.items():
                runs[name].append(_cpu_per_call(call, n) * 1e3)
    med = {k: statistics.median(v) for k, v in runs.items()}
    two = "LLMRouter with 2 openai/ deployments, ProviderMonitor on, no ledger"
    return [
        Result("routed call client CPU", "ms", med["routed"], peer="litellm.Router.acompletion",
               peer_median=med["router"], target="<= 0.5x", runs=runs["routed"],
               peer_runs=runs["router"], notes=f"{two}; default transport (direct aiohttp POST)"),
        Result("routed call client CPU", "ms", med["routed"], peer="bare litellm.acompletion",
               peer_median=med["bare"], target="<= 1.1x", runs=runs["routed"],
               peer_runs=runs["bare"], notes=f"{two}; default transport"),
        Result("routed call client CPU, LiteLLMTransport", "ms", med["via_litellm"],
               peer="bare litellm.acompletion", peer_median=med["bare"], target="<= 1.1x",
               runs=runs["via_litellm"], peer_runs=runs["bare"],
               notes=f"{two}; every call through litellm.acompletion"),
        Result("routed call client CPU, LiteLLMTransport, monitor off", "ms",
               med["via_litellm_quiet"], peer="bare litellm.acompletion", peer_median=med["bare"],
               runs=runs["via_litellm_quiet"], peer_runs=runs["bare"],
               notes="LLMRouter(monitor=False): what the ProviderMonitor feed costs per call"),
        Result("routed call client CPU, LiteLLMTransport", "ms", med["via_litellm"],
               peer="litellm.Router.acompletion", peer_median=med["router"],
               runs=runs["via_litellm"], peer_runs=runs["router"],
               notes="for reference: a litellm-bound call cannot be half of a Router call"),
    ]  # fmt: skip


def _drain(stream: Any) -> Callable[[], Awaitable[Any]]:
    async def call() -> Any:
        async for _ in stream():
            pass

    return call


def bench_wire_cpu(reps: int = 5, n: int = 60) -> list[Result]:
    """Client CPU per call on each wire format, streamed and not: ours vs litellm Router/bare."""
    from aipowertools.core import litellm
    from aipowertools.router import Deployment, LLMRouter

    lm = litellm()
    lm.suppress_debug_info = True
    wires = {
        "openai": ("openai/gpt-4o-mini", "gpt-4o-mini", ""),
        "anthropic": ("anthropic/claude-haiku-4-5", "claude-haiku-4-5", "@anthropic"),
        "ollama": ("ollama_chat/llama3", "llama3", "@ollama"),
    }
    spec = {"models": [{"name": m[1]} for m in wires.values()]}
    out: list[Result] = []
    with simulator(spec) as urls:
        calls: dict[str, Callable[[], Awaitable[Any]]] = {}
        for wire, (model, name, suffix) in wires.items():
            base = urls[name + suffix]
            dep = Deployment(model, api_base=base, api_key=KEY, local=False,
                             input_cost_per_token=1e-7, output_cost_per_token=4e-7)  # fmt: skip
            ours = LLMRouter([dep])
            theirs = lm.Router(
                model_list=[{"model_name": "chat", "litellm_params": {
                    "model": model, "api_base": base, "api_key": KEY}}],
                num_retries=0,
            )  # fmt: skip

            def bind(ours: Any = ours, theirs: Any = theirs, model: str = model,
                     base: str = base) -> dict[str, Callable[[], Awaitable[Any]]]:  # fmt: skip
                async def routed() -> Any:
                    return await ours.route(messages=MESSAGES, complexity_score=0.2)

                async def router() -> Any:
                    return await theirs.acompletion(model="chat", messages=MESSAGES)

                async def bare() -> Any:
                    return await lm.acompletion(model=model, api_base=base, api_key=KEY,
                                                messages=MESSAGES, max_retries=0)  # fmt: skip

                async def routed_stream() -> Any:
                    async for _ in ours.stream(messages=MESSAGES, complexity_score=0.2):
                        pass

                async def router_stream() -> Any:
                    response = await theirs.acompletion(
                        model="chat", messages=MESSAGES, stream=True,
                        stream_options={"include_usage": True},
                    )  # fmt: skip
                    async for _ in response:
                        pass

                async def bare_stream() -> Any:
                    response = await lm.acompletion(
                        model=model, api_base=base, api_key=KEY, messages=MESSAGES,
                        max_retries=0, stream=True, stream_options={"include_usage": True},
                    )  # fmt: skip
                    async for _ in response:
                        pass

                return {"routed": routed, "router": router, "bare": bare,
                        "routed_stream": routed_stream, "router_stream": router_stream,
                        "bare_stream": bare_stream}  # fmt: skip

            for kind, fn in bind().items():
                calls[f"{wire}:{kind}"] = fn
        runs: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(reps):  # interleaved
            for name, call in calls.items():
                runs[name].append(_cpu_per_call(call, n) * 1e3)
    med = {k: statistics.median(v) for k, v in runs.items()}
    for wire in wires:
        for mode, suffix in (("", ""), (", streamed", "_stream")):
            ours = f"{wire}:routed{suffix}"
            for peer, label, target in (("router", "litellm.Router.acompletion", "<= 0.5x"),
                                        ("bare", "bare litellm.acompletion", None)):  # fmt: skip
                key = f"{wire}:{peer}{suffix}"
                out.append(Result(
                    f"routed call client CPU, {wire} wire{mode}", "ms", med[ours],
                    peer=label, peer_median=med[key], target=target, runs=runs[ours],
                    peer_runs=runs[key],
                    notes="LLMRouter, default transport (direct aiohttp POST), one deployment",
                ))  # fmt: skip
    return out


def bench_decision_by_prompt_size() -> list[Result]:
    """LLMRouter.decide() on one user turn of 1k to 400k characters (classifier included)."""
    from aipowertools.router import Deployment, LLMRouter

    deployments = [
        Deployment(
            f"openai/m{i}",
            name=f"m{i}",
            input_cost_per_token=1e-7 * (i + 1),
            output_cost_per_token=4e-7 * (i + 1),
            quality=0.3 + 0.05 * i,
            context_window=1_000_000,
            local=False,
        )
        for i in range(10)
    ]
    router = LLMRouter(deployments, monitor=False)
    out = []
    base = None
    for size in (1_000, 40_000, 400_000):
        text = ("Explain why the design works. " + "lorem ipsum dolor " * (size // 18))[:size]
        messages = [{"role": "user", "content": text}]
        p50s = []
        for _ in range(5):
            samples = []
            for _ in range(200):
                start = time.perf_counter()
                router.decide(messages=messages)
                samples.append(time.perf_counter() - start)
            p50s.append(percentile(samples, 50) * 1e3)
        med = statistics.median(p50s)
        base = med if base is None else base
        out.append(Result(
            f"decide() p50, last user turn of {size:,} characters", "ms", med, runs=p50s,
            peer="same, 1,000 characters" if size > 1_000 else None,
            peer_median=base if size > 1_000 else None,
            target="~1.0x (O(1) in prompt size)" if size > 1_000 else None,
        ))  # fmt: skip
    return out


def bench_import() -> Result:
    code = (
        "import time, sys; t = time.perf_counter(); import aipowertools.router; "
        "print(time.perf_counter() - t, 'litellm' in sys.modules)"
    )
    times = []
    for _ in range(5):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
        if out[1] != "False":
            raise AssertionError("importing aipowertools.router imported litellm")
        times.append(float(out[0]))
    return Result(
        "import aipowertools.router", "s", statistics.median(times), runs=times,
        target="<= 0.5 s", notes="litellm is not imported",
    )  # fmt: skip


def _deployment(url: str, name: str, price: float) -> Any:
    from aipowertools.router import Deployment

    return Deployment(
        f"openai/{name}", name=name, api_base=url, api_key=KEY, local=False,
        input_cost_per_token=price, output_cost_per_token=price * 4,
    )  # fmt: skip


async def _many(router: Any, n: int, concurrency: int) -> list[Any]:
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> Any:
        async with gate:
            try:
                return await router.route(task=f"request {i}", max_tokens=100)
            except Exception as exc:
                return exc

    return await asyncio.gather(*(one(i) for i in range(n)))


def bench_failover() -> Result:
    from aipowertools.router import LLMRouter

    n = 2000
    spec = {
        "seed": 7,
        "models": [
            {"name": "primary", "fault_rates": {"server_error": 0.3}},
            {"name": "secondary"},
            {"name": "tertiary"},
        ],
        "down": ["secondary"],
    }
    with simulator(spec) as urls:
        router = LLMRouter(
            [_deployment(urls["primary"], "primary", 1e-7),
             _deployment(urls["secondary"], "secondary", 2e-7),
             _deployment(urls["tertiary"], "tertiary", 5e-7)],
            strategy="fallback", monitor=False,
        )  # fmt: skip
        results = asyncio.run(_many(router, n, 50))
    ok = sum(1 for r in results if not isinstance(r, BaseException))
    return Result(
        "failover success, primary 30% failing + secondary down", "%", 100.0 * ok / n,
        target=">= 99.9 %", notes=f"{ok}/{n} requests",
    )  # fmt: skip


def bench_hedging() -> list[Result]:
    from aipowertools.router import LLMRouter, Race

    n = 400
    reply = "word " * 60

    def run(strategy: Any) -> tuple[float, float]:
        spec = {
            "seed": 3,
            "models": [{"name": "a", "reply": reply, "ttft_ms": 10},
                       {"name": "b", "reply": reply, "ttft_ms": 10}],
            "slow": [["a", n + 10, 1.0]],
        }  # fmt: skip
        with simulator(spec) as urls:
            router = LLMRouter(
                [_deployment(urls["a"], "a", 1e-6), _deployment(urls["b"], "b", 1e-6)],
                strategy=strategy, monitor=False,
            )  # fmt: skip
            results = asyncio.run(_many(router, n, 4))
        bad = [r for r in results if isinstance(r, BaseException)]
        if bad:
            raise bad[0]
        return percentile([r.latency_ms for r in results], 99), sum(r.cost for r in results)

    base_p99, base_cost = run("fallback")
    race_p99, race_cost = run(Race("fallback", hedge_after=0.1))
    return [
        Result("p99 latency, 10% of calls 1 s slow", "ms", race_p99, peer="no hedging",
               peer_median=base_p99, target="<= 0.5x (cut >= 50 %)",
               notes="Race(hedge_after=0.1 s) vs the same fallback order without hedging"),
        Result("cost with hedging", "USD", race_cost, peer="no hedging", peer_median=base_cost,
               target="<= 1.15x", notes="losers' prompt tokens counted"),
    ]  # fmt: skip


def bench_concurrency() -> list[Result]:
    """1,000 routed calls at once, default transport vs LiteLLMTransport: CPU per call, wall."""
    from aipowertools.router import LiteLLMTransport, LLMRouter

    spec = {"models": [{"name": "a", "ttft_ms": 50}, {"name": "b"}]}
    runs: dict[str, list[tuple[float, float]]] = {"default": [], "litellm": []}
    with simulator(spec) as urls:
        deployments = [_deployment(urls["a"], "a", 1e-7), _deployment(urls["b"], "b", 1e-6)]

        async def wave(router: Any) -> tuple[float, float]:
            await _many(router, 50, 50)  # warm the pool
            start, cpu = time.perf_counter(), time.process_time()
            results = await _many(router, 1000, 1000)
            bad = [r for r in results if isinstance(r, BaseException)]
            if bad:
                raise bad[0]
            return (time.process_time() - cpu) / 1000 * 1e3, time.perf_counter() - start

        for _ in range(3):
            for name, transport in (("default", None), ("litellm", LiteLLMTransport())):
                router = LLMRouter(
                    deployments, strategy="least_busy", monitor=False, transport=transport
                )
                runs[name].append(asyncio.run(wave(router)))
    cpu = {k: [c for c, _ in v] for k, v in runs.items()}
    wall = {k: [w for _, w in v] for k, v in runs.items()}
    return [
        Result("1,000 concurrent routed calls, client CPU per call", "ms",
               statistics.median(cpu["default"]), peer="same router, LiteLLMTransport",
               peer_median=statistics.median(cpu["litellm"]), runs=cpu["default"],
               peer_runs=cpu["litellm"], notes="0 errors; least_busy over 2 deployments"),
        Result("1,000 concurrent routed calls, wall time", "s",
               statistics.median(wall["default"]), peer="same router, LiteLLMTransport",
               peer_median=statistics.median(wall["litellm"]), runs=wall["default"],
               peer_runs=wall["litellm"]),
    ]  # fmt: skip


def bench_raw_http(reps: int = 5, n: int = 400) -> list[Result]:
    """Routed call vs a raw aiohttp POST of the same request, at concurrency 1 and 100."""
    import aiohttp

    from aipowertools.router import Deployment, LLMRouter

    spec = {"models": [{"name": "gpt-4o-mini"}]}
    body = json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES}).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
    out: list[Result] = []
    with simulator(spec) as urls:
        base = urls["gpt-4o-mini"]
        dep = Deployment("openai/gpt-4o-mini", api_base=base, api_key=KEY, local=False)

        async def measure(concurrency: int) -> tuple[float, float]:
            router = LLMRouter([dep])
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200))

            async def raw() -> Any:
                async with session.post(f"{base}/chat/completions", data=body,
                                        headers=headers) as response:  # fmt: skip
                    return json.loads(await response.read())

            async def routed() -> Any:
                return await router.route(messages=MESSAGES, complexity_score=0.2)

            async def batch(fn: Callable[[], Awaitable[Any]]) -> float:
                sem = asyncio.Semaphore(concurrency)

                async def one() -> None:
                    async with sem:
                        await fn()

                await asyncio.gather(*(one() for _ in range(50)))  # warm
                start = time.process_time()
                await asyncio.gather(*(one() for _ in range(n)))
                return (time.process_time() - start) / n * 1e3

            try:
                return await batch(routed), await batch(raw)
            finally:
                await session.close()

        for concurrency, target in ((1, "<= 1.3x"), (100, "<= 2x")):
            ours, peer = [], []
            for _ in range(reps):
                a, b = asyncio.run(measure(concurrency))
                ours.append(a)
                peer.append(b)
            out.append(Result(
                f"routed call client CPU at concurrency {concurrency}", "ms",
                statistics.median(ours), peer="raw aiohttp POST, same request",
                peer_median=statistics.median(peer), target=target, runs=ours, peer_runs=peer,
                notes="LLMRouter, one openai/ deployment, default transport, monitor on",
            ))  # fmt: skip
    return out


def bench_budget_path(reps: int = 5, n: int = 200) -> list[Result]:
    """Client CPU per routed call with a monthly budget on the default (SQLite) store and in
    memory, against the same router without a budget: the whole money path per call."""
    import tempfile

    from aipowertools.core import CostTracker
    from aipowertools.router import Deployment, LLMRouter

    spec = {"models": [{"name": "gpt-4o-mini"}]}
    out: list[Result] = []
    with simulator(spec) as urls, tempfile.TemporaryDirectory() as home:
        os.environ["AIPOWERTOOLS_HOME"] = home
        dep = Deployment("openai/gpt-4o-mini", api_base=urls["gpt-4o-mini"], api_key=KEY,
                         local=False)  # fmt: skip
        routers = {
            "none": LLMRouter([dep], monitor=False),
            "sqlite": LLMRouter([dep], monitor=False, budget_usd_per_month=1e6),
            "memory": LLMRouter([dep], monitor=False, cost_tracker=CostTracker(
                store="memory://bench", budget_usd=1e6, budget_period="month")),
        }  # fmt: skip

        def through(router: Any) -> Callable[[], Awaitable[Any]]:
            async def call() -> Any:
                return await router.route(messages=MESSAGES, complexity_score=0.2)

            return call

        runs: dict[str, list[float]] = {k: [] for k in routers}
        for _ in range(reps):
            for name, router in routers.items():
                runs[name].append(_cpu_per_call(through(router), n) * 1e3)
    med = {k: statistics.median(v) for k, v in runs.items()}
    for store in ("sqlite", "memory"):
        extra = [a - b for a, b in zip(runs[store], runs["none"], strict=True)]
        out.append(Result(
            f"money path per routed call (reserve, settle, ledger row), {store} store", "ms",
            statistics.median(extra), target="<= 0.2 ms" if store == "sqlite" else None,
            runs=extra, notes=f"routed call with a budget ({med[store]:.3f} ms) minus without "
            f"({med['none']:.3f} ms), same run, monitor off",
        ))  # fmt: skip
    return out


def main() -> None:
    only = set(sys.argv[1:])
    if only:  # e.g. ``python bench/bench_router.py wires decision_size``
        table = {"wires": bench_wire_cpu, "decision_size": bench_decision_by_prompt_size,
                 "call_cpu": bench_call_cpu, "concurrency": bench_concurrency,
                 "raw_http": bench_raw_http, "budget": bench_budget_path}  # fmt: skip
        results = [r for name in sorted(only) for r in table[name]()]
        write_results("router-" + "-".join(sorted(only)), results)
        return
    results = [bench_decision(), bench_import()]
    results += bench_decision_by_prompt_size()
    results += bench_call_cpu()
    results += bench_wire_cpu()
    results += bench_raw_http()
    results += bench_budget_path()
    results += bench_concurrency()
    results.append(bench_failover())
    results += bench_hedging()
    write_results("router", results)


if __name__ == "__main__":
    main()
