"""The workflow callplane's benchmark workers load (`--workflow-file bench/callplane_tasks.py`)."""

from __future__ import annotations

import os
from time import perf_counter, sleep

from sdk.decorators import WorkflowRunner

runner = WorkflowRunner(os.environ.get("CALLPLANE_SERVER_URL", "http://localhost:5001"))


@runner.stage
def noop() -> None:
    """Do nothing: the benchmark measures the system, not the call."""


@runner.stage
def nap(seconds: float) -> None:
    """Sleep: a call that holds its slot without using the CPU (the concurrency workload)."""
    sleep(seconds)


@runner.stage
def parent(children: int) -> float:
    """Call `children` no-op children in turn, each awaited; the seconds it took."""
    started = perf_counter()
    for _ in range(children):
        noop()
    return perf_counter() - started


@runner.stage(concurrency=2, key="customer")
def keyed(customer: str, seconds: float) -> None:
    """A short sleep, at most two at once per customer (the limits workload, W5)."""
    sleep(seconds)
