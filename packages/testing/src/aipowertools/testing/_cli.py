"""``python -m aipowertools.testing serve --port 8765 --config sim.toml``."""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aipowertools.testing._compat import ConfigurationError
from aipowertools.testing._config import SimModel
from aipowertools.testing._server import Simulator

__all__ = ["load_config", "main"]

_MODEL_KEYS = {
    "name",
    "reply",
    "context_window",
    "ttft_ms",
    "per_token_ms",
    "rpm",
    "tpm",
    "rate_window_s",
    "fault_rates",
    "cached_tokens",
    "cache_creation_tokens",
    "reasoning_tokens",
    "prompt_caching",
    "prompt_cache_ttl_s",
    "tokenizer_model",
    "owned_by",
}


def load_config(path: Path) -> dict[str, Any]:
    """Read a simulator TOML file: top-level ``seed``/``api_key``/``strict_models`` and
    ``[[models]]`` tables with :class:`SimModel` fields."""
    try:
        tomllib = importlib.import_module("tomllib" if sys.version_info >= (3, 11) else "tomli")
    except ImportError as exc:  # pragma: no cover - Python 3.10 without tomli
        raise ConfigurationError("reading TOML on Python 3.10 needs `pip install tomli`") from exc
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read simulator config {path}: {exc}") from exc
    models = []
    for entry in data.get("models", []):
        unknown = set(entry) - _MODEL_KEYS
        if unknown:
            raise ConfigurationError(
                f"{path}: unknown model keys {sorted(unknown)}; known: {sorted(_MODEL_KEYS)}"
            )
        models.append(SimModel(**entry))
    return {
        "models": models,
        "seed": int(data.get("seed", 0)),
        "api_key": data.get("api_key"),
        "strict_models": bool(data.get("strict_models", False)),
    }


def _warm() -> None:
    """Load litellm's token counters ahead of the first request; only an optimisation.

    A failure here (for example an import racing the same import on another thread) is not
    the simulator's: the first request loads litellm again and reports any real error.
    """
    try:
        from aipowertools.testing._compat import litellm

        litellm()
    except Exception:  # pragma: no cover - depends on import timing
        logging.getLogger(__name__).debug("warming litellm failed", exc_info=True)


def main(argv: Sequence[str] | None = None, *, stop: threading.Event | None = None) -> int:
    """Run the command line; ``stop`` (for tests) ends ``serve`` instead of a signal."""
    parser = argparse.ArgumentParser(prog="python -m aipowertools.testing")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the provider simulator until Ctrl-C")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--config", type=Path, help="TOML file with [[models]] tables")
    serve.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    options: dict[str, Any] = {"models": [], "seed": 0, "api_key": None, "strict_models": False}
    if args.config is not None:
        options = load_config(args.config)
    if args.seed is not None:
        options["seed"] = args.seed
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Simulator(host=args.host, port=args.port, **options) as sim:
        print(f"simulator serving on {sim.url}", flush=True)
        print(f"  openai:    {sim.base_url('openai')}", flush=True)
        print(f"  anthropic: {sim.base_url('anthropic')}", flush=True)
        print(f"  ollama:    {sim.base_url('ollama')}", flush=True)
        print(f"  stats:     {sim.url}/_sim/stats", flush=True)
        for name in sim.models:
            print(f"  model {name}: {sim.base_url('openai', name)}", flush=True)
        # serving already; load litellm's token counters meanwhile, off the serving thread
        threading.Thread(target=_warm, name="aipowertools-sim-warm", daemon=True).start()
        try:
            while not stop.wait(0.2):
                pass
        except KeyboardInterrupt:
            pass
    return 0
