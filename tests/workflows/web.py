"""A small report workflow for the web view's tests: one call fails until a flag
file exists (a downstream outage that someone then fixes), so a retry succeeds."""

import os
from pathlib import Path

from sdk.decorators import WorkflowRunner

runner = WorkflowRunner(os.environ.get("CALLPLANE_SERVER_URL", "http://localhost:5001"))


@runner.stage
def report(flag_file):
    numbers = extract()
    squares = square.map(numbers)
    return publish(flag_file, sum(squares))


@runner.stage
def extract():
    return [1, 2, 3, 4]


@runner.stage
def square(x):
    return x * x


@runner.stage
def publish(flag_file, total):
    if not Path(flag_file).exists():
        raise ConnectionError("the report store refused the upload")
    return {"published": total}
