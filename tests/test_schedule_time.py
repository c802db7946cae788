"""A cron schedule on a real control plane whose clock the test sets
(tests/served.py): a worker process registers it from its workflow file; with
the clock moved to just before its fire time, one call is made at that time and
runs; with the clock moved past the next fire time by an hour, that fire is made
once, late, and the log and the API say how late."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests
import sqlalchemy as sa

from controlplane.creation import call_id_of
from controlplane.local_cluster import wait_until
from controlplane.schedules import fire_key
from controlplane.tables import stage_runs
from sdk.records import CallRequest
from tests.conftest import ROOT
from tests.served import ServedPlane, served_plane

NIGHTLY = ROOT / "tests" / "workflows" / "nightly.py"
#: A short lease, so the worker registers its schedule again every 2 s.
LEASE = {"CALLPLANE_LEASE_SECONDS": "2"}
PARIS = ZoneInfo("Europe/Paris")


def next_night(fire: datetime) -> datetime:
    """03:00 in Paris the day after `fire` (23 to 25 hours on, across a clock change)."""
    local = fire.astimezone(PARIS)
    return datetime.combine(local.date() + timedelta(days=1), local.timetz()).astimezone(fire.tzinfo)


@pytest.fixture()
def plane(tmp_path):
    with served_plane(tmp_path, LEASE) as plane:
        yield plane


def nightly(plane: ServedPlane) -> dict:
    (schedule,) = requests.get(f"{plane.url}/api/schedules", timeout=10).json()
    assert schedule["name"] == "nightly"
    return schedule


def fire_call(fire: datetime) -> str:
    """The id of the call of the nightly schedule's fire at `fire`."""
    return call_id_of(CallRequest(stage="report", idempotency_key=fire_key("nightly", fire)))


def reports(plane: ServedPlane) -> list[str]:
    with plane.store.engine.connect() as conn:
        return list(conn.execute(sa.select(stage_runs.c.id).where(stage_runs.c.stage == "report")
                                 .order_by(stage_runs.c.created_at)).scalars())


def finished(plane: ServedPlane, call_id: str) -> dict:
    answer = requests.get(f"{plane.url}/api/call/{call_id}?wait=30", timeout=40)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_cron_schedule_fires_at_its_time_on_a_served_control_plane(plane, caplog):
    caplog.set_level(logging.WARNING, logger="controlplane.schedules")
    plane.worker(NIGHTLY)
    wait_until(lambda: requests.get(f"{plane.url}/api/schedules", timeout=10).json(),
               "the worker's schedule registered")
    fire = datetime.fromisoformat(nightly(plane)["next_fire_at"])
    assert (fire.astimezone(PARIS).hour, fire.astimezone(PARIS).minute) == (3, 0)
    assert fire > plane.clock()

    # Just before its time: registered again at that time, nothing made yet.
    plane.clock.move_to(fire - timedelta(seconds=6))
    wait_until(lambda: nightly(plane)["active"], "the schedule registered at the new time")
    assert reports(plane) == []
    first = fire_call(fire)
    wait_until(lambda: reports(plane), "the fire's call", timeout=30)
    assert reports(plane) == [first]
    made = plane.store.get(first)
    assert made.created_at + plane.clock.offset >= fire, "made before its time"
    answer = finished(plane, first)
    assert (answer["status"], answer["result"], answer["parent_stage_run_id"]) == (
        "succeeded", "report of eu", None)
    schedule = nightly(plane)
    following = next_night(fire)
    assert datetime.fromisoformat(schedule["next_fire_at"]) == following
    assert (schedule["last_call_id"], schedule["last_late_seconds"]) == (first, None)
    assert datetime.fromisoformat(schedule["last_fire_at"]) == fire

    # The clock an hour past the next fire (as after a control plane away for a
    # day): that fire is made once, late, and says so.
    plane.clock.move_to(following + timedelta(hours=1))
    second = fire_call(following)
    wait_until(lambda: nightly(plane)["last_call_id"] == second, "the late fire", timeout=30)
    assert finished(plane, second)["result"] == "report of eu"
    schedule = nightly(plane)
    assert 3600 <= schedule["last_late_seconds"] < 3600 + 30
    assert datetime.fromisoformat(schedule["next_fire_at"]) == next_night(following)
    assert reports(plane) == [first, second]  # one call per fire time
    (said,) = [r.getMessage() for r in caplog.records if "late" in r.getMessage()]
    assert said.startswith(f"schedule 'nightly': its fire of {following.isoformat()} "
                           "was made 36") and said.endswith(f"s late (call {second})")
