"""Schedules on the control plane: workers register them, the clock fires them.

Each fire is a root call whose idempotency key is the schedule's name and its
fire time, so however many control planes fire it at once it is one call; the
fire's mark on the table (a conditional UPDATE on the fire time) moves the
schedule on once. A fire made late (no control plane held the clock, or it was
busy) says so in the log and in the schedule's `last_late_seconds`; of fires
missed meanwhile, one is made (or none, with catch_up="skip").
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone

from controlplane.creation import CallCreation
from controlplane.errors import ScheduleNotFound
from controlplane.store import Store, utcnow
from controlplane.store.schedules import ScheduleRows
from sdk.records import CallRecord, CallRequest
from sdk.schedules import ScheduleDefinition, ScheduleRecord, ScheduleState

log = logging.getLogger(__name__)

#: A fire made later than this after its time is a late one.
LATE_SECONDS = 2.0
#: How many leases a registration lasts: workers register again every lease.
REGISTRATION_LEASES = 3


def fire_key(name: str, fire: datetime) -> str:
    """A fire's idempotency key: the same for every control plane, whatever zone its
    database hands times back in."""
    return f"schedule:{name}:{fire.astimezone(timezone.utc).isoformat()}"


class ScheduleService:
    def __init__(self, rows: ScheduleRows, creation: CallCreation, store: Store,
                 lease_seconds: float, clock: Callable[[], datetime] = utcnow):
        """`clock`: what time it is (a test sets it)."""
        self._now = clock
        self._rows = rows
        self._creation = creation
        self._store = store
        self._registration = timedelta(seconds=lease_seconds * REGISTRATION_LEASES)

    def register(self, definitions: Iterable[ScheduleDefinition],
                 version: tuple[str | None, str | None]) -> None:
        """Add or keep the schedules a worker's workflow file has (checked already)."""
        now = self._now()
        for definition in definitions:
            self._rows.register(definition, version, now + self._registration,
                                definition.next_fire(now))

    def fire_due(self, now: datetime) -> int:
        """Make the call of every schedule due by `now`; how many were made. One
        schedule that cannot fire is logged and the others go on."""
        made = 0
        for schedule in self._rows.due(now):
            try:
                made += self._fire(schedule, now)
            except Exception:
                log.exception("schedule %r: its fire at %s failed; trying again next tick",
                              schedule.name, schedule.next_fire_at)
        return made

    def next_fire(self, now: datetime) -> datetime | None:
        return self._rows.next_fire(now)

    def _fire(self, schedule: ScheduleRecord, now: datetime) -> int:
        fire = schedule.next_fire_at
        assert fire is not None  # every registered schedule has one
        late = (now - fire).total_seconds()
        following = schedule.definition.next_fire(now, fired=fire)
        if late > LATE_SECONDS and schedule.catch_up == "skip":
            log.warning("schedule %r: skipped its fire of %s, %.1f s late (catch_up='skip')",
                        schedule.name, fire.isoformat(), late)
            self._rows.fired(schedule.name, fire, following, None, late)
            return 0
        call = self._call(schedule, fire_key(schedule.name, fire))
        late_seconds = late if late > LATE_SECONDS else None
        if not self._rows.fired(schedule.name, fire, following, call.id, late_seconds):
            return 0  # another control plane marked this fire first (its call is this one)
        if late_seconds is not None:
            log.warning("schedule %r: its fire of %s was made %.1f s late (call %s)",
                        schedule.name, fire.isoformat(), late, call.id)
        return 1

    def _call(self, schedule: ScheduleRecord, key: str) -> CallRecord:
        request = CallRequest(stage=schedule.stage, arguments=schedule.arguments,
                              idempotency_key=key, max_attempts=schedule.max_attempts,
                              repo_name=schedule.repo_name, commit_hash=schedule.commit_hash)
        return self._creation.create(request)[0]

    def trigger(self, name: str) -> CallRecord:
        """Make a call of the schedule now, besides its fires."""
        return self._call(self._get(name), f"schedule:{name}:trigger:{uuid.uuid4().hex}")

    def pause(self, name: str) -> None:
        self._get(name)
        self._rows.set_paused(name, True)

    def resume(self, name: str) -> None:
        """Fire again from the next fire time on (fires while paused are not made)."""
        schedule = self._get(name)
        now = self._now()
        if schedule.next_fire_at is not None and schedule.next_fire_at <= now:
            fire = schedule.next_fire_at
            self._rows.fired(name, fire, schedule.definition.next_fire(now, fired=fire), None, None)
        self._rows.set_paused(name, False)

    def _get(self, name: str) -> ScheduleRecord:
        schedule = self._rows.get(name)
        if schedule is None:
            raise ScheduleNotFound(f"no schedule named {name!r} was ever registered")
        return schedule

    def listing(self) -> list[ScheduleState]:
        """Every schedule, with its last call's status and whether a worker still
        registers it (`active`)."""
        return self._described(self._rows.all())

    def describe(self, name: str) -> ScheduleState:
        return self._described([self._get(name)])[0]

    def _described(self, schedules: list[ScheduleRecord]) -> list[ScheduleState]:
        last = self._store.get_many(s.last_call_id for s in schedules if s.last_call_id)
        now = self._now()
        return [s.state(active=bool(s.registered_until and s.registered_until > now),
                        last_status=last[s.last_call_id].status.value
                        if s.last_call_id in last else None)
                for s in schedules]
