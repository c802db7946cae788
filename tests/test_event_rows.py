"""Pairing events with the calls waiting for them, against whichever database this
session runs on (SQLite by default; PostgreSQL when CALLPLANE_TEST_POSTGRES is
set): with senders and pairers racing in threads, every wait gets one event,
no event goes to two waits, and none is lost."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

from controlplane.store import utcnow
from controlplane.store.events import EventRows
from sdk.records import Arguments, CallRecord, ErrorRecord, Outcome
from sdk.waits import EVENT_STAGE
from sdk.wire import Status


def waiting_steps(store, key: str, count: int) -> list[str]:
    """`count` running waits for `key`, each the step of a call of its own."""
    now, ids = utcnow(), []
    for _ in range(count):
        parent = uuid.uuid4().hex
        step = f"{parent}-0"
        store.insert([
            CallRecord(parent, "s", Status.PENDING, root_stage_run_id=parent, queue="any.s",
                       created_at=now),
            CallRecord(step, EVENT_STAGE, Status.RUNNING, arguments=Arguments([key, None], {}),
                       parent_stage_run_id=parent, root_stage_run_id=parent, position=0,
                       queue="any.callplane.event", created_at=now, started_at=now, worker="w"),
        ])
        ids.append(step)
    return ids


def test_racing_senders_and_waits_pair_each_event_once(store):
    rows, key = EventRows(store.engine), f"race:{uuid.uuid4().hex[:8]}"
    steps = waiting_steps(store, key, 12)
    now = utcnow()
    for step in steps[:6]:  # half wait before any event is sent
        rows.add_wait(step, key, [step], now)
    delivered, lock = [], threading.Lock()

    def send(i: int) -> None:
        rows.keep(key, {"n": i}, utcnow(), utcnow() + timedelta(hours=1))
        found = rows.pair(key, utcnow())
        with lock:
            delivered.extend(found)

    def wait(step: str) -> None:
        rows.add_wait(step, key, [step], utcnow())
        found = rows.pair(key, utcnow())
        with lock:
            delivered.extend(found)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(14)]
    threads += [threading.Thread(target=wait, args=(step,)) for step in steps[6:]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(d.call_id for d in delivered) == sorted(steps)  # each wait once
    assert len({d.event_id for d in delivered}) == 12  # each event to one wait
    payloads = [store.get(step).result["n"] for step in steps]
    assert len(set(payloads)) == 12 and all(store.get(s).status is Status.SUCCEEDED for s in steps)
    assert rows.pair(key, utcnow()) == []
    assert {d.call_id for d in delivered} == {rows.delivered_to(d.event_id) for d in delivered}
    assert rows.drop_expired(utcnow() + timedelta(hours=2)) == 14  # 12 delivered, 2 kept


def test_a_wait_no_longer_running_gets_no_event_and_is_dropped(store):
    rows, key = EventRows(store.engine), f"stale:{uuid.uuid4().hex[:8]}"
    (stale,) = waiting_steps(store, key, 1)
    timed_out = Outcome(stale, EVENT_STAGE, Status.FAILED, finished_at=utcnow(),
                        error=ErrorRecord("callplane.EventTimeout", "no event"))
    assert store.finish(stale, timed_out)  # it timed out meanwhile
    rows.add_wait(stale, key, [stale], utcnow())
    rows.keep(key, "kept", utcnow(), utcnow() + timedelta(hours=1))
    assert rows.pair(key, utcnow()) == []
    (fresh,) = waiting_steps(store, key, 1)
    rows.add_wait(fresh, key, [fresh], utcnow())
    (delivery,) = rows.pair(key, utcnow())
    assert delivery.call_id == fresh and store.get(fresh).result == "kept"

