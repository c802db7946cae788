"""One call per fire time however many control planes fire a schedule.

A call's id derives from its fire time, so counting rows alone cannot see a
fire made twice; these tests map each call back to its fire time and check that
every call is on the schedule's beat (a second beat would be fires made twice),
that no fire time is missing while a control plane holds the clock, and that
the clock passes from a killed holder to the other control plane and back.
Then two schedule services race on one database and a real Redis: the fire's
conditional mark (ScheduleRows.fired) moves the schedule on once.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from itertools import pairwise

import pytest
import requests
import sqlalchemy as sa

from controlplane.clock import DUTY
from controlplane.creation import CallCreation, call_id_of
from controlplane.dispatch import Dispatch
from controlplane.local_cluster import free_port, start_redis_server, stop, wait_until
from controlplane.reading import CallReading
from controlplane.schedules import ScheduleService, fire_key
from controlplane.store import Store, make_engine
from controlplane.store.schedules import ScheduleRows
from controlplane.tables import stage_runs
from sdk.records import CallRequest
from sdk.schedules import ScheduleDefinition
from sdk.transport import Transport
from sdk.transport.keys import queue_key
from tests.cluster import LEASE_SECONDS, Cluster, cluster_of
from tests.conftest import ROOT, fresh_database
from tests.workflows import timed

TIMED = ROOT / "tests" / "workflows" / "timed.py"
SECOND = timedelta(seconds=1)
#: Fire times either side of a known one that a call may be for.
SPAN = 600


def beat_calls(database_url: str, stage: str = "beat") -> list[str]:
    """The ids of a stage's calls, in the order they were made."""
    engine = make_engine(database_url)
    with engine.connect() as conn:
        ids = conn.execute(sa.select(stage_runs.c.id).where(stage_runs.c.stage == stage)
                           .order_by(stage_runs.c.created_at)).scalars().all()
    engine.dispose()
    return list(ids)


def fire_times(ids: list[str], name: str, stage: str, beat: datetime) -> list[datetime]:
    """The fire time of each call of an every=1 schedule whose fires include
    `beat`, earliest first; fails on a call off that beat."""
    on_beat = {call_id_of(CallRequest(stage=stage, idempotency_key=fire_key(name, fire))): fire
               for fire in (beat + k * SECOND for k in range(-SPAN, SPAN))}
    off = [call_id for call_id in ids if call_id not in on_beat]
    assert not off, f"calls off the schedule's beat (a fire made twice?): {off}"
    fires = sorted(on_beat[call_id] for call_id in ids)
    assert len(set(fires)) == len(fires) == len(ids)
    return fires


def gaps(fires: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Where consecutive fire times are more than a beat apart (fires not made)."""
    return [(a, b) for a, b in pairwise(fires) if b - a != SECOND]


def holder(transport: Transport, planes: list[Cluster]) -> Cluster | None:
    """The control plane whose process holds the clock duty now."""
    name = transport.duties.holder(DUTY)
    if name is None:
        return None
    pid = int(name.split(":")[-2])  # host:pid:nonce
    for plane in planes:
        try:
            if plane.server.poll() is None and os.getpgid(pid) == plane.server.pid:
                return plane
        except ProcessLookupError:
            return None
    return None


def kill_the_holder(transport: Transport, planes: list[Cluster], database: str) -> datetime:
    """SIGKILL the control plane holding the clock; wait for the other to take it
    and make four more fires. When it was killed."""
    wait_until(lambda: holder(transport, planes) is not None, "a holder of the clock")
    dying = holder(transport, planes)
    assert dying is not None
    (other,) = [plane for plane in planes if plane is not dying]
    killed = datetime.now(timezone.utc)
    dying.kill_server()
    made = len(beat_calls(database))
    wait_until(lambda: holder(transport, planes) is other, "the other control plane holding the clock",
               timeout=30)
    wait_until(lambda: len(beat_calls(database)) >= made + 4, "fires after the takeover", timeout=30)
    return killed


@pytest.fixture()
def two_planes(tmp_path) -> Iterator[list[Cluster]]:
    """A cluster of the timed workflow and a second control plane on its Redis
    and database."""
    with cluster_of(tmp_path, timed.runner, workflow=TIMED) as cluster:
        (tmp_path / "second").mkdir()
        second = Cluster(tmp_path / "second", dict(cluster.env), workflow=TIMED,
                         redis_url=cluster.redis_url)
        try:
            yield [cluster, second]
        finally:
            second.close()


def test_a_schedule_fires_once_per_fire_time_as_the_clock_passes_between_control_planes(two_planes):
    cluster = two_planes[0]
    database = cluster.env["DATABASE_URL"]
    transport = Transport.from_url(cluster.redis_url)
    for plane in two_planes:  # a worker registering the schedule through each
        plane.worker()
    wait_until(lambda: len(beat_calls(database)) >= 6, "six fires", timeout=30)
    (heartbeat,) = requests.get(f"{cluster.server_url}/api/schedules", timeout=10).json()
    assert heartbeat["active"] and heartbeat["every_seconds"] == 1
    beat = datetime.fromisoformat(heartbeat["last_fire_at"])
    assert gaps(fire_times(beat_calls(database), "heartbeat", "beat", beat)) == []

    # Either control plane holds the clock when the other is killed, and goes on
    # with the fire the dead one had not made.
    kills = [kill_the_holder(transport, two_planes, database)]
    for plane in two_planes:
        if plane.server.poll() is not None:
            plane.restart_server()
    kills.append(kill_the_holder(transport, two_planes, database))
    fires = fire_times(beat_calls(database), "heartbeat", "beat", beat)
    # Fires missed while nobody held the clock are made once (catch_up="once"),
    # late: the only breaks in the beat are where a holder was killed.
    for before, after in gaps(fires):
        assert any(before - SECOND <= killed < after for killed in kills), (before, after, kills)
    assert len(gaps(fires)) <= len(kills)
    assert fires[-1] > max(kills) + 2 * SECOND  # and more, by the one that took over

    # The file no longer loaded by any worker: the schedule lapses within a few leases.
    for plane in two_planes:
        plane.stop_workers()
    time.sleep(LEASE_SECONDS * 3 + 1.5)
    counted = len(beat_calls(database))
    time.sleep(2)
    assert len(beat_calls(database)) == counted
    (live,) = [plane for plane in two_planes if plane.server.poll() is None]
    (heartbeat,) = requests.get(f"{live.server_url}/api/schedules", timeout=10).json()
    assert not heartbeat["active"]


class Clock:
    """The time a test says it is."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class HeldRows(ScheduleRows):
    """A control plane's schedule rows that, having read the due schedules, wait
    for the test to let them go on (a holder paused mid-fire)."""

    def __init__(self, engine: sa.Engine, read: threading.Event, go: threading.Event):
        super().__init__(engine)
        self.read, self.go = read, go

    def due(self, now: datetime):
        found = super().due(now)
        self.read.set()
        assert self.go.wait(30), "the test never let the held fire go on"
        return found


class Racing:
    """Two control planes' schedule services, as the tests build them on one database
    and one redis-server."""

    def __init__(self, database_url: str, redis_url: str):
        self.database_url, self.redis_url = database_url, redis_url
        self._stores: list[Store] = []

    def service(self, clock, rows=ScheduleRows) -> ScheduleService:
        store = Store(make_engine(self.database_url))
        self._stores.append(store)
        transport = Transport.from_url(self.redis_url)
        creation = CallCreation(store, CallReading(store, transport), Dispatch(transport), 30)
        return ScheduleService(rows(store.engine), creation, store, 30, clock)

    def queue_of(self, call_id: str) -> str:
        record = self._stores[0].get(call_id)
        assert record is not None
        return record.queue

    def close(self) -> None:
        for store in self._stores:
            store.engine.dispose()


@pytest.fixture()
def racing(tmp_path) -> Iterator[Racing]:
    port = free_port()
    redis_server = start_redis_server(port, tmp_path)
    try:
        with fresh_database(tmp_path) as url:
            racing = Racing(url, f"redis://127.0.0.1:{port}/0")
            yield racing
            racing.close()
    finally:
        stop(redis_server)


PULSE = ScheduleDefinition("pulse", "beat", every_seconds=1).check()


def test_two_services_firing_at_once_make_each_fire_once(racing):
    services = [racing.service(lambda: datetime.now(timezone.utc)) for _ in range(2)]
    for service in services:
        service.register([PULSE], (None, None))
    made = [0, 0]
    deadline = time.monotonic() + 4

    def fire(index: int) -> None:
        while time.monotonic() < deadline:
            made[index] += services[index].fire_due(datetime.now(timezone.utc))
            time.sleep(0.005)

    threads = [threading.Thread(target=fire, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (pulse,) = services[0].listing()
    ids = beat_calls(racing.database_url)
    fires = fire_times(ids, "pulse", "beat", pulse.last_fire_at)
    assert len(fires) >= 3 and gaps(fires) == []
    assert fires[-1] == pulse.last_fire_at and pulse.next_fire_at == fires[-1] + SECOND
    assert sum(made) == len(fires), made  # each fire marked by one of them


def test_a_service_that_read_a_fire_late_neither_makes_it_again_nor_moves_the_schedule_back(racing):
    start = datetime.now(timezone.utc)
    read, go = threading.Event(), threading.Event()
    fast, slow = Clock(start), Clock(start)
    first, held = racing.service(fast), racing.service(slow, lambda e: HeldRows(e, read, go))
    first.register([PULSE], (None, None))
    (pulse,) = first.listing()
    fire = pulse.next_fire_at
    fast.now = slow.now = fire + SECOND / 2

    made_by_held: list[int] = []
    late = threading.Thread(target=lambda: made_by_held.append(held.fire_due(slow.now)))
    late.start()
    assert read.wait(30)  # it read the fire at `fire` as due, and waits
    assert first.fire_due(fast.now) == 1
    fast.now += SECOND
    assert first.fire_due(fast.now) == 1  # the next fire too
    go.set()
    late.join()
    assert made_by_held == [0]
    (pulse,) = first.listing()
    assert (pulse.last_fire_at, pulse.next_fire_at) == (fire + SECOND, fire + 2 * SECOND)
    ids = beat_calls(racing.database_url)
    assert fire_times(ids, "pulse", "beat", fire) == [fire, fire + SECOND]
    assert pulse.last_call_id == ids[-1]
    queue = queue_key(racing.queue_of(ids[0]))
    queued = Transport.from_url(racing.redis_url).redis.lrange(queue, 0, -1)
    assert sorted(queued) == sorted(ids)  # each queued once, not again by the late one
