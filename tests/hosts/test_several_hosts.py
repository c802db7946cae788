"""callplane on several hosts (tests.hosts.deployment): 5,000 calls through a
load balancer and two control planes, on three worker hosts; a worker host and
then a control plane host are cut off the network mid-run. Every call finishes
and is recorded once; the cut worker's calls run again elsewhere after their
leases; the other control plane takes over the duties and the reports; the cut
hosts coming back change nothing that was recorded (fencing)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from controlplane.local_cluster import wait_until
from controlplane.store import make_engine
from controlplane.tables import call_attempts, stage_runs
from sdk.transport import Transport
from sdk.transport.duties import Duties
from tests.hosts.deployment import LEASE_SECONDS, PORT

pytestmark = pytest.mark.hosts

CALLS = 5000
NAP_SECONDS = 0.004
DUTIES = ("clock", "recovery")
#: How long the duties are watched after a control plane is cut off: its leases
#: end, and PostgreSQL drops its connection (and its locks) within seconds.
TAKE_OVER_SECONDS = LEASE_SECONDS * 6


def _executions(log: Path) -> int:
    return len(log.read_text().split()) if log.exists() else 0


def _pid(holder: str | None) -> str | None:
    """The process a duty's holder names (host:pid:nonce)."""
    return None if holder is None else holder.split(":")[1]


def _holders(duties: Duties, seconds: float) -> list[tuple[float, dict[str, str | None]]]:
    """Who held each duty, sampled for `seconds`: each change and when (seconds from now)."""
    start, timeline = time.monotonic(), []
    while (at := time.monotonic() - start) < seconds:
        holders = {duty: duties.holder(duty) for duty in DUTIES}
        if not timeline or timeline[-1][1] != holders:
            timeline.append((round(at, 2), holders))
        time.sleep(0.05)
    return timeline


def _rows(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(stage_runs)).scalar_one()


def _snapshot(engine: sa.Engine) -> tuple[list, list]:
    """Every call's recorded state, and every earlier attempt."""
    with engine.connect() as conn:
        calls = conn.execute(sa.select(
            stage_runs.c.id, stage_runs.c.status, stage_runs.c.attempt, stage_runs.c.worker,
            stage_runs.c.result, stage_runs.c.finished_at).order_by(stage_runs.c.id)).all()
        attempts = conn.execute(sa.select(call_attempts).order_by(
            call_attempts.c.call_id, call_attempts.c.attempt)).all()
    return calls, attempts


def test_a_run_survives_a_worker_host_and_a_control_plane_host_cut_off(
        deployment, tmp_path, report_figure):
    log, out = tmp_path / "executions", tmp_path / "results.json"
    client = deployment.run_on_client("tests.hosts.client", str(CALLS), str(NAP_SECONDS),
                                      str(log), str(out))
    # The workers start once every call is queued, so that the worker cut off
    # holds a call then (with the queue run dry it might have waited for one).
    engine = make_engine(deployment.local_database_url)
    wait_until(lambda: _rows(engine) == CALLS, "every call made", client, 120)
    workers = [deployment.worker_host(name) for name in ("w1", "w2", "w3")]
    wait_until(lambda: _executions(log) >= CALLS // 5, "a fifth of the calls", client, 120)
    cut_worker = workers[0]
    cut_worker.cut()
    wait_until(lambda: _executions(log) >= CALLS // 2, "half of the calls", client, 120)
    cut_plane = deployment.control_planes[0]
    cut_plane.cut()
    # The control plane still on the network takes the duties over once the cut
    # one's leases end (and its recorder is past any lock the cut one held).
    survivor = deployment.pids(deployment.control_planes[1].name)
    timeline = _holders(Transport.from_url(deployment.local_redis_url).duties, TAKE_OVER_SECONDS)
    for duty in DUTIES:
        taken = [at for at, holders in timeline if _pid(holders[duty]) in survivor]
        assert taken, f"{duty} never taken over by the control plane left: {timeline}"
        assert all(_pid(holders[duty]) in survivor | {None}
                   for at, holders in timeline if at >= taken[0]), timeline

    client.wait(timeout=400)
    assert client.returncode == 0, (deployment.logs / "tests.hosts.client.log").read_text()[-3000:]
    answer = json.loads(out.read_text())
    assert answer["results"] == list(range(CALLS))
    calls, attempts = _snapshot(engine)
    assert len(calls) == CALLS and {call.status for call in calls} == {"succeeded"}
    assert {call.id for call in calls} == set(answer["ids"])
    # What the cut worker had taken ran again on another worker, as its next attempt.
    cut_name = deployment.processes["w1"].worker_name
    lost = [attempt for attempt in attempts if attempt.worker == cut_name]
    assert lost and {attempt.status for attempt in lost} == {"lost"}
    assert all(call.worker != cut_name for call in calls if call.id in {a.call_id for a in lost})

    # The cut hosts come back: their late reports and claims change nothing.
    cut_worker.plug()
    cut_plane.plug()
    wait_until(lambda: deployment.client.answers(
        f"http://{cut_plane.address}:{PORT}/ready"), "the cut control plane back", timeout=60)
    time.sleep(LEASE_SECONDS * 3)
    assert _snapshot(engine) == (calls, attempts)
    engine.dispose()
    report_figure(f"{CALLS} calls over 3 worker hosts and 2 control planes, one of each cut "
                  f"off mid-run: {answer['seconds']:.1f} s; {len(lost)} attempt(s) of the cut "
                  f"worker ran again elsewhere")
