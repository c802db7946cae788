"""The calls a worker process runs now: what its leases renew and where a
cancellation must reach.

The lease keeper reads the attempts held here; the cancellation listener marks
calls cancelled, kills the forked processes of isolated ones, and learns
whether one runs on the main thread (which the worker then interrupts).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator


class RunningCalls:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: The attempts running here, whose leases this process renews: {call id: attempt}.
        self._attempts: dict[str, int] = {}
        #: Of those, the ones run by this process's main thread, and the forked
        #: processes running isolated ones.
        self._on_main_thread: set[str] = set()
        self._children: dict[str, int] = {}
        #: Running calls that were cancelled: they stop and are not retried.
        self._cancelled: set[str] = set()
        #: How deep the main thread is in stage code: only there may a
        #: cancellation interrupt it (never in the worker's own loop).
        self._main_stage_depth = 0

    def hold(self, call_id: str, attempt: int) -> None:
        """Renew this attempt's lease from here on."""
        with self._lock:
            self._attempts[call_id] = attempt
            if threading.current_thread() is threading.main_thread():
                self._on_main_thread.add(call_id)

    def release(self, call_id: str) -> None:
        """The call no longer runs here."""
        with self._lock:
            self._attempts.pop(call_id, None)
            self._on_main_thread.discard(call_id)
            self._cancelled.discard(call_id)

    def attempts(self) -> list[tuple[str, int]]:
        """The (call id, attempt) pairs running here now."""
        with self._lock:
            return list(self._attempts.items())

    def child_started(self, call_id: str, pid: int) -> None:
        """A forked process runs the call now (a cancellation kills it)."""
        with self._lock:
            self._children[call_id] = pid

    def child_ended(self, call_id: str) -> None:
        with self._lock:
            self._children.pop(call_id, None)

    @contextlib.contextmanager
    def in_stage_code(self) -> Iterator[None]:
        """While this thread runs a stage's own code (where a cancellation may
        interrupt the main thread)."""
        on_main = threading.current_thread() is threading.main_thread()
        if on_main:
            self._main_stage_depth += 1
        try:
            yield
        finally:
            if on_main:
                self._main_stage_depth -= 1

    def cancel(self, call_ids: list[str]) -> bool:
        """Stop those of `call_ids` that run here: kill the processes of isolated
        ones; True if one runs on the main thread (the caller interrupts it)."""
        with self._lock:
            mine = [call_id for call_id in call_ids if call_id in self._attempts]
            self._cancelled.update(mine)
            children = [self._children[i] for i in mine if i in self._children]
            on_main = any(call_id in self._on_main_thread for call_id in mine)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return on_main

    def is_cancelled(self, call_id: str) -> bool:
        with self._lock:
            return call_id in self._cancelled

    def interruption(self) -> str | None:
        """Why the main thread must stop the stage it runs now: a call it runs was
        cancelled. None outside stage code.

        Called from a signal handler on the main thread, so it takes no lock (the
        main thread may hold it): the set intersection is one step under the GIL.
        """
        if self._main_stage_depth == 0:
            return None
        stopped = self._cancelled & self._on_main_thread
        return f"call {min(stopped)} was cancelled" if stopped else None
