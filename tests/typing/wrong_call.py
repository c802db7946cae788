"""A call a type checker must refuse: tests/test_typing.py expects exactly one
error, on the marked line."""

from __future__ import annotations

from sdk import WorkflowRunner

runner = WorkflowRunner("http://localhost:5001")


@runner.stage
def add(x: int, y: int) -> int:
    return x + y


def uses() -> int:
    return add("a", 2)  # the wrong call
