"""Duties that every control plane runs but one at a time should do (moving due
delayed calls to their queues, ...): a lease in Redis per duty, renewed by its
holder, taken over by another process once a holder that stopped lets it end.
A duty's work stays safe if two holders ever overlap (a paused holder whose
lease ran out): the lease keeps the work from being done twice over, not from
being wrong."""

from __future__ import annotations

import redis

from sdk.transport.connection import translating
from sdk.transport.keys import DUTY_PREFIX
from sdk.transport.scripts import Scripts


@translating
class Duties:
    def __init__(self, client: redis.Redis, scripts: Scripts):
        self._redis = client
        self._scripts = scripts

    def hold(self, duty: str, holder: str, lease_seconds: float) -> bool:
        """Take `duty` for `holder`, or renew its lease if it holds it; whether it does."""
        return bool(self._scripts.hold_duty(keys=[DUTY_PREFIX + duty],
                                            args=[holder, max(1, int(lease_seconds * 1000))]))

    def holder(self, duty: str) -> str | None:
        """Who holds `duty` now, if anyone."""
        return self._redis.get(DUTY_PREFIX + duty)
