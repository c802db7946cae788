"""Futures on real workers: submit, map, gather, as_completed, timeouts, handles
shared by threads; two workers share a map; a blocked call shows what it waits
on; waits and idle workers outlive redis-py's 5 s default socket timeout."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from controlplane.local_cluster import stop
from sdk.caller import RemoteCaller
from sdk.client import ControlPlaneClient
from sdk.context import CallContext
from sdk.errors import StageFailed
from sdk.handles import CallHandle
from tests.conftest import start_parallel_workers
from tests.workflows import parallel


@pytest.fixture(scope="module")
def pair(server_url, redis_url, env):
    workers = start_parallel_workers(server_url, redis_url, env, 2)
    yield workers
    for worker in workers:
        stop(worker)


def test_submit_returns_a_handle_at_once(pair, parallel_runner):
    handle = parallel.nap.submit(1.0, "x")
    assert handle.call.status == "pending"  # submit returned without waiting for the call
    assert isinstance(handle, CallHandle) and len(handle.id) == 32
    assert not handle.done()
    with pytest.raises(TimeoutError):
        handle.result(timeout=0.1)
    assert handle.result(timeout=30) == "x"
    assert handle.done() and handle.exception() is None


def test_map_from_a_client_keeps_order_and_creates_in_batches(pair, parallel_runner, store):
    assert parallel.square.map(range(600)) == [i * i for i in range(600)]


def test_map_raises_the_first_failure_after_all_finished(pair, parallel_runner):
    with pytest.raises(StageFailed) as failure:
        parallel.fail_on.map(range(5), [2] * 5)
    assert failure.value.remote_message == "2 is bad"
    handles = [parallel.fail_on.submit(i, 1) for i in range(3)]
    results = parallel_runner.gather(*handles, return_exceptions=True)
    assert results[0] == 0 and results[2] == 2
    assert isinstance(results[1], StageFailed)
    assert isinstance(handles[1].exception(), StageFailed)


def test_gather_and_as_completed_inside_a_stage(pair, parallel_runner):
    assert parallel.submit_and_gather(30) == [i * i for i in range(30)]
    assert parallel.first_finished(1.5) == ["fast", "slow"]


def test_as_completed_from_a_client(pair, parallel_runner):
    slow, fast = parallel.nap.submit(1.5, "slow"), parallel.nap.submit(0, "fast")
    assert [h.result() for h in parallel_runner.as_completed([slow, fast])] == ["fast", "slow"]


def test_a_handle_read_from_many_threads_prints_once(pair, parallel_runner, store):
    handle = parallel.handle_from_threads.submit(4)
    assert handle.result(timeout=30) == ["shared"] * 4
    assert store.get(handle.id).output.count("nap shared") == 1


def test_a_map_of_1000_uses_both_workers(pair, parallel_runner, store):
    handle = parallel.map_squares.submit(1000)
    assert handle.result(timeout=120) == sum(i * i for i in range(1000))
    children = [row for row in store.tree(handle.id) if row.id != handle.id]
    assert len(children) == 1000
    assert {row.worker for row in children} == {w.worker_name for w in pair}
    assert {row.run_mode for row in children} == {"inline", "dispatched"}


def test_long_idle_and_long_waits_outlive_socket_timeouts(pair, parallel_runner, server_url):
    """redis-py 8 cuts reads after 5 s by default: idle workers, a client's long
    poll and a parent waiting on a child must all survive longer than that."""
    time.sleep(6)  # both workers idle on their blocking pops and subscriptions
    handle = parallel.wait_on_nap.submit(6)
    deadline = time.monotonic() + 10
    waiting_on = []
    while not waiting_on and time.monotonic() < deadline:
        waiting_on = requests.get(f"{server_url}/api/call/{handle.id}", timeout=5).json()["waiting_on"]
        time.sleep(0.1)
    assert [(c["stage"], c["status"]) for c in waiting_on] == [("nap", "running")]
    assert waiting_on[0]["worker"] in {w.worker_name for w in pair}
    assert handle.result() == "child"
    finished = requests.get(f"{server_url}/api/call/{handle.id}", timeout=5).json()
    assert finished["status"] == "succeeded" and finished["waiting_on"] == []


class CountingClient(ControlPlaneClient):
    """The real client, counting the create requests it sends."""

    def __init__(self, server_url: str):
        super().__init__(server_url)
        self.creates = 0

    def create_calls(self, requests):
        self.creates += 1
        return super().create_calls(requests)


def counting_runner(server_url: str) -> CountingClient:
    client = CountingClient(server_url)
    parallel.runner.attach(client, RemoteCaller(client), CallContext())
    return client


def test_submits_from_many_threads_share_requests_and_each_returns_once_its_call_exists(
        pair, server_url, store):
    client = counting_runner(server_url)
    handles: dict[tuple[int, int], CallHandle] = {}

    def submit_many(thread: int) -> None:
        for i in range(20):
            handle = parallel.square.submit(thread * 100 + i)
            assert store.get(handle.id) is not None  # the row exists when submit() returns
            handles[(thread, i)] = handle

    threads = [threading.Thread(target=submit_many, args=(t,)) for t in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(handles) == 320 and len({h.id for h in handles.values()}) == 320
    assert client.creates < 320  # concurrent submits went out together
    assert {key: h.result(30) for key, h in handles.items()} == {
        (t, i): (t * 100 + i) ** 2 for t, i in handles}


def test_submits_in_a_batch_block_are_created_together_by_its_end(pair, server_url, store):
    client = counting_runner(server_url)
    with parallel.runner.batch():
        handles = [parallel.square.submit(i) for i in range(1200)]
        assert client.creates == 2  # one request per 500 so far; the rest wait for the end
        assert store.get(handles[-1].id) is None
    assert client.creates == 3 and all(store.get(h.id) is not None for h in handles[::50])
    assert parallel.runner.gather(*handles) == [i * i for i in range(1200)]


def test_a_wait_in_a_batch_block_creates_first_and_an_error_still_creates_what_was_submitted(
        pair, server_url, store):
    counting_runner(server_url)
    with parallel.runner.batch():
        first = parallel.square.submit(3)
        assert first.result(30) == 9  # created before the wait: no hang
    with pytest.raises(RuntimeError, match="the caller's own error"), parallel.runner.batch():
        late = parallel.square.submit(4)
        raise RuntimeError("the caller's own error")
    assert store.get(late.id) is not None and late.result(30) == 16
