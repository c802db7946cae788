"""Stages with limits, for tests/test_limits.py: each takes a while, so that the
recorded start and finish times show how many ran at once."""

import os
import time

from sdk.decorators import WorkflowRunner

runner = WorkflowRunner(os.environ.get("CALLPLANE_SERVER_URL", "http://localhost:5001"))


@runner.stage(concurrency=2)
def pair(i, seconds=0.5):
    time.sleep(seconds)
    return i


@runner.stage(concurrency=1, key="customer")
def per_customer(customer, i, seconds=0.3):
    time.sleep(seconds)
    return [customer, i]


@runner.stage(rate="10/s")
def rated(i):
    return i


@runner.stage
def plain(label, seconds=0.0):
    time.sleep(seconds)
    return label


@runner.stage(concurrency=1)
def nested(depth):
    """A stage limited to one call at a time that waits on a call of itself."""
    return nested(depth - 1) + 1 if depth > 0 else 0


@runner.stage(concurrency=1)
def holds_slot(path, seconds):
    """Marks its start in `path`, then holds its slot for `seconds`."""
    with open(path, "a") as file:
        file.write(f"{os.getpid()}\n")
    time.sleep(seconds)
    return "done"


@runner.stage
def waits_on_pair(n):
    """A parent blocked on its limited children."""
    return pair.map(range(n), [1.0] * n)


@runner.stage(concurrency=1)
def sleeps_inside(depth):
    """Limited to one at a time, waits on a call of itself that sleeps (its slot's
    chain is suspended, then woken, both of one gate)."""
    if depth == 0:
        runner.sleep(0.5)
        return 0
    return sleeps_inside(depth - 1) + 1
