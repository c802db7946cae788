"""Wake the threads that wait on calls, from one subscription per process.

Waiting is pushed: a call's completion broadcast wakes its waiters at once, and
whoever recorded the completion in this process may hand its waiters the record
itself (deliver), so they need not read it again. A waiter registers before it
reads state, and the subscription is confirmed before
anyone waits, so a completion can never slip between the read and the wait; a
periodic re-read guards only against a broadcast lost with a dropped connection.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType

from sdk.errors import RedisUnavailable
from sdk.transport import Transport

_NOTHING: Mapping[str, object] = MappingProxyType({})
#: How long start() waits for the first confirmed subscription.
SUBSCRIBE_TIMEOUT_SECONDS = 10.0


class Watch:
    """The completion broadcasts of a set of calls, as one waiter sees them."""

    def __init__(self, recheck_seconds: float):
        self._recheck_seconds = recheck_seconds
        self._woken: set[str] = set()
        #: What was delivered with a wake-up, by call id (see Waiters.deliver).
        self.delivered: dict[str, object] = {}
        self._everything = False
        self._event = threading.Event()
        self._lock = threading.Lock()

    def notify(self, call_id: str | None, delivered: object = None) -> None:
        """`call_id` was broadcast (with `delivered`, its finished state); None means
        "re-read everything" (a lost connection)."""
        with self._lock:
            if call_id is None:
                self._everything = True
            else:
                self._woken.add(call_id)
                if delivered is not None:
                    self.delivered[call_id] = delivered
        self._event.set()

    def next(self, deadline: float | None = None) -> set[str] | None:
        """Wait for broadcasts; the ids woken since the last call, or None when the
        caller should re-read all of its calls (re-check interval or reconnect).
        Returns an empty set only when `deadline` (a monotonic time) has passed."""
        remaining = self._recheck_seconds
        if deadline is not None:
            remaining = min(remaining, deadline - time.monotonic())
        if remaining > 0:
            self._event.wait(remaining)
        with self._lock:
            self._event.clear()
            woken, everything = self._woken, self._everything
            self._woken, self._everything = set(), False
        if woken and not everything:
            return woken
        if deadline is not None and time.monotonic() >= deadline and not everything:
            return set()
        return None


class Waiters:
    def __init__(self, transport: Transport, channel: str, recheck_seconds: float):
        self._transport = transport
        self._channel = channel
        self.recheck_seconds = recheck_seconds
        self._watches: dict[str, set[Watch]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._subscribed = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Waiters:
        self._thread = self._transport.broadcasts.listener(
            self._channel, self._wake, self._stopping, self._on_subscribed
        )
        self._thread.start()
        if not self._subscribed.wait(SUBSCRIBE_TIMEOUT_SECONDS):
            raise RedisUnavailable("could not subscribe to completion broadcasts")
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @contextlib.contextmanager
    def watching(self, call_ids: Iterable[str]) -> Iterator[Watch]:
        """Register for the broadcasts of `call_ids`; read their state only inside."""
        ids = set(call_ids)
        watch = Watch(self.recheck_seconds)
        with self._lock:
            for call_id in ids:
                self._watches.setdefault(call_id, set()).add(watch)
        try:
            yield watch
        finally:
            with self._lock:
                for call_id in ids:
                    watches = self._watches.get(call_id)
                    if watches is not None:
                        watches.discard(watch)
                        if not watches:
                            del self._watches[call_id]

    def deliver(self, finished: Mapping[str, object]) -> None:
        """Wake this process's waiters of `finished` calls with their finished state
        (what the table now holds), before and besides the broadcast."""
        self._wake(finished, finished)

    def _wake(self, call_ids: Iterable[str], delivered: Mapping[str, object] = _NOTHING) -> None:
        with self._lock:
            woken = [(call_id, list(self._watches.get(call_id, ()))) for call_id in call_ids]
        for call_id, watches in woken:
            for watch in watches:
                watch.notify(call_id, delivered.get(call_id))

    def _on_subscribed(self) -> None:
        self._subscribed.set()
        with self._lock:
            watches = {watch for group in self._watches.values() for watch in group}
        for watch in watches:
            watch.notify(None)
