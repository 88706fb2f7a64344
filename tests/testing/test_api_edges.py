"""Edge cases of the Python API, the /_sim endpoints and the module entry point."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from aipowertools.testing import Fault, SimModel, SimRequest, Simulator, ToolCall
from aipowertools.testing._compat import ConfigurationError

BODY = {"model": "m", "messages": [{"role": "user", "content": "hello there"}]}


def test_fail_next_over_http(llm_simulator: Simulator) -> None:
    llm_simulator.add_model(SimModel("m"))
    control = llm_simulator.url + "/_sim/fail_next"
    queued = httpx.post(
        control, json={"model": "m", "n": 2, "fault": "rate_limit", "retry_after": 3}
    )
    assert queued.json() == {"ok": True, "queued": 2}
    assert httpx.post(control, json={"fault": "server_error"}).status_code == 200
    assert httpx.post(control, json={"fault": "nope"}).status_code == 400
    assert httpx.post(control, json={"model": "ghost"}).status_code == 400
    url = llm_simulator.base_url() + "/chat/completions"
    responses = [httpx.post(url, json=BODY) for _ in range(4)]
    assert [r.status_code for r in responses] == [429, 429, 500, 200]
    assert responses[0].headers["retry-after"] == "3"
    assert responses[0].headers["retry-after-ms"] == "3000"


def test_multimodal_content_and_max_tokens_finish_reason(llm_simulator: Simulator) -> None:
    seen: list[SimRequest] = []

    def script(request: SimRequest) -> str:
        seen.append(request)
        return "a long answer with many words in it"

    llm_simulator.add_model(SimModel("m", reply=script))
    body = {
        "model": "m",
        "max_tokens": 2,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look "},
                    {"type": "text", "text": "at "},
                    {"type": "text", "text": "this"},
                ],
            }
        ],
    }
    out = httpx.post(llm_simulator.base_url() + "/chat/completions", json=body).json()
    assert out["choices"][0]["finish_reason"] == "length"
    assert seen[0].last_user_text == "look at this"
    assert seen[0].max_tokens == 2
    no_user = SimRequest("openai", "m", [{"role": "system", "content": None}])
    assert no_user.last_user_text == ""


def test_model_port_binding_and_unknown_model_listener() -> None:
    with Simulator(models=[SimModel("a", reply="from a")]) as sim:
        url = sim.base_url("openai", "a") + "/chat/completions"
        # the model's own port answers as that model whatever the body names
        reply = httpx.post(url, json={**BODY, "model": "whatever"}).json()
        assert reply["choices"][0]["message"]["content"] == "from a"
        sim.add_model(SimModel("b", reply="from b"))
        url_b = sim.base_url("openai", "b") + "/chat/completions"
        assert httpx.post(url_b, json=BODY).json()["choices"][0]["message"]["content"] == "from b"
        with pytest.raises(ConfigurationError, match="no simulated model"):
            sim.base_url("openai", "zzz")
        sim.down()
        with pytest.raises(httpx.ConnectError):
            httpx.post(sim.base_url() + "/chat/completions", json=BODY)
        sim.up()
        sim.up()  # already up: no-op
        assert httpx.post(sim.base_url() + "/chat/completions", json=BODY).status_code == 200
        assert sim.seed == 0
        assert set(sim.models) == {"a", "b", "m"}
        sim.reset_stats()
        assert sim.stats().requests == 0
        assert sim.wait_idle(0.1)


def test_model_validation_messages() -> None:
    with pytest.raises(ConfigurationError, match="non-empty name"):
        SimModel("")
    with pytest.raises(ConfigurationError, match="ttft_ms"):
        SimModel("m", ttft_ms=-1)
    with pytest.raises(ConfigurationError, match="rpm"):
        SimModel("m", rpm=0)
    with pytest.raises(ConfigurationError, match=r"in \[0, 1\]"):
        SimModel("m", fault_rates={"rate_limit": 2})
    with pytest.raises(ConfigurationError, match="reply list is empty"):
        SimModel("m", reply=[])
    with pytest.raises(ConfigurationError, match="after_chunks"):
        Fault("stream_cut", after_chunks=-1)
    with pytest.raises(ConfigurationError, match="n must be"), Simulator() as sim:
        sim.fail_next(None, -1)


def test_bad_script_value_is_a_500_with_the_reason(llm_simulator: Simulator) -> None:
    llm_simulator.add_model(SimModel("m", reply=lambda request: 42))
    llm_simulator.add_model(SimModel("t", reply=[ToolCall("f", "{not json")]))
    response = httpx.post(llm_simulator.base_url() + "/chat/completions", json=BODY)
    assert response.status_code == 500
    assert "reply script gave 42" in response.json()["error"]["message"]
    tools = [{"type": "function", "function": {"name": "f"}}]
    call = httpx.post(
        llm_simulator.base_url() + "/chat/completions", json={**BODY, "model": "t", "tools": tools}
    ).json()
    assert call["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == "{not json"


def test_module_entry_point_shows_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aipowertools.testing", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "--config" in done.stdout


def test_every_request_is_logged_at_debug(
    llm_simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    llm_simulator.fail_next(None, 1, "server_error")
    with caplog.at_level("DEBUG", logger="aipowertools.testing"):
        httpx.post(llm_simulator.base_url() + "/chat/completions", json=BODY)
    (entry,) = [r for r in caplog.records if r.name == "aipowertools.testing"]
    assert "-> 500" in entry.getMessage()
    assert "fault server_error" in entry.getMessage()
    assert entry.sim_request.model == "m"  # type: ignore[attr-defined]
