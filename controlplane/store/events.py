"""The `events` and `event_waits` tables: events sent to keys, the calls waiting
for one, and the pairing of the two.

Both sides write their own row first and pair second (see controlplane.events),
so whichever comes last sees the other. A pairing is one transaction of
conditional writes: the wait's step goes from running to succeeded with the
event's payload, the event is marked delivered to it, and the calls suspended
with the wait are due now; if the step or the event was taken meanwhile
(another control plane paired it, the wait was cancelled or timed out),
nothing of it stays, so no event is delivered twice and none is lost, and no
delivery is ever recorded without its wake-up.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
import sqlalchemy as sa
import sqlalchemy.exc
from sqlalchemy.engine import Connection, Engine

from controlplane.store.engine import translating
from controlplane.store.statements import FINISH, WAKE, outcome_params
from controlplane.tables import event_waits, events
from sdk.records import Outcome
from sdk.waits import EVENT_STAGE
from sdk.wire import Status


class Delivery(msgspec.Struct, frozen=True):
    """An event given to a waiting call: its step `call_id`, and the chain of calls
    suspended with it (outermost first), due now."""

    event_id: int
    call_id: str
    chain: list[str]


class _Taken(Exception):
    """The event of a pairing was taken meanwhile: undo the pairing."""


@translating
class EventRows:
    def __init__(self, engine: Engine):
        self.engine = engine

    def keep(self, key: str, payload: Any, now: datetime, until: datetime,
             idempotency_key: str | None = None) -> int:
        """Keep an event for the call that waits for `key` next; its id (that of the
        event sent before with the same `idempotency_key`, if one was)."""
        try:
            with self.engine.begin() as conn:
                inserted = conn.execute(events.insert().values(
                    key=key, payload=payload, sent_at=now, keep_until=until,
                    idempotency_key=idempotency_key))
                return inserted.inserted_primary_key[0]
        except sqlalchemy.exc.IntegrityError:
            with self.engine.connect() as conn:
                earlier = conn.execute(sa.select(events.c.id).where(
                    events.c.idempotency_key == idempotency_key)).scalar()
            if earlier is None:
                raise
            return earlier

    def delivered_to(self, event_id: int) -> str | None:
        """The wait an event was delivered to, if it was."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(events.c.delivered_to)
                                .where(events.c.id == event_id)).scalar()

    def add_wait(self, call_id: str, key: str, chain: list[str], now: datetime) -> None:
        """The step `call_id` waits for `key` (once: a wait asked for again is kept)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(event_waits.insert().values(call_id=call_id, key=key, chain=chain,
                                                         since=now))
        except sqlalchemy.exc.IntegrityError:
            pass

    def drop_wait(self, call_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(event_waits.delete().where(event_waits.c.call_id == call_id))

    def drop_expired(self, now: datetime) -> int:
        """Forget the events past their time, delivered or not; how many."""
        with self.engine.begin() as conn:
            return conn.execute(events.delete().where(events.c.keep_until <= now)).rowcount

    def pair(self, key: str, now: datetime) -> list[Delivery]:
        """Give the kept events of `key` to the calls waiting for it, oldest to
        oldest, until one side has none left; what was delivered."""
        delivered: list[Delivery] = []
        while True:
            with self.engine.connect() as conn:
                event = conn.execute(
                    events.select().where(events.c.key == key, events.c.delivered_to.is_(None),
                                          events.c.keep_until > now)
                    .order_by(events.c.id).limit(1)).first()
                wait = conn.execute(
                    event_waits.select().where(event_waits.c.key == key)
                    .order_by(event_waits.c.since, event_waits.c.call_id).limit(1)).first()
            if event is None or wait is None:
                return delivered
            try:
                with self.engine.begin() as conn:
                    if self._deliver(conn, event, wait, now):
                        delivered.append(Delivery(event.id, wait.call_id, list(wait.chain)))
                    conn.execute(event_waits.delete().where(event_waits.c.call_id == wait.call_id))
            except _Taken:
                continue

    @staticmethod
    def _deliver(conn: Connection, event: sa.Row, wait: sa.Row, now: datetime) -> bool:
        """Within a pairing's transaction: the step succeeds with the payload, the
        event is its, and the chain is due now; False if the step was not waiting
        any more (its wait is stale), _Taken if the event was taken meanwhile."""
        outcome = Outcome(wait.call_id, EVENT_STAGE, Status.SUCCEEDED, result=event.payload,
                          finished_at=now)
        params = {**outcome_params(wait.call_id, outcome), "p_worker": None, "p_attempt": None}
        if conn.execute(FINISH, params).rowcount != 1:
            return False
        taken = conn.execute(events.update().where(events.c.id == event.id,
                                                   events.c.delivered_to.is_(None))
                             .values(delivered_to=wait.call_id))
        if taken.rowcount != 1:
            raise _Taken
        conn.execute(WAKE, {"p_ids": list(wait.chain), "p_now": now})
        return True
