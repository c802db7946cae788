"""A worker registers its workflow file's schedules with the control plane when it
starts and every lease after, so that the control plane fires them while any
worker loads the file, and lets them lapse (after a few leases) once none does."""

from __future__ import annotations

import logging
import threading

from sdk.client import ControlPlaneClient
from sdk.errors import ControlPlaneRefused, ControlPlaneUnavailable
from sdk.schedules import ScheduleDefinition
from workers.executor import CodeVersion

log = logging.getLogger(__name__)


class ScheduleRegistrar:
    def __init__(self, client: ControlPlaneClient, schedules: list[ScheduleDefinition],
                 version: CodeVersion, every_seconds: float):
        self._client = client
        self._schedules = schedules
        self._version = version
        self._every = every_seconds

    def start(self, stopping: threading.Event) -> None:
        """Register now and every lease until `stopping` is set (nothing to do
        for a file without schedules)."""
        if self._schedules:
            threading.Thread(target=self._run, args=(stopping,), name="callplane-schedules",
                             daemon=True).start()

    def _run(self, stopping: threading.Event) -> None:
        names = ", ".join(schedule.name for schedule in self._schedules)
        registered = False
        while True:
            try:
                self._client.register_schedules(self._schedules, self._version.repo_name,
                                                self._version.commit_hash)
                if not registered:
                    log.info("registered the schedule(s) %s", names)
                registered = True
            except (ControlPlaneUnavailable, ControlPlaneRefused) as exc:  # try again later
                log.warning("could not register the schedule(s) %s (%s); trying again in "
                            "%g s", names, exc, self._every)
            if stopping.wait(self._every):
                return
