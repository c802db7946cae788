"""Limits, fair turns and priorities, on a cluster of its own with several real
workers (tests/workflows/limits.py). How many calls ran at once is measured
from the start and finish times the table recorded, never from timings here."""

from __future__ import annotations

import time

import pytest
import redis
import requests
from click.testing import CliRunner

from bench.common import most_at_once as spans_at_once
from controlplane.cli import main
from controlplane.local_cluster import wait_until
from sdk.transport.keys import EPOCH_KEY, GATES_KEY
from tests.cluster import LEASE_SECONDS, Cluster, cluster_of, store_on
from tests.conftest import ROOT
from tests.workflows import limits

WORKFLOW = ROOT / "tests" / "workflows" / "limits.py"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with cluster_of(tmp_path_factory.mktemp("limits"), limits.runner, WORKFLOW) as cluster:
        # Gates let nothing in until the control plane has checked this new Redis.
        client = redis.Redis.from_url(cluster.redis_url)
        wait_until(lambda: client.exists(EPOCH_KEY), "Redis checked")
        yield cluster


@pytest.fixture()
def limited(cluster, store):
    yield cluster
    cluster.stop_workers()


@pytest.fixture(scope="module")
def store(cluster):
    with store_on(cluster) as store:
        yield store


def workers(cluster: Cluster, count: int) -> None:
    """Start `count` workers, and wait until the control plane knows the limits."""
    for _ in range(count):
        cluster.worker()
    wait_until(lambda: {"pair", "per_customer", "rated"} <= {
        limit["stage"] for limit in requests.get(f"{cluster.server_url}/api/limits", timeout=10).json()
    }, "the limits registered")


def most_at_once(records) -> int:
    """The most of `records` that ran at the same moment, by their recorded times."""
    return spans_at_once([(record.started_at, record.finished_at) for record in records])


def test_concurrency_two_with_four_workers_never_runs_three(limited, store):
    workers(limited, 4)
    handles = [limits.pair.submit(i) for i in range(12)]
    assert [handle.result(timeout=60) for handle in handles] == list(range(12))
    records = [store.get(handle.id) for handle in handles]
    assert most_at_once(records) == 2
    assert {record.gate for record in records} == {"pair"}


def test_a_key_limits_each_value_on_its_own(limited, store):
    workers(limited, 3)
    handles = [limits.per_customer.submit(customer, i) for i in range(3) for customer in ("a", "b")]
    assert sorted(tuple(handle.result(timeout=60)) for handle in handles) == sorted(
        (customer, i) for i in range(3) for customer in ("a", "b"))
    records = [store.get(handle.id) for handle in handles]
    for customer in ("a", "b"):
        assert most_at_once([r for r in records if r.arguments.args[0] == customer]) == 1
    assert most_at_once(records) == 2  # both customers at once


def test_a_rate_spreads_starts_over_its_periods(limited, store):
    workers(limited, 2)
    handles = [limits.rated.submit(i) for i in range(30)]
    assert [handle.result(timeout=60) for handle in handles] == list(range(30))
    starts = sorted(store.get(handle.id).started_at.timestamp() for handle in handles)
    assert starts[-1] - starts[0] >= 2.5  # one each 0.1 s (a few at once when looked at late)
    assert starts[-1] - starts[0] < 10
    for i, start in enumerate(starts):  # never more than ten close together
        assert sum(1 for other in starts[i:] if other - start < 0.5) <= 10


def test_other_keys_take_turns_with_a_long_queue(limited, store):
    workers(limited, 1)
    with limits.runner.batch():
        many = [limits.per_customer.submit("A", i, 0) for i in range(200)]
    few = [limits.per_customer.submit("B", i, 0) for i in range(5)]
    for handle in few + many:
        handle.result(timeout=120)
    a_starts = sorted(store.get(handle.id).started_at for handle in many)
    assert max(store.get(handle.id).started_at for handle in few) < a_starts[29]
    client = redis.Redis.from_url(limited.redis_url, decode_responses=True)
    assert client.zscore(GATES_KEY, 'per_customer:"A"') is None  # nothing held any more


def test_a_higher_priority_starts_first_on_a_busy_worker(limited, store):
    workers(limited, 1)
    busy = limits.plain.submit("busy", 1.5)
    wait_until(lambda: store.get(busy.id).status == "running", "the worker busy")
    low = [limits.plain.submit(f"low{i}") for i in range(3)]
    high = [limits.plain.options(priority=5).submit(f"high{i}") for i in range(3)]
    middle = limits.plain.options(priority=2).submit("middle")
    for handle in low + high + [middle]:
        handle.result(timeout=60)
    order = sorted(low + high + [middle], key=lambda handle: store.get(handle.id).started_at)
    assert [h.result() for h in order] == ["high0", "high1", "high2", "middle", "low0", "low1", "low2"]
    assert store.get(high[0].id).priority == 5


def test_a_limited_parent_waiting_on_its_own_stage_completes(limited):
    workers(limited, 1)
    assert limits.nested(3) == 3


def test_a_limited_chain_that_sleeps_comes_back_without_waiting_on_itself(limited):
    workers(limited, 1)
    assert limits.sleeps_inside(2) == 2


def test_a_killed_worker_gives_its_slot_back_within_a_lease(limited, store, tmp_path):
    first = limited.worker()
    workers(limited, 0)
    log = tmp_path / "slot"
    holding = limits.holds_slot.submit(str(log), 60)  # on the only worker
    try:
        wait_until(log.exists, "the slot taken")
        limited.worker()  # a second one, idle: the limit alone holds the next call back
        waiting = limits.holds_slot.submit(str(tmp_path / "next"), 0.1)
        wait_until(lambda: waits_of(limited, waiting.id)["reason"]["kind"] == "limit", "held back")
        first.kill()
        first.wait()
        killed_at = time.time()
        assert waiting.result(timeout=30) == "done"
        assert store.get(waiting.id).started_at.timestamp() - killed_at < 3 * LEASE_SECONDS + 2
    finally:  # its next attempt would hold the slot for a minute
        requests.post(f"{limited.server_url}/api/call/{holding.id}/cancel", timeout=10)


def test_cancelled_calls_leave_the_gate_and_their_slot_to_the_next(limited, store, tmp_path):
    workers(limited, 1)
    log = tmp_path / "slot"
    running = limits.holds_slot.submit(str(log), 60)
    wait_until(log.exists, "the slot taken")
    held = [limits.holds_slot.submit(str(tmp_path / f"held{i}"), 0.1) for i in range(3)]
    for handle in (held[0], running):  # a held call, then the one holding the slot
        requests.post(f"{limited.server_url}/api/call/{handle.id}/cancel", timeout=10).raise_for_status()
    assert [handle.result(timeout=30) for handle in held[1:]] == ["done", "done"]
    assert store.get(held[0].id).status == "cancelled"


def test_redis_restarted_empty_keeps_the_limits(limited, store):
    workers(limited, 3)
    handles = [limits.pair.submit(i, 1.0) for i in range(6)]
    wait_until(lambda: sum(store.get(h.id).status == "running" for h in handles) == 2, "two running")
    limited.restart_redis_empty()
    assert sorted(handle.result(timeout=90) for handle in handles) == list(range(6))
    assert most_at_once([store.get(handle.id) for handle in handles]) <= 2


def test_the_limits_endpoint_counts_running_and_waiting(limited):
    workers(limited, 3)
    parent = limits.waits_on_pair.submit(4)
    url = f"{limited.server_url}/api/limits"

    def pair_counts():
        listed = {limit["stage"]: limit for limit in requests.get(url, timeout=10).json()}
        return listed["pair"]["gates"]

    wait_until(lambda: pair_counts() == [{"key": None, "running": 2, "waiting": 2}], "two of four running")
    shown = CliRunner().invoke(main, ["limits", "--server-url", limited.server_url, "list"])
    assert shown.exit_code == 0, shown.output
    assert "pair  concurrency 2\n  all calls  running 2  waiting 2\n" in shown.output
    listed = {limit["stage"]: limit for limit in requests.get(url, timeout=10).json()}
    assert listed["per_customer"]["limit"] == "concurrency 1, per customer"
    assert listed["rated"]["rate"] == "10/1s"
    assert parent.result(timeout=60) == [0, 1, 2, 3]


def test_a_bad_key_value_is_refused_at_the_call_site_and_over_rest(limited):
    workers(limited, 1)
    with pytest.raises(TypeError, match="'customer' is the key of the stage's limit"):
        limits.per_customer.submit(1.5, 0)
    with pytest.raises(TypeError, match="of at most 200 characters"):
        limits.per_customer.submit("x" * 300, 0)
    answer = requests.post(f"{limited.server_url}/api/call", timeout=10, json={
        "stage": "per_customer", "arguments": {"args": [["a"], 0]}})
    assert answer.status_code == 400
    assert "give a string or an integer" in answer.json()["message"]


def test_bad_declarations_are_refused_at_decoration():
    runner = limits.runner
    with pytest.raises(ValueError, match="concurrency must be a whole number"):
        runner.stage(concurrency=0)(lambda_stage)
    with pytest.raises(ValueError, match="rate must read like"):
        runner.stage(rate="fast")(lambda_stage)
    with pytest.raises(TypeError, match="key='user' must name a parameter of lambda_stage"):
        runner.stage(concurrency=1, key="user")(lambda_stage)
    with pytest.raises(TypeError, match="give concurrency= or rate= with it"):
        runner.stage(key="x")(lambda_stage)
    assert "lambda_stage" not in runner.stages


def lambda_stage(x):
    return x


def waits_of(cluster: Cluster, call_id: str) -> dict:
    return requests.get(f"{cluster.server_url}/api/call/{call_id}/waits", timeout=10).json()


def test_why_names_the_calls_holding_a_limit(limited, store, tmp_path):
    workers(limited, 3)
    parent = limits.waits_on_pair.submit(4)
    wait_until(lambda: [(g["status"], g["count"]) for g in waits_of(limited, parent.id)["below"]]
               in ([("running", 2), ("pending", 2)], [("pending", 2), ("running", 2)]),
               "two children running, two held back")
    chain = waits_of(limited, parent.id)
    held = next(group for group in chain["below"] if group["status"] == "pending")
    running = next(group for group in chain["below"] if group["status"] == "running")
    assert held["count"] == 2 and running["count"] == 2
    assert held["reason"]["kind"] == "limit"
    assert sorted(held["reason"]["holders"]) == sorted(running["ids"])
    assert "2 of 2 slots held by" in held["reason"]["text"]
    assert parent.result(timeout=60) == [0, 1, 2, 3]


def test_why_says_until_when_a_rate_holds_a_call_back(limited, store):
    # No worker: the first goes to the queue, the rate holds the rest back (one
    # each 6 s, so this test reads every reason before the next is let in).
    requests.post(f"{limited.server_url}/api/limits", timeout=10,
                  json={"limits": [{"stage": "rated", "rate_count": 10, "rate_seconds": 60}]})
    handles = [limits.rated.submit(i) for i in range(12)]
    reasons = [waits_of(limited, handle.id)["reason"] for handle in handles]
    assert [reason["kind"] for reason in reasons] == ["queued"] + ["rate"] * 11
    assert "held back by its rate (10 per 60 s)" in reasons[-1]["text"]
    assert reasons[-1]["until"] is not None
    workers(limited, 1)  # it registers the stage's own limit, 10 per second, again
    assert [handle.result(timeout=30) for handle in handles] == list(range(12))
