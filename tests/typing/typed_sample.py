"""What a type checker sees of typed stages: tests/test_typing.py runs mypy
(strict) and pyright on this file, and every assert_type must hold."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import assert_type

from sdk import CallHandle, WorkflowRunner

runner = WorkflowRunner("http://localhost:5001")


@runner.stage
def add(x: int, y: int) -> int:
    return x + y


@runner.stage(retries=2, backoff=0.5, retry_on=(ConnectionError, TimeoutError), timeout=30)
def greet(name: str, punctuation: str = "!") -> str:
    return f"hello {name}{punctuation}"


def uses() -> None:
    assert_type(add(1, 2), int)
    handle = add.submit(1, 2)
    assert_type(handle, CallHandle[int])
    assert_type(handle.result(), int)
    assert_type(handle.result(timeout=5), int)
    assert_type(add.map([1, 2], [3, 4]), list[int])
    assert_type(greet("Ada"), str)
    assert_type(greet("Ada", punctuation="?"), str)
    assert_type(greet.submit("Ada").result(), str)
    assert_type(runner.run(add, 1, 2), int)
    later = add.options(delay=30)
    assert_type(later(1, 2), int)
    assert_type(later.submit(1, 2), CallHandle[int])
    assert_type(greet.options(at=datetime(2030, 1, 1, tzinfo=timezone.utc)).map(["Ada"]), list[str])
