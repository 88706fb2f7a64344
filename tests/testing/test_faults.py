"""Fault schedules, seeded fault rates, enforced rate limits, outages."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from aipowertools.testing import Fault, FaultKind, SimModel, Simulator
from aipowertools.testing._compat import ConfigurationError

BODY = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}


CLIENT = httpx.Client()  # one pool for the module: a fresh client per post costs ~50 ms


@pytest.fixture(scope="module", autouse=True)
def _close_client() -> Iterator[None]:
    yield
    CLIENT.close()


def post(sim: Simulator, body: dict | None = None, *, model: str | None = None) -> httpx.Response:
    return CLIENT.post(sim.base_url("openai", model) + "/chat/completions", json=body or BODY)


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_requests_over_the_limit_get_exactly_the_expected_429s() -> None:
    clock = FakeClock()
    with Simulator(models=[SimModel("m", rpm=5, rate_window_s=30)], clock=clock) as sim:
        statuses = [post(sim).status_code for _ in range(12)]
        assert statuses == [200] * 5 + [429] * 7
        stats = sim.stats()
        assert (stats.served, stats.rate_limited) == (5, 7)
        limited = post(sim)
        assert limited.headers["x-ratelimit-remaining-requests"] == "0"
        assert limited.headers["retry-after"] == "30"
        clock.now += 12.5
        assert post(sim).headers["retry-after"] == "18"  # rounded up: never retry too early
        assert limited.json()["error"]["code"] == "rate_limit_exceeded"


def test_sliding_window_frees_capacity_after_the_window() -> None:
    clock = FakeClock()  # steps of 0.25 s are exact in binary: no rounding at the edge
    with Simulator(models=[SimModel("m", rpm=2, rate_window_s=0.5)], clock=clock) as sim:
        assert [post(sim).status_code for _ in range(3)] == [200, 200, 429]
        clock.now += 0.25
        assert post(sim).status_code == 429  # both slots are still inside the window
        clock.now += 0.25  # the two slots leave the window exactly now
        assert [post(sim).status_code for _ in range(3)] == [200, 200, 429]
        assert sim.stats().rate_limited == 3


def test_token_limit_counts_prompt_and_completion_tokens() -> None:
    clock = FakeClock()
    model = SimModel("m", reply="ok", tpm=30, rate_window_s=30)
    with Simulator(models=[model], clock=clock) as sim:
        first = post(sim)
        used = first.json()["usage"]["total_tokens"]
        assert first.headers["x-ratelimit-remaining-tokens"] == str(30 - used)
        statuses = [post(sim).status_code for _ in range(5)]
        assert statuses.count(200) == 30 // used - 1
        assert statuses[-1] == 429


def test_same_seed_same_fault_sequence_different_seed_differs() -> None:
    def run(seed: int) -> list[int]:
        model = SimModel("m", fault_rates={"rate_limit": 0.3, FaultKind.SERVER_ERROR: 0.2})
        with Simulator(models=[model], seed=seed) as sim:
            return [post(sim).status_code for _ in range(40)]

    first, again, other = run(7), run(7), run(8)
    assert first == again
    assert first != other
    assert {429, 500, 200} <= set(first)


def test_schedule_and_fail_next_apply_in_order_and_per_model() -> None:
    with Simulator(models=[SimModel("m"), SimModel("other")]) as sim:
        sim.schedule("m", ["server_error", None, Fault("unavailable")])
        sim.fail_next(None, 1, "bad_gateway")
        assert [post(sim).status_code for _ in range(4)] == [500, 200, 503, 502]
        assert post(sim).status_code == 200
        sim.fail_next("other", 2, "authentication")
        other = {"model": "other", "messages": BODY["messages"]}
        assert [post(sim, other).status_code for _ in range(3)] == [401, 401, 200]
        sim.fail_next("m", 3)
        sim.clear_faults("m")
        sim.fail_next(None, 1)
        sim.clear_faults()
        assert post(sim).status_code == 200
        assert sim.stats().faults == {
            "server_error": 1,
            "unavailable": 1,
            "bad_gateway": 1,
            "authentication": 2,
        }


def test_prompt_over_the_window_is_context_length_exceeded() -> None:
    with Simulator(models=[SimModel("m", context_window=10)]) as sim:
        long = {"model": "m", "messages": [{"role": "user", "content": "word " * 50}]}
        response = post(sim, long)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "context_length_exceeded"
        assert post(sim).status_code == 200


def test_down_refuses_connections_per_model_and_comes_back() -> None:
    with Simulator(models=[SimModel("a"), SimModel("b")]) as sim:
        client = httpx.Client()
        url_a = sim.base_url("openai", "a") + "/chat/completions"
        assert client.post(url_a, json=BODY).status_code == 200  # keep-alive connection open
        sim.down("a")
        assert sim.is_down("a")
        with pytest.raises(httpx.TransportError):
            client.post(url_a, json=BODY)
        with pytest.raises(httpx.ConnectError):
            httpx.post(url_a, json=BODY)
        assert post(sim, model="b").status_code == 200  # the other deployment still serves
        sim.up("a")
        assert httpx.post(url_a, json=BODY).json()["model"] == "m"
        client.close()


def test_hang_is_released_when_the_client_gives_up() -> None:
    with Simulator(models=[SimModel("m")]) as sim:
        sim.fail_next("m", 1, "hang")
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(sim.base_url() + "/chat/completions", json=BODY, timeout=0.3)
        assert sim.wait_idle(30.0)  # returns as soon as the hang is released
        assert sim.stats().cancelled == 1


def test_api_key_is_enforced_when_set() -> None:
    with Simulator(models=[SimModel("m")], api_key="sk-right") as sim:
        url = sim.base_url() + "/chat/completions"
        assert httpx.post(url, json=BODY).status_code == 401
        ok = httpx.post(url, json=BODY, headers={"Authorization": "Bearer sk-right"})
        assert ok.status_code == 200


def test_bad_configuration_is_rejected_with_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="unknown fault kind"):
        Fault("explode")
    with pytest.raises(ConfigurationError, match="add up to"):
        SimModel("m", fault_rates={"rate_limit": 0.7, "server_error": 0.6})
    with pytest.raises(ConfigurationError, match="rate_window_s"):
        SimModel("m", rate_window_s=0)
    with pytest.raises(ConfigurationError, match="duplicate"):
        Simulator(models=[SimModel("m"), SimModel("m")])
    with Simulator(models=[SimModel("m")]) as sim:
        with pytest.raises(ConfigurationError, match="unknown flavor"):
            sim.base_url("gemini")
        with pytest.raises(ConfigurationError, match="no simulated model"):
            sim.fail_next("nope")
    with pytest.raises(ConfigurationError, match="not running"):
        sim.base_url()


def test_strict_models_answer_404_for_unknown_names() -> None:
    with Simulator(models=[SimModel("m")], strict_models=True) as sim:
        response = post(sim, {"model": "nope", "messages": BODY["messages"]})
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "model_not_found"
