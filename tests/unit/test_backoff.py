"""sdk.backoff: full jitter, and retrying until a deadline."""

from __future__ import annotations

import itertools
import random
import time

import pytest

from sdk.backoff import delays, full_jitter, retry_until

pytestmark = pytest.mark.unit


def test_pauses_are_full_jitter_under_a_doubling_bound_and_a_cap():
    rng = random.Random(1)
    pauses = list(itertools.islice(delays(0.1, 1.0, rng), 12))
    assert all(0 <= p <= min(1.0, 0.1 * 2 ** i) for i, p in enumerate(pauses))
    assert full_jitter(1.0, 60.0, 1, random.Random(2)) <= 1.0


def test_retry_until_returns_once_it_works_and_reports_each_retry():
    answers = iter([ConnectionError("a"), ConnectionError("b"), "done"])
    heard = []

    def attempt():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert retry_until(attempt, ConnectionError, 10, heard.append) == "done"
    assert [str(e) for e in heard] == ["a", "b"]


def test_retry_until_raises_the_last_error_after_its_deadline_and_never_other_errors():
    calls = []

    def failing():
        calls.append(time.monotonic())
        raise ConnectionError(len(calls))

    started = time.monotonic()
    with pytest.raises(ConnectionError):
        retry_until(failing, ConnectionError, 0.3)
    assert len(calls) > 1 and calls[-1] - started >= 0.3
    with pytest.raises(KeyError):
        retry_until(lambda: {}["x"], ConnectionError, 10)
