"""The simulator: an aiohttp server on a background thread with its own event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Iterable, Sequence
from types import TracebackType
from typing import Any

from aiohttp import web

from aipowertools.testing._compat import ConfigurationError
from aipowertools.testing._config import Fault, FaultKind, SimModel, as_fault
from aipowertools.testing._engine import Engine
from aipowertools.testing._routes import build_app
from aipowertools.testing._stats import RequestRecord, SimStats

__all__ = ["Simulator", "SimulatorStopError"]

# How long stop() waits for the server thread; it releases hung requests itself, so a
# healthy simulator stops in milliseconds.
_STOP_TIMEOUT_S = 30.0


class SimulatorStopError(RuntimeError):
    """The simulator's server thread did not stop in time (its event loop is blocked)."""


_FLAVOR_PATHS = {"openai": "/v1", "anthropic": "", "ollama": "", "llamacpp": "/v1"}


def _drain(loop: asyncio.AbstractEventLoop) -> None:
    """Finish every task and close every transport before the loop closes.

    A client connecting while we shut down leaves a transport whose protocol may start a
    task only on the next iteration; repeat until nothing is left (bounded), so no socket is
    left for the garbage collector to complain about.
    """
    for _ in range(10):
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        live = [
            t
            for t in list(getattr(loop, "_transports", {}).values())
            if t is not None and not t.is_closing()
        ]
        for transport in live:
            transport.abort()
        for _ in range(2):
            loop.run_until_complete(asyncio.sleep(0))
        if not pending and not live:
            return


class _Listener:
    """One listening socket (the main one, or one bound to a single model)."""

    def __init__(self, key: str | None, port: int) -> None:
        self.key = key
        self.port = port
        self.site: web.SockSite | None = None
        self.sock: socket.socket | None = None
        self.transports: weakref.WeakSet[asyncio.Transport] = weakref.WeakSet()


class Simulator:
    """A fake LLM provider on loopback that speaks the OpenAI, Anthropic, Ollama and llama.cpp APIs.

    Start it with ``with``/``async with`` (or :meth:`start`/:meth:`stop`), point a client at
    :meth:`base_url`, and assert on :meth:`stats` / :attr:`requests` afterwards. Unknown model
    names get a default :class:`SimModel` unless ``strict_models`` is set.

    Args:
        models: Simulated models.
        seed: Seed of the per-model fault generators (same seed, same fault sequence).
        host: Interface to listen on.
        port: Port of the main listener (0 picks a free one).
        strict_models: Answer 404 ``model_not_found`` for unknown model names.
        api_key: If set, requests must carry it (``Authorization: Bearer`` or ``x-api-key``),
            otherwise they get a 401.
        clock: Monotonic seconds the rate windows (``rpm``/``tpm`` over ``rate_window_s``)
            run on; ``time.monotonic`` by default. Tests pass a fake clock they advance by
            hand, so a window's verdict never depends on how fast the machine is.

    Example:
        >>> from aipowertools.testing import SimModel, Simulator
        >>> with Simulator(models=[SimModel("gpt-4o-mini", reply="hi")]) as sim:
        ...     sim.base_url("openai").endswith("/v1")
        True
    """

    def __init__(
        self,
        models: Iterable[SimModel] = (),
        *,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        strict_models: bool = False,
        api_key: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        models = list(models)
        names = [m.name for m in models]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigurationError(f"Simulator got duplicate model names: {duplicates}")
        self.host = host
        self._requested_port = port
        self._engine = Engine(models, seed, strict_models, api_key, clock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._listeners: dict[str | None, _Listener] = {}
        self._lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        return self._loop is not None

    def start(self) -> Simulator:
        """Start serving on a background thread; returns ``self``. Idempotent."""
        with self._lock:
            if self._loop is not None:
                return self
            # litellm is not imported here: its import takes seconds (tens under load) and
            # the port must answer at once; the first request that counts tokens loads it.
            loop = asyncio.new_event_loop()
            ready = threading.Event()
            failure: list[BaseException] = []

            def run() -> None:
                asyncio.set_event_loop(loop)
                try:
                    loop.run_until_complete(self._setup())
                except BaseException as exc:  # pragma: no cover - bind errors and the like
                    failure.append(exc)
                    loop.close()
                    ready.set()
                    return
                ready.set()
                loop.run_forever()
                _drain(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

            thread = threading.Thread(target=run, name="aipowertools-simulator", daemon=True)
            thread.start()
            ready.wait()
            if failure:
                thread.join()
                raise failure[0]
            self._loop, self._thread = loop, thread
            return self

    def stop(self, timeout: float = _STOP_TIMEOUT_S) -> None:
        """Stop serving and join the thread; hung requests are released. Idempotent.

        Bounded: if the server's event loop is blocked (a handler that never yields), the
        wait ends after ``timeout`` seconds with :class:`SimulatorStopError` instead of
        hanging the caller (and a test run) forever; the stuck daemon thread is abandoned.
        """
        with self._lock:
            loop, thread = self._loop, self._thread
            if loop is None or thread is None:
                return
            self._loop = self._thread = None
            self._runner = None
            deadline = time.monotonic() + timeout
            done = asyncio.run_coroutine_threadsafe(self._teardown_and_stop(), loop)
            with contextlib.suppress(concurrent.futures.TimeoutError):
                done.result(timeout)  # on a timeout the join below gets 0 s and reports it
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                raise SimulatorStopError(
                    f"the simulator did not stop within {timeout:g} s: a request handler is "
                    "blocking its event loop. Its daemon thread was abandoned; "
                    "`faulthandler.dump_traceback()` shows where it is stuck."
                )

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Simulator:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    async def _setup(self) -> None:
        self._engine.stopping = asyncio.Event()
        app = build_app(self._engine, self._bound_model, self._track)
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            handler_cancellation=True,
            shutdown_timeout=0.5,
        )
        await runner.setup()
        self._runner = runner
        await self._open(None, self._requested_port)
        for name in self._engine.models:
            await self._open(name, 0)

    async def _teardown_and_stop(self) -> None:
        # The loop stops only after the teardown ran to its end, even if stop() gave up
        # waiting: a blocked loop that frees itself later still closes its sockets.
        try:
            await self._teardown()
        finally:
            asyncio.get_running_loop().stop()

    async def _teardown(self) -> None:
        assert self._engine.stopping is not None
        self._engine.stopping.set()
        listeners = list(self._listeners.values())
        self._listeners.clear()
        for listener in listeners:
            await self._close(listener)
        if self._runner is not None:
            server = self._runner.server
            await self._runner.cleanup()
            # A connection accepted while the sites were closing is registered after the
            # server's shutdown swept its connections: close those too.
            for _ in range(3):
                await asyncio.sleep(0)
            for handler in list(getattr(server, "_connections", ())):
                handler.force_close()
                if handler.transport is not None:
                    handler.transport.abort()
        # Closed transports release their sockets on the next loop iterations.
        for _ in range(3):
            await asyncio.sleep(0)

    async def _open(self, key: str | None, port: int) -> _Listener:
        assert self._runner is not None
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, port))
        listener = self._listeners.get(key) or _Listener(key, sock.getsockname()[1])
        site = web.SockSite(self._runner, sock, backlog=1024)
        await site.start()
        listener.site = site
        listener.sock = sock
        self._listeners[key] = listener
        return listener

    async def _close(self, listener: _Listener) -> None:
        site, listener.site = listener.site, None
        sock, listener.sock = listener.sock, None
        if site is not None:
            if sock is not None:
                # Stop accepting first and let connections accepted already attach to the
                # server: closing the server under a pending accept makes asyncio (3.11)
                # leak that connection's socket ("Error on transport creation").
                asyncio.get_running_loop().remove_reader(sock.fileno())
                for _ in range(2):
                    await asyncio.sleep(0)
            await site.stop()
        for transport in list(listener.transports):
            transport.abort()

    def _call(self, fn: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        if self._loop is None:
            raise ConfigurationError("the simulator is not running; use `with Simulator(...)`")
        return asyncio.run_coroutine_threadsafe(fn(), self._loop).result()

    # -- routing helpers (loop thread) -------------------------------------------------------

    def _local_port(self, request: web.Request) -> int:
        transport = request.transport
        sockname = transport.get_extra_info("sockname") if transport is not None else None
        return int(sockname[1]) if sockname else 0

    def _bound_model(self, request: web.Request) -> str | None:
        port = self._local_port(request)
        for key, listener in self._listeners.items():
            if listener.port == port:
                if listener.site is None:
                    Engine.drop(request)
                return key
        return None

    def _track(self, request: web.Request) -> None:
        port = self._local_port(request)
        for listener in self._listeners.values():
            if listener.port == port and request.transport is not None:
                listener.transports.add(request.transport)

    # -- addresses ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Root URL of the main listener, e.g. ``http://127.0.0.1:41234``."""
        return self._root(None)

    @property
    def port(self) -> int:
        """Port of the main listener."""
        return self._listener(None).port

    def _listener(self, model: str | None) -> _Listener:
        if self._loop is None:
            raise ConfigurationError("the simulator is not running; use `with Simulator(...)`")
        listener = self._listeners.get(model)
        if listener is None:
            known = sorted(k for k in self._listeners if k is not None)
            raise ConfigurationError(f"no simulated model {model!r}; models: {known}")
        return listener

    def _root(self, model: str | None) -> str:
        return f"http://{self.host}:{self._listener(model).port}"

    def base_url(self, flavor: str = "openai", model: str | None = None) -> str:
        """Base URL to give a client of ``flavor``.

        Args:
            flavor: ``"openai"`` (``.../v1``, for the OpenAI SDK, LangChain ``ChatOpenAI`` and
                litellm ``openai/``), ``"anthropic"`` (root, for the Anthropic SDK and litellm
                ``anthropic/``), ``"ollama"`` (root, for litellm ``ollama_chat/``) or
                ``"llamacpp"`` (``.../v1``; ``/health`` is at :attr:`url`).
            model: Give the URL of this model's own port, which serves only that model and can
                be taken :meth:`down` on its own (use one per simulated deployment).

        Returns:
            The URL, without a trailing slash.

        Raises:
            ConfigurationError: Unknown flavor or model, or the simulator is not running.
        """
        if flavor not in _FLAVOR_PATHS:
            raise ConfigurationError(
                f"unknown flavor {flavor!r}; use one of: {', '.join(_FLAVOR_PATHS)}"
            )
        return self._root(model) + _FLAVOR_PATHS[flavor]

    # -- models and faults -------------------------------------------------------------------

    @property
    def models(self) -> dict[str, SimModel]:
        """The simulated models by name (including ones created on first use)."""
        return dict(self._engine.models)

    @property
    def seed(self) -> int:
        """Seed of the fault generators."""
        return self._engine.seed

    def add_model(self, model: SimModel) -> SimModel:
        """Add (or replace) a simulated model; it gets its own port when the server runs."""
        self._engine.add_model(model)
        if self._loop is not None and model.name not in self._listeners:
            self._call(lambda: self._open(model.name, 0))
        return model

    def _model_name(self, model: str | None) -> str | None:
        if model is not None and model not in self._engine.models:
            raise ConfigurationError(
                f"no simulated model {model!r}; models: {sorted(self._engine.models)}"
            )
        return model

    def schedule(self, model: str | None, faults: Sequence[Fault | FaultKind | str | None]) -> None:
        """Queue what the next requests get, in order; ``None`` lets a request through.

        Args:
            model: Model the schedule applies to; ``None`` applies to whichever model is asked
                next (after that model's own schedule is used up).
            faults: Faults (or kind names) and ``None`` entries, consumed one per request.
        """
        queue = (
            self._engine.any_queue
            if self._model_name(model) is None
            else self._engine.plans[str(model)].queue
        )
        queue.extend(None if f is None else as_fault(f) for f in faults)

    def fail_next(
        self, model: str | None, n: int = 1, fault: Fault | FaultKind | str = FaultKind.SERVER_ERROR
    ) -> None:
        """Make the next ``n`` requests to ``model`` (``None``: to any model) fail with ``fault``.

        Example:
            >>> with Simulator() as sim:
            ...     sim.fail_next(None, 2, Fault("rate_limit", retry_after=3))
        """
        if n < 0:
            raise ConfigurationError(f"n must be >= 0, got {n}")
        self.schedule(model, [as_fault(fault)] * n)

    def clear_faults(self, model: str | None = None) -> None:
        """Drop scheduled faults of ``model`` (``None``: of every model and the shared queue)."""
        if self._model_name(model) is not None:
            self._engine.plans[str(model)].queue.clear()
            return
        self._engine.any_queue.clear()
        for plan in self._engine.plans.values():
            plan.queue.clear()

    def down(self, model: str | None = None) -> None:
        """Take a listener down: new connections are refused, open ones are reset.

        Args:
            model: The model whose own port (see :meth:`base_url`) goes down; ``None`` takes
                the main listener down.
        """
        listener = self._listener(self._model_name(model))
        self._engine.down.add(model)
        self._call(lambda: self._close(listener))

    def up(self, model: str | None = None) -> None:
        """Bring a listener taken :meth:`down` back on the same port."""
        listener = self._listener(self._model_name(model))
        self._engine.down.discard(model)
        if listener.site is None:
            self._call(lambda: self._open(model, listener.port))

    def is_down(self, model: str | None = None) -> bool:
        """Whether the listener of ``model`` (``None``: the main one) is down."""
        return model in self._engine.down

    # -- observation -------------------------------------------------------------------------

    def stats(self) -> SimStats:
        """A snapshot of the counters (served, 429s, faults, concurrency peak, tokens...)."""
        return self._engine.stats.snapshot()

    @property
    def requests(self) -> list[RequestRecord]:
        """Every chat request seen so far (most recent 100,000), oldest first."""
        return self._engine.stats.records()

    def reset_stats(self) -> None:
        """Zero the counters and forget the request log (rate windows are kept)."""
        self._engine.stats.reset()

    def clear_prompt_cache(self) -> None:
        """Forget every prefix the modelled prompt caches hold (as if their TTL ran out)."""
        self._engine.prompt_cache.clear()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no request is in flight; returns False on timeout."""
        deadline = time.monotonic() + timeout
        while self._engine.stats.snapshot().in_flight:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True
