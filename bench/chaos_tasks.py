"""The chaos benchmark's workflow: 100 roots x 3 children x 2 grandchildren.

Every execution appends a line to the history file named by CALLPLANE_CHAOS_HISTORY
(appends of short lines are atomic), so the run can be checked afterwards.
"""

from __future__ import annotations

import os
import time

from sdk.decorators import WorkflowRunner

runner = WorkflowRunner(os.environ.get("CALLPLANE_SERVER_URL", "http://localhost:5001"))


def _note(*fields) -> None:
    with open(os.environ["CALLPLANE_CHAOS_HISTORY"], "a") as history:
        history.write(" ".join(str(f) for f in (time.time(), os.getpid(), *fields)) + "\n")


@runner.stage
def root(i):
    _note("root", i)
    return sum(child.map([i] * 3, range(3)))  # queued: any worker may take them


@runner.stage
def child(i, j):
    _note("child", i, j)
    return grandchild(i, j, 0) + grandchild(i, j, 1)  # run in the child's slot


@runner.stage
def grandchild(i, j, k):
    _note("grandchild", i, j, k)
    time.sleep(0.01)
    return i * 100 + j * 10 + k


def expected_root(i: int) -> int:
    return sum(i * 100 + j * 10 + k for j in range(3) for k in range(2))


@runner.stage
def too_deep():
    """A poison outcome: a result nested far past what callplane keeps."""
    _note("too_deep")
    value: object = 0
    for _ in range(2000):
        value = [value]
    return value


@runner.stage
def forgery_target(label):
    """A real call whose job the benchmark then copies under forged ids: each
    execution notes its label, so a forged copy that ran would show."""
    _note("target", label)
    return label
