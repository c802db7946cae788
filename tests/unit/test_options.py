"""sdk.options and sdk.decorators: what a stage may be declared with, checked at once."""

from __future__ import annotations

import random

import pytest

from sdk import WorkflowRunner
from sdk.options import BACKOFF_CAP_SECONDS, RetryPolicy

pytestmark = pytest.mark.unit


def test_stage_options_are_checked_at_decoration():
    runner = WorkflowRunner("http://localhost:5001")
    with pytest.raises(TypeError, match="unknown stage option"):
        runner.stage(retry=3)
    with pytest.raises(ValueError, match="retries must be a whole number"):
        runner.stage(retries=-1)
    with pytest.raises(ValueError, match="backoff must be"):
        runner.stage(retries=2, backoff="soon")
    with pytest.raises(TypeError, match="retry_on takes an exception class"):
        runner.stage(retries=2, retry_on=ValueError("x"))
    with pytest.raises(ValueError, match="timeout must be"):
        runner.stage(timeout=0)

    @runner.stage
    def twice():
        pass

    with pytest.raises(ValueError, match="already registered"):
        runner.stage(name="twice")(lambda: None)
    with pytest.raises(ValueError, match="http://HOST:PORT"):
        WorkflowRunner("localhost:5001")


def test_a_stage_keeps_its_options_and_a_timeout_isolates_it():
    runner = WorkflowRunner("http://localhost:5001")

    @runner.stage(name="renamed", retries=2, timeout=5)
    def slow(x: int) -> int:
        return x

    assert (slow.name, slow.retry.max_attempts, slow.timeout, slow.isolate) == ("renamed", 3, 5, True)
    assert runner.stages == {"renamed": slow}


def test_arguments_that_do_not_fit_or_are_not_json_are_refused_at_the_call_site():
    runner = WorkflowRunner("http://localhost:5001")

    @runner.stage
    def add(x, *rest, **named):
        return x

    with pytest.raises(TypeError, match=r"add\(\): missing a required argument: 'x'"):
        runner.request(add, (), {}, None)
    with pytest.raises(TypeError, match=r"argument 'rest\[1\]' is not JSON-serialisable"):
        runner.request(add, (1, 2, {3}), {}, None)
    with pytest.raises(TypeError, match="argument 'k' is not JSON-serialisable"):
        runner.request(add, (1,), {"k": object()}, None)
    request = runner.request(add, (1, 2), {"k": [3]}, None)
    assert (request.arguments.args, request.arguments.kwargs, request.parent_stage_run_id) == (
        [1, 2], {"k": [3]}, None)


def test_retry_pauses_grow_exponentially_with_jitter_and_only_listed_errors_retry():
    policy = RetryPolicy(retries=20, backoff=0.5, retry_on=(KeyError,))
    rng = random.Random(7)
    pauses = [policy.pause(attempt, rng) for attempt in range(1, 21)]
    assert all(0 <= p <= min(BACKOFF_CAP_SECONDS, 0.5 * 2 ** i) for i, p in enumerate(pauses))
    assert max(pauses[:3]) <= 2.0 and max(pauses) > 10
    assert policy.retries_after(KeyError("k"), 20) and not policy.retries_after(KeyError("k"), 21)
    assert not policy.retries_after(ValueError("v"), 1)


def test_an_async_stage_is_refused_at_decoration_saying_what_to_do():
    runner = WorkflowRunner("http://localhost:5001")
    with pytest.raises(TypeError, match=r"fetch is an async def: .*asyncio\.run"):
        @runner.stage
        async def fetch(url):
            return url
    with pytest.raises(TypeError, match="async def"):
        @runner.stage(retries=2)
        async def fetch_again(url):
            return url
    assert runner.stages == {}
