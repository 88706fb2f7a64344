from __future__ import annotations

import socket
import threading
from pathlib import Path

import httpx
import pytest

from aipowertools.testing._cli import load_config, main
from aipowertools.testing._compat import ConfigurationError


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_from_a_toml_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "sim.toml"
    config.write_text(
        'seed = 3\n[[models]]\nname = "gpt-4o-mini"\nreply = "from toml"\nrpm = 1\n'
        "rate_window_s = 30.0\n"
    )
    port = _free_port()
    stop = threading.Event()
    thread = threading.Thread(
        target=main,
        args=(["serve", "--port", str(port), "--config", str(config)],),
        kwargs={"stop": stop},
    )
    thread.start()
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    try:
        for _ in range(100):
            try:
                first = httpx.post(url, json=body)
                break
            except httpx.ConnectError:
                stop.wait(0.05)
        assert first.json()["choices"][0]["message"]["content"] == "from toml"
        assert httpx.post(url, json=body).status_code == 429
    finally:
        stop.set()
        thread.join()
    assert f"simulator serving on http://127.0.0.1:{port}" in capsys.readouterr().out


def test_bad_config_names_the_unknown_key(tmp_path: Path) -> None:
    config = tmp_path / "sim.toml"
    config.write_text('[[models]]\nname = "m"\nrpmm = 3\n')
    with pytest.raises(ConfigurationError, match="rpmm"):
        load_config(config)
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
