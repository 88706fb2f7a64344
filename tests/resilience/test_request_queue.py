"""``RequestQueue``: the roadmap's enqueue / dequeue / average wait / throughput."""

import threading

import pytest

from aipowertools.core.errors import ConfigurationError
from aipowertools.resilience import RequestQueue, RequestQueueStats


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_priority_then_fifo_and_none_when_empty():
    q: RequestQueue[str] = RequestQueue(aging_seconds=0, clock=Clock())
    assert q.dequeue() is None
    q.enqueue("low", priority="low")
    q.enqueue("n1")
    q.enqueue("n2", priority="normal")
    q.enqueue("crit", priority="critical")
    q.enqueue("num", priority=0.5)
    assert len(q) == 5
    assert [q.dequeue() for _ in range(6)] == ["crit", "num", "n1", "n2", "low", None]
    assert len(q) == 0


def test_aging_lets_a_waiting_low_item_overtake_new_high_ones():
    clock = Clock()
    q: RequestQueue[str] = RequestQueue(aging_seconds=10, clock=clock)
    q.enqueue("old-low", priority="low")  # 2.0
    clock.now = 25.0  # aged by 2.5 steps: effective -0.5
    q.enqueue("new-high", priority="high")  # 0.0
    assert q.dequeue() == "old-low"
    assert q.dequeue() == "new-high"


def test_average_wait_throughput_and_estimated_wait():
    clock = Clock()
    q: RequestQueue[int] = RequestQueue(window=60, clock=clock)
    assert q.stats() == RequestQueueStats(0, 0, 0, 0.0, 0.0, None)
    for i in range(4):
        q.enqueue(i)
    assert q.stats().estimated_wait_s is None  # no throughput measured yet
    clock.now = 2.0
    q.dequeue()  # waited 2
    clock.now = 4.0
    q.dequeue()  # waited 4
    stats = q.stats()
    assert (stats.length, stats.enqueued, stats.dequeued) == (2, 4, 2)
    assert stats.average_wait_s == pytest.approx(3.0)
    assert stats.throughput_per_s == pytest.approx(0.5)  # 2 in the 4 s since creation
    assert stats.estimated_wait_s == pytest.approx(4.0)
    clock.now = 100.0  # both dequeues left the 60 s window
    stats = q.stats()
    assert (stats.average_wait_s, stats.throughput_per_s, stats.estimated_wait_s) == (
        0.0,
        0.0,
        None,
    )
    q.dequeue()  # waited 100
    clock.now = 120.0
    stats = q.stats()
    assert stats.average_wait_s == pytest.approx(100.0)
    assert stats.throughput_per_s == pytest.approx(1 / 60)


def test_threads_never_lose_or_duplicate_items():
    q: RequestQueue[int] = RequestQueue()
    for i in range(2000):
        q.enqueue(i)
    taken: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        while (item := q.dequeue()) is not None:
            with lock:
                taken.append(item)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == list(range(2000))
    assert q.stats().dequeued == 2000


@pytest.mark.parametrize(
    "kwargs", [{"aging_seconds": -1}, {"aging_seconds": float("nan")}, {"window": 0}]
)
def test_bad_config(kwargs):
    with pytest.raises(ConfigurationError):
        RequestQueue(**kwargs)


def test_bad_priority():
    with pytest.raises(ConfigurationError, match="unknown priority"):
        RequestQueue().enqueue("x", priority="urgent")
