"""Limits on the control plane: workers register their stages' limits; each new
call of a limited stage is given its gate; gates are looked at when their calls
may go in (sdk.transport.gates); and the limits are listed with what they hold.

A registration lasts a few leases (workers register again every lease), so a
limit taken out of a workflow file lapses once no worker loads the old one.
Calls made before any worker registered their stage's limit are not limited.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from datetime import datetime, timedelta

import msgspec

from controlplane.errors import BadLimitKey
from controlplane.store import utcnow
from controlplane.store.limits import LimitRows
from sdk.limits import StageLimit, key_of, stage_of
from sdk.records import CallRequest
from sdk.transport import Transport
from sdk.wire import Status

#: How long a process trusts the limits it read (a new registration reaches every
#: control plane within this).
CACHE_SECONDS = 1.0
#: How many leases a registration lasts: workers register again every lease.
REGISTRATION_LEASES = 3
#: Gates looked at per clock tick, at most.
DUE_PAGE = 200


class GateCount(msgspec.Struct, frozen=True):
    """One gate of a limit: its key's value (None for the stage's one gate), its
    calls running and waiting (queued or held back)."""

    key: str | None
    running: int = 0
    waiting: int = 0


class LimitListing(msgspec.Struct, frozen=True):
    """A limited stage, its limits, and its gates with calls."""

    stage: str
    limit: str
    concurrency: int | None
    rate: str | None
    key: str | None
    gates: list[GateCount]


class Limits:
    def __init__(self, rows: LimitRows, transport: Transport, lease_seconds: float):
        self._rows = rows
        self._transport = transport
        self._lease = timedelta(seconds=lease_seconds)
        self._lock = threading.Lock()
        self._cache: dict[str, StageLimit] = {}
        self._read_at = -CACHE_SECONDS

    def register(self, limits: list[StageLimit]) -> None:
        self._rows.register(limits, utcnow() + REGISTRATION_LEASES * self._lease)
        with self._lock:
            self._read_at = -CACHE_SECONDS  # read them again at the next call

    def of(self, stage: str) -> StageLimit | None:
        """The limits of `stage`, if a worker registered some lately."""
        return self._current().get(stage)

    def gate_of(self, request: CallRequest) -> str | None:
        """The gate a new call goes through (None: its stage has no limit)."""
        limit = self.of(request.stage)
        if limit is None:
            return None
        try:
            return limit.gate(request.arguments.args, request.arguments.kwargs)
        except TypeError as exc:
            raise BadLimitKey(str(exc)) from None

    def admit(self, gates: Iterable[str]) -> int:
        """Look at these gates: let in what their limits allow; how many."""
        admitted = 0
        for gate in gates:
            limit = self.of(stage_of(gate))
            if limit is None:  # lapsed: its calls go in as if it had no limit
                limit = StageLimit(stage_of(gate))
            admitted += self._transport.gates.admit(gate, limit)
        return admitted

    def admit_due(self, now: datetime) -> int:
        """The clock's part: look at the gates due (a rate allows a start again, or
        a gate not looked at for a while)."""
        return self.admit(self._transport.gates.due(now, DUE_PAGE))

    def listing(self) -> list[LimitListing]:
        """Every limited stage, with its running and waiting calls per gate."""
        limits = sorted(self._current().values(), key=lambda limit: limit.stage)
        gates: dict[str, dict[str | None, dict[Status, int]]] = {}
        for stage, gate, status, count in self._rows.unfinished([limit.stage for limit in limits]):
            gates.setdefault(stage, {}).setdefault(gate, {})[status] = count
        listing = []
        for limit in limits:
            counts = [GateCount(key=key_of(gate), running=by.get(Status.RUNNING, 0),
                                waiting=by.get(Status.PENDING, 0))
                      for gate, by in sorted(gates.get(limit.stage, {}).items(), key=lambda i: str(i[0]))]
            rate = f"{limit.rate_count}/{limit.rate_seconds:g}s" if limit.rate_count else None
            listing.append(LimitListing(limit.stage, limit.describe(), limit.concurrency, rate,
                                        limit.key, counts))
        return listing

    def _current(self) -> dict[str, StageLimit]:
        with self._lock:
            if time.monotonic() - self._read_at >= CACHE_SECONDS:
                self._cache = {limit.stage: limit for limit in self._rows.current(utcnow())}
                self._read_at = time.monotonic()
            return self._cache
