"""The long-lived parts of one control-plane process, built once by the app factory."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from controlplane.clock import Clock
from controlplane.commands import CallCommands
from controlplane.creation import CallCreation
from controlplane.dispatch import Dispatch
from controlplane.events import Events
from controlplane.health import Readiness
from controlplane.limits import Limits
from controlplane.metrics import Metrics
from controlplane.reading import CallReading
from controlplane.recorder import Recorder
from controlplane.recovery import Recovery
from controlplane.retention import Retention
from controlplane.schedules import ScheduleService
from controlplane.sleeps import Sleeps
from controlplane.steps import WaitSteps
from controlplane.store import Store, make_engine, utcnow
from controlplane.store.events import EventRows
from controlplane.store.limits import LimitRows
from controlplane.store.retention import RetentionRows
from controlplane.store.schedules import ScheduleRows
from controlplane.waiting import CallWaiting
from controlplane.why import CallWhy
from sdk.settings import Settings
from sdk.signing import JobSigner
from sdk.transport import Transport
from sdk.transport.keys import DONE_CHANNEL
from sdk.waiters import Waiters


class Services:
    """Store, Redis, waiters, what the API does with calls, and the recorder; start()
    runs their background threads."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime] = utcnow):
        """`clock`: the time the clock duty and the schedules go by (a test sets it)."""
        self.settings = settings
        self.store = Store(make_engine(settings.database_url))
        signer = JobSigner(self.job_key)
        self.transport = Transport.from_url(settings.redis_url, signer)
        self.waiters = Waiters(self.transport, DONE_CHANNEL, settings.recheck_seconds)
        self.limits = Limits(LimitRows(self.store.engine), self.transport, settings.lease_seconds)
        self.metrics = Metrics(self.transport.figures)
        dispatch = Dispatch(self.transport, self.limits)
        self.reading = CallReading(self.store, self.transport)
        self.creation = CallCreation(self.store, self.reading, dispatch, settings.lease_seconds,
                                     self.limits, self.metrics)
        self.waiting = CallWaiting(self.store, self.reading, self.creation, self.waiters,
                                   settings.max_wait_seconds, self.metrics)
        self.why = CallWhy(self.store, self.reading, self.transport, self.limits)
        self.commands = CallCommands(self.store, self.reading, self.transport, dispatch,
                                     self.metrics)
        steps = WaitSteps(self.store, self.reading, self.transport, dispatch, self.commands)
        self.sleeps = Sleeps(self.store, steps)
        self.events = Events(EventRows(self.store.engine), self.store, steps, self.commands,
                             settings.event_keep_seconds)
        self.recovery = Recovery(self.store, self.transport, settings.lost_attempts,
                                 settings.lease_seconds, dispatch, LimitRows(self.store.engine),
                                 self.metrics)
        self.recorder = Recorder(self.store, self.transport, self.waiters, self.recovery,
                                 settings.lease_seconds, self.metrics)
        self.schedules = ScheduleService(ScheduleRows(self.store.engine), self.creation,
                                         self.store, settings.lease_seconds, clock)
        self.clock = Clock(self.transport, self.schedules, self.events, self.limits, clock)
        self.retention = Retention(RetentionRows(self.store.engine), settings.retention,
                                   self.transport.duties)
        self.readiness = Readiness(settings.redis_url, self.store)
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def job_key(self) -> str:
        """The key this control plane signs jobs with: CALLPLANE_JOB_KEY, or the
        one its database holds (made by `callplane db upgrade`)."""
        return self.settings.job_key or self.store.job_key()

    def start(self) -> None:
        """Subscribe to completions, start recording workers' reports, keeping the
        clock and pruning old runs (once per process)."""
        if self._threads:
            return
        self.waiters.start()
        for name, target in (("recorder", self.recorder.run), ("clock", self.clock.run),
                             ("retention", self.retention.run), ("metrics", self.metrics.run)):
            thread = threading.Thread(target=target, args=(self._stopping,),
                                      name=f"callplane-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stopping.set()
        self.waiters.stop()
        for thread in self._threads:
            thread.join(timeout=5)
        self.store.engine.dispose()
