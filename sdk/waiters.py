"""Wake the threads that wait on calls, from one subscription per process.

Waiting is pushed: a call's completion broadcast wakes its waiters at once. A
waiter registers before it reads state, and the subscription is confirmed before
anyone waits, so a completion can never slip between the read and the wait; a
periodic re-read guards only against a broadcast lost with a dropped connection.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from sdk.errors import RedisUnavailable
from sdk.transport import Transport

T = TypeVar("T")

#: How long start() waits for the first confirmed subscription.
SUBSCRIBE_TIMEOUT_SECONDS = 10.0


class Waiters:
    def __init__(self, transport: Transport, recheck_seconds: float):
        self._transport = transport
        self._recheck_seconds = recheck_seconds
        self._events: dict[str, set[threading.Event]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._subscribed = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Waiters:
        self._thread = threading.Thread(
            target=self._transport.listen_done,
            args=(self._wake, self._on_subscribed, self._stopping),
            name="callplane-waiters",
            daemon=True,
        )
        self._thread.start()
        if not self._subscribed.wait(SUBSCRIBE_TIMEOUT_SECONDS):
            raise RedisUnavailable("could not subscribe to completion broadcasts")
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def wait_for(self, call_id: str, check: Callable[[], T | None], timeout: float | None) -> T | None:
        """Return check()'s first non-None answer, re-asked on each wake-up; None on timeout."""
        event = threading.Event()
        with self._lock:
            self._events.setdefault(call_id, set()).add(event)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                answer = check()
                if answer is not None:
                    return answer
                remaining = self._recheck_seconds
                if deadline is not None:
                    remaining = min(remaining, deadline - time.monotonic())
                    if remaining <= 0:
                        return None
                event.wait(remaining)
                event.clear()
        finally:
            with self._lock:
                waiting = self._events.get(call_id)
                if waiting is not None:
                    waiting.discard(event)
                    if not waiting:
                        del self._events[call_id]

    def _wake(self, call_id: str) -> None:
        with self._lock:
            for event in self._events.get(call_id, ()):
                event.set()

    def _on_subscribed(self) -> None:
        self._subscribed.set()
        with self._lock:
            for events in self._events.values():
                for event in events:
                    event.set()
