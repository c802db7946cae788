"""Run one call in a fresh process of its own, for isolation (`--isolate`, or a stage
with `isolate=True`): whatever the call does to its process (leaks, global state,
a crash) ends with it. The worker forks, as RQ's default worker does; the child
builds its own connections, runs the call, reports it, and exits.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Callable


def run_in_child(target: Callable[[], None]) -> str | None:
    """Run `target` in a forked child and wait for it; None if it exited cleanly,
    else how it ended ("killed by SIGKILL", "exited with code 1")."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never return into the worker's loop
        code = 0
        try:
            target()
        except BaseException:  # noqa: BLE001 - report anything, then leave
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    code = os.WEXITSTATUS(status)
    return None if code == 0 else f"exited with code {code}"
