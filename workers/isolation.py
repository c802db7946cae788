"""Run one call in a fresh process of its own, for isolation (`--isolate`, or a stage
with `isolate=True` or a `timeout`): whatever the call does to its process (leaks,
global state, a crash) ends with it, and a call past its timeout is stopped for
real. The worker forks, as RQ's default worker does; the child builds its own
connections, runs the call and sends back what it gave through a pipe; the
worker reports it.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable

from sdk.decorators import Stage
from sdk.errors import ProcessDied, StageTimeout
from sdk.records import CallMessage, ErrorRecord, from_json, to_json
from sdk.reports import LostReport
from workers.attempts import Ran
from workers.reporting import Reporter
from workers.running import RunningCalls

#: How `run_in_child` says the child was stopped at its timeout.
TIMED_OUT = "was stopped at its timeout"


class Isolation:
    """One attempt of a call in a fresh process, stopped at its stage's timeout."""

    def __init__(self, running: RunningCalls, reporter: Reporter, worker_name: str,
                 once_in_fresh_process: Callable[[CallMessage], Ran]):
        self._running = running
        self._reporter = reporter
        self._worker = worker_name
        #: Runs the attempt inside the forked process, on everything built anew there.
        self._once_there = once_in_fresh_process

    def once(self, message: CallMessage, stage: Stage | None) -> Ran | None:
        """What the attempt gave; None if its process died (it is reported lost)."""
        timeout = stage.timeout if stage is not None else None

        def in_child() -> str:
            return to_json(self._once_there(message))

        def started(pid: int) -> None:
            self._running.child_started(message.id, pid)

        try:
            ended, sent = run_in_child(in_child, timeout, started)
        finally:
            self._running.child_ended(message.id)
        if self._running.is_cancelled(message.id):
            return Ran.cancelled(message.id)
        if sent is not None:
            return from_json(sent, Ran, "an isolated attempt's answer")
        if ended == TIMED_OUT:
            error = ErrorRecord.system(
                StageTimeout, f"the call was stopped after {timeout:g} s, its stage's timeout"
            )
            timed_out = StageTimeout(message.stage, message.id, error)
            return Ran(error=error, retryable=stage.retry.retries_after(timed_out, message.attempt))
        error = ErrorRecord.system(
            ProcessDied, f"the process running this call {ended or 'exited without reporting'}"
        )
        self._reporter.lost(message.id, LostReport(self._worker, message.attempt, error))
        return None


def run_in_child(
    target: Callable[[], str],
    timeout: float | None = None,
    started: Callable[[int], None] | None = None,
) -> tuple[str | None, str | None]:
    """Run `target` in a forked child and wait for it, `timeout` seconds at most
    (then the child is killed). `started` hears the child's pid.

    Returns how the child ended (None if it exited cleanly, else "killed by
    SIGKILL", "exited with code 1" or TIMED_OUT) and the text `target` returned,
    if the child got to send it.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into the worker's loop
        os.close(read_end)
        code = 0
        try:
            data = target().encode()
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(data)
        except BaseException:  # noqa: BLE001 - report anything, then leave
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(write_end)
    if started is not None:
        started(pid)
    received, timed_out = _read_until_closed(read_end, timeout)
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    if timed_out:
        return TIMED_OUT, None
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}", None
    code = os.WEXITSTATUS(status)
    sent = received.decode() if code == 0 and received else None
    return (None if code == 0 else f"exited with code {code}"), sent


def _read_until_closed(fd: int, timeout: float | None) -> tuple[bytes, bool]:
    """Everything written to the pipe until the child closes it; (data, timed out)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    chunks = []
    try:
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return b"", True
            readable, _, _ = select.select([fd], [], [], remaining)
            if readable:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    return b"".join(chunks), False
                chunks.append(chunk)
    finally:
        os.close(fd)
