"""A worker registers its workflow file's schedules and stages' limits with the
control plane when it starts and every lease after, so that the control plane
fires the schedules and keeps the limits while any worker loads the file, and
lets them lapse (after a few leases) once none does."""

from __future__ import annotations

import logging
import threading

from sdk.client import ControlPlaneClient
from sdk.errors import ControlPlaneRefused, ControlPlaneUnavailable
from sdk.limits import StageLimit
from sdk.schedules import ScheduleDefinition
from workers.executor import CodeVersion

log = logging.getLogger(__name__)


class Registrar:
    def __init__(self, client: ControlPlaneClient, schedules: list[ScheduleDefinition],
                 limits: list[StageLimit], version: CodeVersion, every_seconds: float):
        self._client = client
        self._schedules = schedules
        self._limits = limits
        self._version = version
        self._every = every_seconds

    def start(self, stopping: threading.Event) -> None:
        """Register now and every lease until `stopping` is set (nothing to do
        for a file without schedules or limits)."""
        if self._schedules or self._limits:
            threading.Thread(target=self._run, args=(stopping,), name="callplane-registrar",
                             daemon=True).start()

    def _run(self, stopping: threading.Event) -> None:
        registrations = []
        if self._schedules:
            registrations.append((f"the schedule(s) {', '.join(s.name for s in self._schedules)}",
                                  lambda: self._client.register_schedules(
                                      self._schedules, self._version.repo_name,
                                      self._version.commit_hash)))
        if self._limits:
            registrations.append((f"the limit(s) of {', '.join(l.stage for l in self._limits)}",
                                  lambda: self._client.register_limits(self._limits)))
        registered: set[str] = set()
        while True:
            for what, register in registrations:  # each on its own: one refused stops no other
                try:
                    register()
                    if what not in registered:
                        log.info("registered %s", what)
                    registered.add(what)
                except (ControlPlaneUnavailable, ControlPlaneRefused) as exc:  # try again later
                    log.warning("could not register %s (%s); trying again in %g s",
                                what, exc, self._every)
            if stopping.wait(self._every):
                return
