"""Schedules: `runner.schedule(stage, cron=... | every=..., ...)` in a workflow file.

A schedule is checked where it is written (a cron expression croniter cannot
read, a timezone that does not exist, arguments that do not fit the stage: an
error when the file loads). Workers that load the file register its schedules
with the control plane, which creates one root call per fire time (see
controlplane.schedules); when they are gone from the file, no worker registers
them any more and they lapse.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from croniter import croniter  # type: ignore[import-untyped,unused-ignore]

from sdk.records import Arguments

#: What a schedule does about fires missed while no control plane ran.
CatchUp = Literal["once", "skip"]
#: A schedule's name: what the CLI and the API call it.
NAME_PATTERN = re.compile(r"[\w.@-]{1,200}")
#: The shortest and longest `every`.
EVERY_LIMITS = (1.0, 366 * 24 * 3600.0)


class ScheduleDefinition(msgspec.Struct, frozen=True, omit_defaults=True):
    """A schedule as its workflow file says it, and as workers register it."""

    name: str
    stage: str
    arguments: Arguments = msgspec.field(default_factory=Arguments)
    cron: str | None = None
    every_seconds: float | None = None
    timezone: str = "UTC"
    catch_up: CatchUp = "once"
    #: The stage's attempts (1 + its retries), for each call it makes.
    max_attempts: int = 1

    def check(self) -> ScheduleDefinition:
        """Itself, if it makes sense; ValueError or TypeError saying what to fix."""
        if not NAME_PATTERN.fullmatch(self.name):
            raise ValueError(f"schedule name {self.name!r}: use 1-200 letters, digits, '_', '.', "
                             "'@' or '-'")
        if (self.cron is None) == (self.every_seconds is None):
            raise TypeError(f"schedule {self.name!r}: give cron= or every=, one of them")
        if self.cron is not None and not croniter.is_valid(self.cron):
            raise ValueError(f"schedule {self.name!r}: {self.cron!r} is not a cron expression "
                             "(five fields, minute hour day month weekday, e.g. '0 3 * * *')")
        if self.every_seconds is not None:
            low, high = EVERY_LIMITS
            every = self.every_seconds
            if not isinstance(every, (int, float)) or isinstance(every, bool):
                raise TypeError(f"schedule {self.name!r}: every must be seconds, not {every!r}")
            if not math.isfinite(every) or not low <= every <= high:
                raise ValueError(f"schedule {self.name!r}: every must be {low:,.0f} to {high:,.0f} "
                                 f"seconds, not {every!r}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"schedule {self.name!r}: no timezone {self.timezone!r} (use an IANA "
                             "name such as 'UTC' or 'Europe/Paris')") from None
        if self.catch_up not in ("once", "skip"):
            raise ValueError(f"schedule {self.name!r}: catch_up is 'once' or 'skip', "
                             f"not {self.catch_up!r}")
        return self

    def next_fire(self, after: datetime, fired: datetime | None = None) -> datetime:
        """The first fire time strictly after `after`, in UTC; an `every` schedule
        keeps the beat of its last fire time, `fired`, when it has one."""
        if self.every_seconds is not None:
            every = timedelta(seconds=self.every_seconds)
            if fired is None or fired > after:
                return (after + every).astimezone(timezone.utc)
            beats = math.floor((after - fired) / every) + 1
            return (fired + beats * every).astimezone(timezone.utc)
        local = after.astimezone(ZoneInfo(self.timezone))
        following: datetime = croniter(self.cron, local).get_next(datetime)
        return following.astimezone(timezone.utc)


class ScheduleRecord(ScheduleDefinition, frozen=True, omit_defaults=False):
    """A registered schedule, as the control plane keeps it: its definition, the
    code version its calls run on, and where it stands."""

    repo_name: str | None = None
    commit_hash: str | None = None
    paused: bool = False
    next_fire_at: datetime | None = None
    last_fire_at: datetime | None = None
    last_call_id: str | None = None
    last_late_seconds: float | None = None
    #: A worker that loads its file registers it again before then; after, it lapsed.
    registered_until: datetime | None = None

    def state(self, active: bool, last_status: str | None) -> ScheduleState:
        return ScheduleState(**msgspec.structs.asdict(self), active=active,
                             last_status=last_status)

    @property
    def definition(self) -> ScheduleDefinition:
        return ScheduleDefinition(**{name: getattr(self, name)
                                     for name in ScheduleDefinition.__struct_fields__})


class ScheduleState(ScheduleRecord, frozen=True):
    """A schedule as the API shows it: whether a worker still registers it, and
    how its last call went."""

    active: bool = False
    last_status: str | None = None
