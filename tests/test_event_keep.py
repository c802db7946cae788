"""An event sent before anyone waits is kept for CALLPLANE_EVENT_KEEP_SECONDS; once
that is past, the running control plane's clock drops it, and a later wait never
gets it. On a control plane served in the test's process (tests/served.py), whose
clock the test moves past the clock's next look at kept events."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import requests

from controlplane.clock import EVENTS_CHECK
from controlplane.local_cluster import wait_until
from sdk.caller import RemoteCaller
from sdk.client import ControlPlaneClient
from sdk.context import CallContext
from tests.conftest import ROOT
from tests.served import served_plane
from tests.test_events import a_key, kept_events, send, waiting
from tests.workflows import recovery

KEEP_SECONDS = 2


def test_a_kept_event_expires_is_dropped_by_the_clock_and_reaches_no_later_wait(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="controlplane.clock")
    env = {"CALLPLANE_EVENT_KEEP_SECONDS": str(KEEP_SECONDS), "CALLPLANE_LEASE_SECONDS": "2"}
    with served_plane(tmp_path, env) as plane:
        key = a_key()
        before = datetime.now(timezone.utc)
        kept = send(plane.url, key, "stale")
        after = datetime.now(timezone.utc)
        assert kept["delivered_to"] is None
        until = datetime.fromisoformat(kept["kept_until"])
        keep = timedelta(seconds=KEEP_SECONDS)
        assert before + keep <= until <= after + keep
        assert kept_events(plane.store, key) == ["stale"]

        # Past its time, the clock's next look at kept events drops it.
        wait_until(lambda: datetime.now(timezone.utc) > until, "the event's time past")
        plane.clock.move_to(plane.clock() + EVENTS_CHECK + timedelta(seconds=1))
        wait_until(lambda: not kept_events(plane.store, key), "the expired event dropped")
        wait_until(lambda: any("1 event(s) sent to keys nobody waited for in time, dropped"
                               in r.getMessage() for r in caplog.records), "the clock saying so")
        plane.clock.offset = timedelta(0)  # delays and timeouts at their real times again

        # A wait for its key later gets the event sent after it, not the dropped one.
        plane.worker(ROOT / "tests" / "workflows" / "recovery.py")
        client = ControlPlaneClient(plane.url)
        recovery.runner.attach(client, RemoteCaller(client), CallContext())
        waiter = recovery.awaits_approval.submit(str(tmp_path / "tokens"), key)
        wait_until(lambda: waiting(plane.store, waiter.id), "the call waiting")
        assert requests.get(f"{plane.url}/api/call/{waiter.id}", timeout=10).json()[
            "waiting_for"]["key"] == key
        assert send(plane.url, key, "fresh")["delivered_to"] is not None
        assert waiter.result(timeout=30)[1] == "fresh"
