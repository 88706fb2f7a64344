"""How many chat requests per second the simulator serves on loopback.

The simulator runs in this process on its own thread (as in tests); a raw aiohttp client with
32 concurrent requests hammers ``POST /v1/chat/completions`` for a fixed time. The peer is a
bare aiohttp server on a thread answering a fixed JSON body: the ceiling of the stack.

    python bench/bench_simulator.py
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
from _harness import Result, write_results
from aiohttp import web

from aipowertools.testing import SimModel, Simulator

CONCURRENCY = 32
SECONDS = 2.0
RUNS = 3
BODY = {"model": "bench", "messages": [{"role": "user", "content": "Say hello."}]}
STREAM_BODY = {**BODY, "stream": True, "stream_options": {"include_usage": True}}


async def _hammer(url: str, body: dict, seconds: float) -> float:
    payload = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    done = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                async with session.post(url, data=payload, headers=headers) as response:
                    await response.read()
                    assert response.status == 200, response.status
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return done / (time.perf_counter() - start)


def rate(url: str, body: dict) -> tuple[float, list[float]]:
    asyncio.run(_hammer(url, body, 0.3))  # warm-up
    runs = [asyncio.run(_hammer(url, body, SECONDS)) for _ in range(RUNS)]
    return statistics.median(runs), runs


class BareServer:
    """A plain aiohttp server on a thread answering one fixed completion body."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def handle(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(body=self.body, content_type="application/json")

        app = web.Application()
        app.router.add_post("/v1/chat/completions", handle)
        self.runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.runner.cleanup())
        self.loop.close()

    def __enter__(self) -> str:
        self.thread.start()
        self.ready.wait()
        return f"http://127.0.0.1:{self.port}/v1/chat/completions"

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()


def main() -> None:
    with Simulator(models=[SimModel("bench", reply="Hello! How can I help you today?")]) as sim:
        url = sim.base_url("openai") + "/chat/completions"
        sample = asyncio.run(_one(url))
        plain, plain_runs = rate(url, BODY)
        stream, stream_runs = rate(url, STREAM_BODY)
        served = sim.stats().served
    with BareServer(sample) as bare_url:
        bare, bare_runs = rate(bare_url, BODY)
    print(f"simulator served {served} requests")
    write_results(
        "simulator",
        [
            Result(
                "chat completions (JSON), 32 concurrent",
                "req/s",
                plain,
                peer="bare aiohttp server, fixed body",
                peer_median=bare,
                target=">= 1000 req/s",
                runs=plain_runs,
                peer_runs=bare_runs,
            ),
            Result(
                "chat completions (SSE stream + usage), 32 concurrent",
                "req/s",
                stream,
                target=">= 1000 req/s",
                runs=stream_runs,
            ),
        ],
    )


async def _one(url: str) -> bytes:
    async with aiohttp.ClientSession() as session, session.post(url, json=BODY) as response:
        return await response.read()


if __name__ == "__main__":
    main()
