"""Stages the integration tests run on real workers."""

import logging
import os
import threading
import time

from sdk.decorators import WorkflowRunner
from sdk.errors import StageFailed

runner = WorkflowRunner(os.environ.get("CALLPLANE_SERVER_URL", "http://localhost:5001"))


@runner.stage
def add(a, b):
    return a + b


@runner.stage
def fail(message):
    raise ValueError(message)


@runner.stage
def nested(depth):
    print(f"nested {depth}")
    return 0 if depth == 0 else 1 + nested(depth - 1)


@runner.stage
def fan_in(n):
    return [add(i, i) for i in range(n)]


@runner.stage
def sleep_then_add(seconds, a, b):
    time.sleep(seconds)
    return add(a, b)


@runner.stage
def threaded(n):
    """Calls stages from threads it starts itself; each must still be its child."""
    results = [None] * n

    def work(i):
        results[i] = add(i, 1)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@runner.stage
def survives_child_failure():
    try:
        fail("child broke")
    except StageFailed as exc:
        return {"type": exc.remote_type, "message": exc.remote_message}


@runner.stage
def returns_set():
    return {1, 2}


class Declined(Exception):
    """An error of the workflow's own, which a caller may ask to get back as itself."""


@runner.stage
def logs_a_line(message):
    logging.getLogger("sample").warning(message)
    return message


@runner.stage
def refuse(reason):
    raise Declined(reason)


@runner.stage
def raise_deep(depth):
    """Calls itself `depth` times; the deepest call raises."""
    if depth == 0:
        raise ValueError("deep down")
    return raise_deep(depth - 1)


@runner.stage
def returns_nested(depth):
    """A list nested `depth` levels deep."""
    value = 0
    for _ in range(depth):
        value = [value]
    return value


@runner.stage
def prints_nul():
    """Prints a NUL, which a PostgreSQL text column refuses, and returns one in JSON."""
    print("before\x00after")
    return "kept\x00as given"


class Measure(float):
    """A float subclass, as numpy's float64 is."""


@runner.stage
def measured(values):
    """Returns, and gives its child, values that are JSON only as their base type."""
    return {"total": Measure(sum(values)), "child": measured_child(Measure(values[0]))}


@runner.stage
def measured_child(value):
    return value
