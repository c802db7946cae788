"""Handles to calls that run while their caller goes on: `stage.submit()` returns one.

A handle answers like a `concurrent.futures.Future` (`done()`, `result()`,
`exception()`), and is safe to share between threads: the first thread to see
the call finish stores its outcome, everyone reads that. What the call printed is
replayed into the caller's output once, when its outcome is first read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar, cast

from sdk.caller import Caller
from sdk.errors import CallCancelled, StageFailed, failure
from sdk.records import CallRecord, ErrorRecord, Outcome
from sdk.wire import Status

R = TypeVar("R")


class CallHandle(Generic[R]):
    def __init__(
        self,
        caller: Caller,
        stage: str,
        call: CallRecord,
        replay: Callable[[str], Any],
        own: Mapping[str, type[StageFailed]] | None = None,
    ):
        """`own`: exception classes its failure raises as (see sdk.errors.failure)."""
        self._caller = caller
        self._own = own
        self.stage = stage
        self.call = call
        self._replay = replay
        self._settled: Outcome | None = None
        self._replayed = False
        self._lock = threading.Lock()

    @property
    def id(self) -> str:
        return self.call.id

    def done(self) -> bool:
        """Whether the call has finished (succeeded, failed or cancelled); never blocks."""
        if self._settled is None:
            try:
                for outcome in self._caller.finished([self.call], 0):
                    self._settle(outcome)
            except TimeoutError:
                return False
        return True

    def result(self, timeout: float | None = None) -> R:
        """The call's result; raises its failure (StageFailed, CallCancelled), or
        TimeoutError if it has not finished within `timeout` seconds."""
        return cast(R, unwrap(self._outcome(timeout), self._own))

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The call's failure as an exception, or None if it succeeded."""
        try:
            self.result(timeout)
        except (StageFailed, CallCancelled) as exc:
            return exc
        return None

    def _outcome(self, timeout: float | None) -> Outcome:
        if self._settled is None:
            for outcome in self._caller.finished([self.call], timeout):
                self._settle(outcome)
        settled = self._settled
        if settled is None:  # finished() yields every call or raises TimeoutError
            raise TimeoutError(f"call {self.id} has not finished")
        with self._lock:
            if not self._replayed:
                self._replayed = True
                if settled.output:
                    self._replay(settled.output)
        return settled

    def _settle(self, outcome: Outcome) -> None:
        with self._lock:
            if self._settled is None:
                self._settled = outcome

    def __repr__(self) -> str:
        state = self._settled.status if self._settled else "not finished"
        return f"<CallHandle {self.stage} {self.id} {state}>"


def unwrap(outcome: Outcome, own: Mapping[str, type[StageFailed]] | None = None) -> Any:
    """A finished call's result, or its failure raised as an exception (as one of
    the `own` classes, by recorded name, where it names one)."""
    if outcome.status is Status.SUCCEEDED:
        return outcome.result
    if outcome.status is Status.CANCELLED:
        raise CallCancelled(f"stage {outcome.stage!r} (call {outcome.id}) was cancelled")
    error = outcome.error or ErrorRecord("Exception", "")
    # A local run keeps the exception itself, so a debugger reaches the stage's frame.
    raise failure(outcome.stage, outcome.id, error, outcome.worker, own) from getattr(
        outcome, "exception", None)


def as_completed(
    handles: Iterable[CallHandle[Any]], timeout: float | None = None
) -> Iterator[CallHandle[Any]]:
    """Yield each handle as its call finishes (those already finished first)."""
    yield from _settling(list(handles), timeout, every=False)


def gather(handles: Iterable[CallHandle[Any]], return_exceptions: bool = False) -> list[Any]:
    """The results of all `handles`, in their order.

    Raises the first failure in that order, after every call has finished; with
    `return_exceptions`, failures take their place in the list instead.
    """
    settled = list(handles)
    for _ in _settling(settled, None, every=True):
        pass
    results: list[Any] = []
    for handle in settled:
        try:
            results.append(handle.result())
        except (StageFailed, CallCancelled) as exc:
            if not return_exceptions:
                raise
            results.append(exc)
    return results


def _settling(
    handles: list[CallHandle[Any]], timeout: float | None, every: bool
) -> Iterator[CallHandle[Any]]:
    """Settle `handles` through their callers, yielding each as it finishes."""
    by_caller: dict[int, list[CallHandle[Any]]] = {}
    for handle in handles:
        if handle._settled is not None:
            yield handle
        else:
            by_caller.setdefault(id(handle._caller), []).append(handle)
    for group in by_caller.values():
        waiting = {handle.id: handle for handle in group}
        calls = [handle.call for handle in group]
        for outcome in group[0]._caller.finished(calls, timeout, every):
            finished = waiting.pop(outcome.id, None)
            if finished is not None:
                finished._settle(outcome)
                yield finished

