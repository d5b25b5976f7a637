"""The gate's batch collector (dfdetect/serve/batching.py): asleep on an empty queue, no wait for
company when batch_timeout is 0, LitServe's timeout and stop semantics kept."""

from __future__ import annotations

import threading
import time
from queue import Queue
from types import SimpleNamespace

import pytest
from litserve.loops.base import _SENTINEL_VALUE, _StopLoopError
from litserve.utils import LitAPIStatus

from dfdetect.serve import batching
from dfdetect.serve.batching import BlockingBatchedLoop

pytestmark = pytest.mark.unit


class Transport:
    def __init__(self):
        self.sent = []

    def send(self, item, consumer_id):
        self.sent.append((consumer_id, item))


def api(max_batch_size=8, batch_timeout=0.0, request_timeout=30.0):
    return SimpleNamespace(
        max_batch_size=max_batch_size,
        batch_timeout=batch_timeout,
        request_timeout=request_timeout,
        stream=False,
    )


def request(i, age=0.0):
    return (0, f"uid{i}", time.monotonic() - age, {"n": i})


def test_takes_what_is_queued_up_to_the_batch_size_without_waiting():
    q = Queue()
    for i in range(5):
        q.put(request(i))
    t0 = time.monotonic()
    payloads, timed_out = BlockingBatchedLoop().get_batch_requests(api(max_batch_size=3), q, Transport())
    assert time.monotonic() - t0 < 0.1
    assert [p[1] for p in payloads] == ["uid0", "uid1", "uid2"]
    assert timed_out == []
    assert q.qsize() == 2


def test_a_lone_request_is_not_held_for_company_when_batch_timeout_is_zero():
    q = Queue()
    q.put(request(0))
    t0 = time.monotonic()
    payloads, _ = BlockingBatchedLoop().get_batch_requests(api(batch_timeout=0.0), q, Transport())
    assert [p[1] for p in payloads] == ["uid0"]
    assert time.monotonic() - t0 < 0.05


def test_with_a_batch_timeout_it_waits_for_more_until_the_timeout_after_the_first():
    q = Queue()
    q.put(request(0))
    late = threading.Timer(0.05, lambda: q.put(request(1)))
    late.start()
    t0 = time.monotonic()
    payloads, _ = BlockingBatchedLoop().get_batch_requests(api(batch_timeout=0.3), q, Transport())
    elapsed = time.monotonic() - t0
    late.join()
    assert [p[1] for p in payloads] == ["uid0", "uid1"]
    assert 0.25 <= elapsed < 0.6


def test_a_full_batch_returns_before_the_timeout():
    q = Queue()
    for i in range(2):
        q.put(request(i))
    t0 = time.monotonic()
    payloads, _ = BlockingBatchedLoop().get_batch_requests(
        api(max_batch_size=2, batch_timeout=5.0), q, Transport()
    )
    assert len(payloads) == 2
    assert time.monotonic() - t0 < 0.5


def test_an_empty_queue_sleeps_instead_of_spinning(monkeypatch):
    monkeypatch.setattr(batching, "IDLE_WAIT_S", 0.4)
    q = Queue()
    wall, cpu = time.monotonic(), time.thread_time()
    payloads, timed_out = BlockingBatchedLoop().get_batch_requests(api(batch_timeout=0.0), q, Transport())
    wall, cpu = time.monotonic() - wall, time.thread_time() - cpu
    assert (payloads, timed_out) == ([], [])
    assert wall >= 0.35
    assert cpu < 0.1 * wall  # LitServe 0.2.19 returns at once and calls again: a spin


def test_the_first_request_is_taken_as_soon_as_it_arrives():
    q = Queue()
    threading.Timer(0.1, lambda: q.put(request(0))).start()
    t0 = time.monotonic()
    payloads, _ = BlockingBatchedLoop().get_batch_requests(api(batch_timeout=0.0), q, Transport())
    assert [p[1] for p in payloads] == ["uid0"]
    assert 0.08 <= time.monotonic() - t0 < 0.5


def test_a_request_past_the_server_timeout_is_set_aside():
    q = Queue()
    q.put(request(0, age=10.0))
    q.put(request(1))
    payloads, timed_out = BlockingBatchedLoop().get_batch_requests(api(request_timeout=5.0), q, Transport())
    assert timed_out == [(0, "uid0")]
    assert [p[1] for p in payloads] == ["uid1"]


def test_the_sentinel_stops_the_loop():
    q = Queue()
    q.put(_SENTINEL_VALUE)
    with pytest.raises(_StopLoopError):
        BlockingBatchedLoop().get_batch_requests(api(), q, Transport())


def test_each_request_is_reported_started_when_workers_restart():
    loop = BlockingBatchedLoop()
    loop._restart_workers = True  # LitServe sends START only then (the server's restart bookkeeping)
    q, transport = Queue(), Transport()
    for i in range(2):
        q.put(request(i))
    loop.get_batch_requests(api(), q, transport)
    assert [(uid, item[1]) for _, (uid, item) in transport.sent] == [
        ("uid0", LitAPIStatus.START),
        ("uid1", LitAPIStatus.START),
    ]


@pytest.mark.parametrize("size, blocking", [(1, False), (8, True)])
def test_the_gate_uses_the_blocking_collector_only_when_it_batches(size, blocking):
    from dfdetect.serve.gate_api import GateAPI

    gate = GateAPI("{}", b"k" * 32, max_batch_size=size, batch_timeout=0.0, api_path="/x")
    assert isinstance(gate.loop, BlockingBatchedLoop) is blocking
