"""Handles to calls that run while their caller goes on: `stage.submit()` returns one.

A handle answers like a `concurrent.futures.Future` (`done()`, `result()`,
`exception()`), and is safe to share between threads: the first thread to see
the call finish stores its record, everyone reads that. What the call printed is
replayed into the caller's output once, when its outcome is first read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from sdk.calling import Caller
from sdk.errors import CallCancelled, StageFailed
from sdk.wire import Status

R = TypeVar("R")


class CallHandle(Generic[R]):
    def __init__(
        self,
        caller: Caller,
        stage: str,
        call: dict[str, Any],
        replay: Callable[[str], Any],
    ):
        self._caller = caller
        self.stage = stage
        self.call = call
        self._replay = replay
        self._record: dict[str, Any] | None = None
        self._replayed = False
        self._lock = threading.Lock()
        # A call that had finished already (made by an earlier attempt of its
        # parent) is settled now, if the answer carries its outcome: a batch
        # create answers without one, and the outcome is then read when asked for.
        if Status(call["status"]).is_terminal and "result" in call:
            self._settle(call)

    @property
    def id(self) -> str:
        return self.call["id"]

    def done(self) -> bool:
        """Whether the call has finished (succeeded, failed or cancelled); never blocks."""
        if self._record is None:
            try:
                for record in self._caller.finished([self.call], 0):
                    self._settle(record)
            except TimeoutError:
                return False
        return True

    def result(self, timeout: float | None = None) -> R:
        """The call's result; raises its failure (StageFailed, CallCancelled), or
        TimeoutError if it has not finished within `timeout` seconds."""
        return unwrap(self._outcome(timeout))

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The call's failure as an exception, or None if it succeeded."""
        try:
            self.result(timeout)
        except (StageFailed, CallCancelled) as exc:
            return exc
        return None

    def _outcome(self, timeout: float | None) -> dict[str, Any]:
        if self._record is None:
            for record in self._caller.finished([self.call], timeout):
                self._settle(record)
        with self._lock:
            if not self._replayed:
                self._replayed = True
                if self._record.get("output"):
                    self._replay(self._record["output"])
        return self._record

    def _settle(self, record: dict[str, Any]) -> None:
        with self._lock:
            if self._record is None:
                self._record = record

    def __repr__(self) -> str:
        state = self._record["status"] if self._record else "not finished"
        return f"<CallHandle {self.stage} {self.id} {state}>"


def unwrap(record: dict[str, Any]) -> Any:
    """A finished call's result, or its failure raised as an exception."""
    status = Status(record["status"])
    if status is Status.SUCCEEDED:
        return record.get("result")
    if status is Status.CANCELLED:
        raise CallCancelled(f"stage {record['stage']!r} (call {record['id']}) was cancelled")
    # A local run keeps the exception itself, so a debugger reaches the stage's frame.
    raise StageFailed(record["stage"], record["id"], record.get("error") or {}) from record.get(
        "_exception"
    )


def as_completed(handles: Iterable[CallHandle], timeout: float | None = None) -> Iterator[CallHandle]:
    """Yield each handle as its call finishes (those already finished first)."""
    yield from _settling(list(handles), timeout, every=False)


def gather(handles: Iterable[CallHandle], return_exceptions: bool = False) -> list[Any]:
    """The results of all `handles`, in their order.

    Raises the first failure in that order, after every call has finished; with
    `return_exceptions`, failures take their place in the list instead.
    """
    handles = list(handles)
    for _ in _settling(handles, None, every=True):
        pass
    results = []
    for handle in handles:
        try:
            results.append(handle.result())
        except (StageFailed, CallCancelled) as exc:
            if not return_exceptions:
                raise
            results.append(exc)
    return results


def _settling(handles: list[CallHandle], timeout: float | None, every: bool) -> Iterator[CallHandle]:
    """Settle `handles` through their callers, yielding each as it finishes."""
    by_caller: dict[int, list[CallHandle]] = {}
    for handle in handles:
        if handle._record is not None:
            yield handle
        else:
            by_caller.setdefault(id(handle._caller), []).append(handle)
    for group in by_caller.values():
        waiting = {handle.id: handle for handle in group}
        calls = [handle.call for handle in group]
        for record in group[0]._caller.finished(calls, timeout, every):
            handle = waiting.pop(record["id"], None)
            if handle is not None:
                handle._settle(record)
                yield handle
