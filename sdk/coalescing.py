"""Send what concurrent threads ask for together, without delaying a thread alone.

While one thread's request is in flight, the items other threads submit wait and
then go out together in the next request, sent by one of them. A thread alone
never waits for anyone: it sends its own items at once. Each thread returns only
once its own items were answered, so nothing is deferred past its caller.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Ticket(Generic[T, R]):
    """One caller's items, and what became of them."""

    def __init__(self, items: list[T]):
        self.items = items
        self.results: list[R] | None = None
        self.error: BaseException | None = None
        self.leads = False  # told to send the waiting tickets itself
        self.woken = threading.Event()

    @property
    def done(self) -> bool:
        return self.results is not None or self.error is not None

    def answer(self) -> list[R]:
        if self.error is not None:
            raise self.error
        assert self.results is not None
        return self.results


class Coalescer(Generic[T, R]):
    def __init__(self, send: Callable[[list[T]], list[R]], limit: int,
                 refused: type[BaseException] = Exception):
        """`send` answers items in order; a batch holds up to `limit` items (one
        caller's items are never split). When a batch of several callers' items is
        `refused`, each caller's items are sent again alone, so one bad item is
        refused to its own caller only."""
        self._send = send
        self._limit = limit
        self._refused = refused
        self._lock = threading.Lock()
        self._waiting: deque[_Ticket[T, R]] = deque()
        self._sending = False

    def __call__(self, items: list[T]) -> list[R]:
        ticket: _Ticket[T, R] = _Ticket(items)
        with self._lock:
            self._waiting.append(ticket)
            ticket.leads = not self._sending
            self._sending = True
        try:
            if not ticket.leads:
                ticket.woken.wait()
            while ticket.leads and not ticket.done:
                self._send_batch(self._take())
        finally:  # also when interrupted: whoever waits must not wait on this thread
            self._leave(ticket)
        return ticket.answer()

    def _take(self) -> list[_Ticket[T, R]]:
        with self._lock:
            batch = [self._waiting.popleft()]
            size = len(batch[0].items)
            while self._waiting and size + len(self._waiting[0].items) <= self._limit:
                size += len(self._waiting[0].items)
                batch.append(self._waiting.popleft())
        return batch

    def _send_batch(self, batch: list[_Ticket[T, R]]) -> None:
        try:
            results = self._send([item for ticket in batch for item in ticket.items])
        except self._refused as exc:
            if len(batch) == 1:
                self._settle(batch[0], error=exc)
            else:
                for ticket in batch:
                    self._send_batch([ticket])
            return
        except BaseException as exc:  # noqa: BLE001 - every caller of the batch hears of it
            for ticket in batch:
                self._settle(ticket, error=exc)
            return
        start = 0
        for ticket in batch:
            self._settle(ticket, results=results[start:start + len(ticket.items)])
            start += len(ticket.items)

    @staticmethod
    def _settle(ticket: _Ticket[T, R], results: list[R] | None = None,
                error: BaseException | None = None) -> None:
        ticket.results, ticket.error = results, error
        ticket.woken.set()

    def _leave(self, ticket: _Ticket[T, R]) -> None:
        """`ticket`'s caller returns: if it was the one sending, the first waiting
        caller sends from now on (or nobody needs to)."""
        with self._lock:
            if ticket in self._waiting:
                self._waiting.remove(ticket)
            if not ticket.leads:
                return
            successor = self._waiting[0] if self._waiting else None
            self._sending = successor is not None
            if successor is not None:
                successor.leads = True
        if successor is not None:
            successor.woken.set()
