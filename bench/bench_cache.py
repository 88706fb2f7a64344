"""Benchmark: the response cache (aipowertools.cache) against LangChain's caches.

Figures (medians of interleaved rounds, peers measured in the same run):

* hit lookup p50 per backend: ours through LangChain's ``BaseCache`` interface
  (``LangChainCache.lookup``, returning ``Generation`` objects) and the engine's own
  ``LLMCache.lookup``, against ``InMemoryCache`` (memory), langchain-community's
  ``SQLiteCache`` (embedded file), ``RedisCache`` (Redis) and ``SQLAlchemyCache`` (PostgreSQL);
* miss overhead on the embedded store (diskcache): a lookup that finds nothing;
* hit rate and money saved on a replayed workload where half the requests repeat another
  with cosmetic differences (parameter key order, ``max_completion_tokens`` for
  ``max_tokens``, trailing whitespace), ours with ``normalize="whitespace"`` against an exact
  cache keyed the way LangChain keys its cache;
* 8 processes x 500 mixed get/set on one Redis and one PostgreSQL cache with
  ``single_flight=True`` in front of the provider simulator: errors, corrupt entries, and
  provider calls per distinct key (simulator stats).

Run: ``uv run python bench/bench_cache.py`` (about a minute; needs Redis and PostgreSQL on
127.0.0.1 for their figures, skipped with a note otherwise).
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _harness import Result, percentile, write_results

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
warnings.filterwarnings("ignore", category=DeprecationWarning)  # langchain-community's sunset
# the peers' loads() warns (beta, allowed_objects default) on every lookup
warnings.filterwarnings("ignore", module="langchain_community")

REDIS_URL = os.environ.get("AIPOWERTOOLS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
POSTGRES_URL = os.environ.get(
    "AIPOWERTOOLS_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
ROUNDS, PER_ROUND = 5, 300
WORKERS, OPS, DISTINCT = 8, 500, 40
MODEL = "gpt-4o-mini"
PROMPT = json.dumps(
    [{"lc": 1, "type": "constructor", "id": ["langchain", "schema", "messages", "HumanMessage"],
      "kwargs": {"content": "What is the capital of France? Answer in one word.",
                 "type": "human"}}]
)  # fmt: skip
LLM_STRING = (
    '{"lc": 1, "type": "constructor", "id": ["langchain", "chat_models", "openai", '
    '"ChatOpenAI"], "kwargs": {"model_name": "gpt-4o-mini", "temperature": 0.0}}---'
    "[('_type', 'openai-chat'), ('model_name', 'gpt-4o-mini'), ('stop', None), "
    "('temperature', 0.0)]"
)


def _generations() -> list[Any]:
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration

    message = AIMessage(
        "Paris.",
        usage_metadata={"input_tokens": 20, "output_tokens": 2, "total_tokens": 22},
        response_metadata={"finish_reason": "stop", "model_name": MODEL},
    )
    return [ChatGeneration(message=message)]


def _timed(op: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        op()
        out.append((time.perf_counter() - start) * 1e3)
    return out


def _interleaved(ops: dict[str, Callable[[], object]]) -> dict[str, list[float]]:
    """Per-op milliseconds, alternating rounds between the sides (fair under noise)."""
    samples: dict[str, list[float]] = {name: [] for name in ops}
    for _ in range(ROUNDS):
        for name, op in ops.items():
            samples[name] += _timed(op, PER_ROUND)
    return samples


def _server(url: str) -> str | None:
    """Why a server cannot be used (None: it answers)."""
    try:
        if url.startswith("redis"):
            import redis

            redis.Redis.from_url(url, socket_connect_timeout=2).ping()
        else:
            import psycopg

            psycopg.connect(url, connect_timeout=2).close()
    except Exception as exc:
        return f"not measured: {url} does not answer ({type(exc).__name__})"
    return None


# --------------------------------------------------------------------------- hit lookups


def hit_lookups(tmp: Path) -> list[Result]:
    from langchain_core.caches import InMemoryCache

    from aipowertools.cache import LLMCache
    from aipowertools.cache.langchain import LangChainCache

    results: list[Result] = []
    generations = _generations()
    messages = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]

    def pair(backend: str, ours_url: str | None, peer: Any, peer_name: str) -> None:
        sides: dict[str, Callable[[], object]] = {}
        engine = adapter = None
        if ours_url is not None:
            ns = "bench" + uuid.uuid4().hex[:8]
            engine = LLMCache(ours_url, namespace=ns)
            engine.store("Paris.", messages=messages, model=MODEL, input_tokens=20, output_tokens=2)
            adapter = LangChainCache(LLMCache(ours_url, namespace=ns + "lc"))
            adapter.update(PROMPT, LLM_STRING, generations)
            assert adapter.lookup(PROMPT, LLM_STRING) == generations
            assert engine.lookup(messages, model=MODEL) is not None
            sides["ours (LangChainCache)"] = lambda: adapter.lookup(PROMPT, LLM_STRING)
            sides["ours (LLMCache)"] = lambda: engine.lookup(messages, model=MODEL)
        if peer is not None:
            peer.update(PROMPT, LLM_STRING, generations)
            assert peer.lookup(PROMPT, LLM_STRING) is not None
            sides["peer"] = lambda: peer.lookup(PROMPT, LLM_STRING)
        s = _interleaved(sides)
        peer_p50 = statistics.median(s["peer"]) if "peer" in s else None
        for side in ("ours (LangChainCache)", "ours (LLMCache)"):
            if side in s:
                results.append(
                    Result(
                        f"hit lookup p50 ({backend}) {side}", "ms", statistics.median(s[side]),
                        peer=peer_name if peer_p50 is not None else None, peer_median=peer_p50,
                        target="<= fastest peer on the same backend",
                        notes=f"p99 {percentile(s[side], 99):.3f} ms",
                    )
                )  # fmt: skip
        for cache in (engine, adapter.cache if adapter else None):
            if cache is not None:
                cache.clear()
                cache.close()

    pair("memory", "memory://", InMemoryCache(), "LangChain InMemoryCache")
    from langchain_community.cache import SQLiteCache

    pair(
        "embedded file", f"diskcache://{tmp / 'dc'}", SQLiteCache(str(tmp / "lc.db")),
        "langchain-community SQLiteCache",
    )  # fmt: skip
    why = _server(REDIS_URL)
    if why is None:
        import redis
        from langchain_community.cache import RedisCache

        client = redis.Redis.from_url(REDIS_URL)
        pair("redis", REDIS_URL, RedisCache(redis_=client), "langchain-community RedisCache")
        client.close()
    else:
        results.append(Result("hit lookup p50 (redis)", "ms", float("nan"), notes=why))
    why = _server(POSTGRES_URL)
    if why is None:
        from langchain_community.cache import SQLAlchemyCache
        from sqlalchemy import create_engine

        engine = create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://"))
        peer = SQLAlchemyCache(engine)
        peer.clear()
        pair("postgresql", POSTGRES_URL, peer, "langchain-community SQLAlchemyCache")
        peer.clear()
        engine.dispose()
    else:
        results.append(Result("hit lookup p50 (postgresql)", "ms", float("nan"), notes=why))
    return results


def miss_overhead(tmp: Path) -> list[Result]:
    from aipowertools.cache import LLMCache

    cache = LLMCache(f"diskcache://{tmp / 'miss'}")
    counter = iter(range(10**9))
    s = _interleaved(
        {
            "miss": lambda: cache.lookup(
                [{"role": "user", "content": f"question {next(counter)}"}], model=MODEL
            )
        }
    )
    cache.close()
    return [
        Result(
            "miss overhead (diskcache lookup that finds nothing)", "ms",
            statistics.median(s["miss"]), target="<= 0.3 ms",
            notes=f"p99 {percentile(s['miss'], 99):.3f} ms",
        )
    ]  # fmt: skip


# --------------------------------------------------------------------------- hit rate


def _workload(seed: int = 7, base: int = 200) -> list[tuple[list[dict[str, Any]], dict[str, Any]]]:
    """``base`` distinct requests plus one cosmetic variant of each, shuffled."""
    rng = random.Random(seed)
    topics = ["refund policy", "shipping times", "password reset", "invoice copy", "API limits"]
    requests = []
    for i in range(base):
        messages = [
            {"role": "system", "content": "You are a support assistant. Answer briefly."},
            {"role": "user", "content": f"Question {i}: how does the {topics[i % 5]} work?"},
        ]
        params = {"temperature": 0.0, "max_tokens": 300 + i % 3}
        requests.append((messages, params))
        kind = i % 3
        if kind == 0:  # parameters in another order
            variant = (messages, dict(reversed(list(params.items()))))
        elif kind == 1:  # the newer spelling of max_tokens
            variant = (
                messages,
                {"temperature": 0.0, "max_completion_tokens": params["max_tokens"]},
            )
        else:  # trailing whitespace typed by a user
            changed = [messages[0], {**messages[1], "content": messages[1]["content"] + "  \n"}]
            variant = (changed, params)
        requests.append(variant)
    rng.shuffle(requests)
    return requests


def hit_rate() -> list[Result]:
    from langchain_core.caches import InMemoryCache
    from langchain_core.outputs import Generation

    from aipowertools.cache import LLMCache

    workload = _workload()
    ours = LLMCache("memory://", normalize="whitespace")
    exact = InMemoryCache()
    ours_hits = exact_hits = 0
    for messages, params in workload:
        if ours.lookup(messages, model=MODEL, **params) is not None:
            ours_hits += 1
        else:
            ours.store("answer", messages=messages, model=MODEL, input_tokens=800,
                       output_tokens=200, **params)  # fmt: skip
        # LangChain keys its cache by the serialized messages and the sorted parameters
        prompt = json.dumps(messages)
        llm_string = str(sorted({"model_name": MODEL, **params}.items()))
        if exact.lookup(prompt, llm_string) is not None:
            exact_hits += 1
        else:
            exact.update(prompt, llm_string, [Generation(text="answer")])
    n = len(workload)
    stats = ours.stats()
    from aipowertools.core import Usage, cost

    per_call = cost(Usage(input_tokens=800, output_tokens=200), MODEL)
    return [
        Result(
            "hit rate, cosmetic-variant workload", "%", 100 * ours_hits / n,
            peer="exact cache keyed as LangChain's", peer_median=100 * exact_hits / n,
            target=">= 40 % and above the exact cache",
            notes=f"{n} requests, half repeat another with cosmetic differences",
        ),
        Result(
            "USD saved on that workload (gpt-4o-mini catalog prices)", "USD", stats.saved_usd,
            peer="exact cache keyed as LangChain's", peer_median=exact_hits * per_call,
            notes=f"800 input + 200 output tokens per request; {n * per_call:.4f} USD uncached",
        ),
    ]  # fmt: skip


# --------------------------------------------------------------------------- processes


def _worker(
    url: str, ns: str, base_url: str, worker: int, out: Any, go: Any, single_flight: bool
) -> None:
    import httpx

    from aipowertools.cache import Answer, LLMCache

    corrupt = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "corrupt" in record.getMessage():
                corrupt.append(record.getMessage())

    logging.getLogger("aipowertools.cache").addHandler(Catch())
    cache = LLMCache(url, namespace=ns, single_flight=single_flight, strict=True)
    client = httpx.Client(base_url=base_url, timeout=30)
    rng = random.Random(worker)
    errors = 0
    wrong = 0
    out.put("ready")
    go.wait(120)  # every process starts missing at the same moment

    def call(k: int) -> Any:
        body = {"model": MODEL, "messages": [{"role": "user", "content": f"question {k}"}]}
        reply = client.post("/chat/completions", json=body).json()
        usage = reply["usage"]
        return Answer(reply["choices"][0]["message"]["content"], usage["prompt_tokens"],
                      usage["completion_tokens"])  # fmt: skip

    for _ in range(OPS):
        k = rng.randrange(DISTINCT)
        try:
            value = cache.call(
                lambda k=k: call(k), messages=[{"role": "user", "content": f"question {k}"}],
                model=MODEL,
            )  # fmt: skip
            if value != f"question {k}":  # the simulator echoes the question
                wrong += 1
        except Exception:
            errors += 1
    client.close()
    out.put((errors, wrong, len(corrupt)))


def processes() -> list[Result]:
    from aipowertools.cache import LLMCache
    from aipowertools.testing import SimModel, Simulator

    results = []
    runs = (("redis", REDIS_URL, True), ("postgresql", POSTGRES_URL, True),
            ("redis", REDIS_URL, False))  # fmt: skip
    for backend, url, single_flight in runs:
        label = backend if single_flight else f"{backend}, single_flight=False"
        why = _server(url)
        if why is not None:
            results.append(Result(f"8 processes x 500 get/set ({label})", "errors", float("nan"),
                                  notes=why))  # fmt: skip
            continue
        ns = "procs" + uuid.uuid4().hex[:8]
        with Simulator(models=[SimModel(MODEL, reply="echo", ttft_ms=50)]) as sim:
            ctx = multiprocessing.get_context("spawn")
            queue, go = ctx.Queue(), ctx.Event()
            base = sim.base_url("openai")
            procs = [
                ctx.Process(target=_worker, args=(url, ns, base, w, queue, go, single_flight))
                for w in range(WORKERS)
            ]
            for p in procs:
                p.start()
            assert all(queue.get(timeout=300) == "ready" for _ in procs)
            start = time.perf_counter()
            go.set()
            outcomes = [queue.get(timeout=300) for _ in procs]
            for p in procs:
                p.join(60)
            wall = time.perf_counter() - start
            provider_calls = sim.stats().requests
        errors = sum(o[0] for o in outcomes)
        wrong = sum(o[1] for o in outcomes)
        corrupt = sum(o[2] for o in outcomes)
        cache = LLMCache(url, namespace=ns)
        stored = sum(
            cache.lookup([{"role": "user", "content": f"question {k}"}], model=MODEL) is not None
            for k in range(DISTINCT)
        )
        cache.clear()
        cache.close()
        note = (
            f"{WORKERS * OPS} calls over {DISTINCT} distinct keys, {wall:.1f} s wall; "
            f"wrong answers {wrong}; {stored}/{DISTINCT} keys readable afterwards"
        )
        results += [
            Result(f"8 processes x 500 get/set ({label}): errors", "count", errors,
                   target="0", notes=note),
            Result(f"8 processes x 500 get/set ({label}): corrupt entries", "count", corrupt,
                   target="0"),
            Result(f"8 processes x 500 get/set ({label}): provider calls per distinct key",
                   "calls", provider_calls / DISTINCT,
                   target="1 with single_flight" if single_flight else None,
                   notes=f"simulator saw {provider_calls} requests"),
        ]  # fmt: skip
    return results


def main() -> None:
    only = sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        results: list[Result] = []
        phases = {
            "hit": lambda: hit_lookups(tmp),
            "miss": lambda: miss_overhead(tmp),
            "hitrate": hit_rate,
            "processes": processes,
        }
        for name, phase in phases.items():
            if not only or name in only:
                with contextlib.suppress(KeyboardInterrupt):
                    results += phase()
        write_results("cache" if not only else "cache-" + "-".join(only), results)


if __name__ == "__main__":
    main()
