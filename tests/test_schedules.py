"""Schedules: workers register their workflow file's schedules; pause, resume and
trigger; a cron schedule's fires with an injected clock; bad schedules are
refused and change nothing. (One call per fire time with two control planes:
tests/test_schedule_holders.py; a cron schedule on a served control plane:
tests/test_schedule_time.py.)"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import fakeredis
import pytest
import requests
import sqlalchemy as sa
from click.testing import CliRunner

from controlplane.cli import main
from controlplane.creation import CallCreation, call_id_of
from controlplane.dispatch import Dispatch
from controlplane.local_cluster import (
    environment_with,
    start_worker,
    stop,
    wait_until,
)
from controlplane.reading import CallReading
from controlplane.schedules import ScheduleService, fire_key
from controlplane.store import Store, make_engine
from controlplane.store.schedules import ScheduleRows
from controlplane.tables import stage_runs
from sdk.records import Arguments, CallRequest
from sdk.schedules import ScheduleDefinition
from sdk.transport import Transport
from tests.conftest import ROOT, TEST_COMMIT, fresh_database

TIMED = ROOT / "tests" / "workflows" / "timed.py"


def beats(database_url: str) -> list[str]:
    """The ids of the scheduled stage's calls, in the order they were made."""
    engine = make_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(stage_runs.c.id).where(stage_runs.c.stage == "beat")
                            .order_by(stage_runs.c.created_at)).scalars().all()
    engine.dispose()
    return rows


def test_pause_resume_and_trigger_from_the_cli(run, tmp_path):
    cluster = run
    worker = start_worker(cluster.server_url, cluster.redis_url, TIMED, "tests", TEST_COMMIT,
                          cluster.env, stdout=open(tmp_path / "worker.log", "w"),  # noqa: SIM115
                          stderr=subprocess.STDOUT)
    database, cli = cluster.env["DATABASE_URL"], CliRunner()
    url = ["--server-url", cluster.server_url]
    try:
        wait_until(lambda: beats(database), "a beat", timeout=30)
        assert cli.invoke(main, ["schedules", *url, "pause", "heartbeat"]).exit_code == 0
        time.sleep(1.5)  # a fire in flight when it paused may still be made
        paused = len(beats(database))
        time.sleep(2)
        assert len(beats(database)) == paused
        listed = cli.invoke(main, ["schedules", *url, "list"]).output
        assert "heartbeat  paused  beat  every 1s" in listed
        triggered = cli.invoke(main, ["schedules", *url, "trigger", "heartbeat"])
        call_id = triggered.output.strip()
        answer = requests.get(f"{cluster.server_url}/api/call/{call_id}?wait=20", timeout=30).json()
        assert (answer["stage"], answer["result"]) == ("beat", "tick")
        assert cli.invoke(main, ["schedules", *url, "resume", "heartbeat"]).exit_code == 0
        wait_until(lambda: len(beats(database)) >= paused + 3, "beats again", timeout=30)
        missing = cli.invoke(main, ["schedules", *url, "pause", "no-such"])
        assert missing.exit_code == 1 and "no schedule named 'no-such'" in missing.output
    finally:
        stop(worker)


def registered(server_url: str) -> list[dict]:
    """What registrations decide of each schedule (its fires move on by themselves:
    one an earlier test's worker registered may still be firing)."""
    fields = ("name", "stage", "arguments", "cron", "every_seconds", "timezone", "catch_up")
    return [{field: schedule[field] for field in fields}
            for schedule in requests.get(f"{server_url}/api/schedules", timeout=10).json()]


def test_bad_schedules_are_refused_and_change_nothing(run, tmp_path):
    cluster = run
    before = registered(cluster.server_url)
    for bad, words in [({"cron": "61 * * * *"}, "is not a cron expression"),
                       ({"every_seconds": 0}, "every must be 1 to"),
                       ({"cron": "* * * * *", "timezone": "Mars/Base"}, "no timezone 'Mars/Base'"),
                       ({}, "give cron= or every=")]:
        answer = requests.post(f"{cluster.server_url}/api/schedules", timeout=10, json={
            "schedules": [{"name": "ok-one", "stage": "beat", "every_seconds": 5},
                          {"name": "bad", "stage": "beat", **bad}]})
        assert answer.status_code == 422, answer.text
        assert words in str(answer.json()["errors"])
    assert registered(cluster.server_url) == before
    # In a workflow file, the same mistake stops the worker at once, saying why.
    broken = tmp_path / "broken.py"
    broken.write_text(TIMED.read_text().replace("every=1", 'cron="0 25 * * *"'))
    started = subprocess.run(
        [sys.executable, "-m", "sdk.worker", "--server-url", cluster.server_url, "--repo-name", "tests",
         "--workflow-file", str(broken), "--commit-hash", TEST_COMMIT],
        check=False, capture_output=True, text=True, timeout=60, env=environment_with(cluster.env))
    assert started.returncode != 0
    assert "'0 25 * * *' is not a cron expression" in started.stderr


class Clock:
    """The time a test says it is."""

    def __init__(self):
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture()
def service(tmp_path):
    """The control plane's schedules on a real database, with a clock the test sets."""
    with fresh_database(tmp_path) as url:
        store = Store(make_engine(url))
        transport = Transport(fakeredis.FakeRedis(decode_responses=True))
        creation = CallCreation(store, CallReading(store, transport), Dispatch(transport), 30)
        clock = Clock()
        yield ScheduleService(ScheduleRows(store.engine), creation, store, 30, clock), store, clock
        store.engine.dispose()


def test_a_cron_schedule_fires_at_its_time_in_its_timezone(service):
    schedules, store, clock = service
    nightly = ScheduleDefinition("nightly", "report", Arguments(["eu"], {}), cron="0 3 * * *",
                                 timezone="Europe/Paris", max_attempts=2).check()
    schedules.register([nightly], ("app", "abc123"))
    (listed,) = schedules.listing()
    fire = listed.next_fire_at
    assert fire.astimezone(ZoneInfo("Europe/Paris")).hour == 3 and listed.active

    clock.now = fire - timedelta(seconds=10)
    schedules.register([nightly], ("app", "abc123"))  # workers keep registering it
    assert schedules.fire_due(fire - timedelta(seconds=1)) == 0  # not yet
    assert schedules.fire_due(fire + timedelta(seconds=0.5)) == 1
    call = store.get(call_id_of(CallRequest(stage="report",
                                            idempotency_key=fire_key("nightly", fire))))
    assert (call.stage, call.arguments.args, call.max_attempts, call.commit_hash) == (
        "report", ["eu"], 2, "abc123")
    assert schedules.fire_due(fire + timedelta(seconds=1)) == 0  # made once
    (listed,) = schedules.listing()
    assert listed.next_fire_at == fire + timedelta(days=1)
    assert listed.last_call_id == call.id and listed.last_late_seconds is None

    # No control plane for three days: one late fire, then on from the next time.
    later = clock.now = fire + timedelta(days=3, hours=1)
    schedules.register([nightly], ("app", "abc123"))
    assert schedules.fire_due(later) == 1
    (listed,) = schedules.listing()
    assert listed.last_late_seconds == pytest.approx(2 * 86400 + 3600, abs=1)
    assert listed.next_fire_at == fire + timedelta(days=4)


def test_a_skipping_schedule_makes_no_late_fire(service):
    schedules, _store, clock = service
    skipping = ScheduleDefinition("skips", "report", every_seconds=60, catch_up="skip").check()
    schedules.register([skipping], (None, None))
    (listed,) = schedules.listing()
    fire = listed.next_fire_at
    clock.now = fire + timedelta(minutes=10, seconds=5)
    schedules.register([skipping], (None, None))
    assert schedules.fire_due(clock.now) == 0
    (listed,) = schedules.listing()
    assert listed.last_call_id is None and listed.last_late_seconds > 600
    assert listed.next_fire_at == fire + timedelta(minutes=11)
