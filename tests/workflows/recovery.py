"""Stages for the recovery tests: each execution leaves a line in a log file,
so a test can count executions and kill the process of a chosen one."""

import os
import signal
import time
import uuid
from pathlib import Path

from sdk.decorators import WorkflowRunner
from sdk.errors import EventTimeout

runner = WorkflowRunner(os.environ.get("CALLPLANE_SERVER_URL", "http://localhost:5001"))


def _log_execution(log: str) -> int:
    """Append this process's pid to `log`; which execution this is (1 = the first)."""
    with open(log, "a") as file:
        file.write(f"{os.getpid()}\n")
    return len(Path(log).read_text().split())


@runner.stage
def slow_the_first_time(log, seconds):
    """The first execution takes `seconds` (time to kill or stop its worker)."""
    execution = _log_execution(log)
    if execution == 1:
        time.sleep(seconds)
    return execution


@runner.stage(isolate=True)
def die_the_first_time(log):
    """The first execution kills its own process; later ones succeed."""
    execution = _log_execution(log)
    if execution == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return execution


@runner.stage(isolate=True)
def always_die(log):
    """A poison call: every execution kills its own process."""
    _log_execution(log)
    os.kill(os.getpid(), signal.SIGKILL)


@runner.stage
def echo(value):
    return value


@runner.stage
def logged_nap(log, seconds, value):
    """Note the execution, take `seconds`, return `value`."""
    _log_execution(log)
    time.sleep(seconds)
    return value


@runner.stage
def step(log, i):
    with open(log, "a") as file:
        file.write(f"{i}\n")
    return i


@runner.stage
def six_steps(log, parent_log, pause):
    """Six children in turn; the first execution pauses after the third, so a test
    can kill its worker there."""
    execution = _log_execution(parent_log)
    total = 0
    for i in range(6):
        total += step(log, i)
        if i == 2 and execution == 1:
            time.sleep(pause)
    return total


@runner.stage(retries=3, backoff=0.05, retry_on=ValueError)
def flaky(log, failures):
    """Raises ValueError on its first `failures` executions."""
    execution = _log_execution(log)
    if execution <= failures:
        raise ValueError(f"execution {execution} fails")
    return execution


@runner.stage(retries=3, backoff=0.05, retry_on=ValueError)
def raises_unlisted(log):
    _log_execution(log)
    raise KeyError("not an error this stage retries")


@runner.stage
def calls_flaky(log, failures):
    return flaky(log, failures)


@runner.stage(timeout=1)
def overrun(seconds):
    time.sleep(seconds)
    return "done"


@runner.stage
def fails_once(log):
    if _log_execution(log) == 1:
        raise RuntimeError("the first execution fails")
    return "the second one does not"


@runner.stage
def tree_of_naps(log, queued, seconds):
    """`queued` children wait on the queue while one more naps in this slot."""
    handles = [logged_nap.submit(log, seconds, i) for i in range(queued)]
    return logged_nap(log, seconds, -1) + sum(handle.result() for handle in handles)


@runner.stage(isolate=True)
def isolated_nap(log, seconds):
    _log_execution(log)
    time.sleep(seconds)
    return "woke up"


@runner.stage
def map_then_pause(log, parent_log, pause):
    """Three children in parallel; the first execution pauses after them."""
    results = step.map([log] * 3, range(3))
    if _log_execution(parent_log) == 1:
        time.sleep(pause)
    return results


@runner.stage
def echo_later(value, delay):
    """A child call delayed by `delay` seconds (it is queued, never run in place)."""
    return echo.options(delay=delay)(value)


@runner.stage
def appointment(delay, at):
    """Its own parameters are named as the options of `options()` are."""
    return {"delay": delay, "at": at}


@runner.stage
def token(log):
    """A value made once and then recorded (a new one on every execution)."""
    _log_execution(log)
    return uuid.uuid4().hex


@runner.stage
def sleeps_between(log, seconds):
    """A token, a durable sleep, another token: the first is the recorded one."""
    before = token(log)
    runner.sleep(seconds)
    return [before, token(log)]


@runner.stage
def calls_a_sleeper(log, seconds):
    """Its child sleeps while running in place in this call's slot."""
    return sleeps_between(log, seconds)


@runner.stage
def sleeps_then_calls(log):
    """Breaks the rule: a sleep at position 0 in its first run, a call there after."""
    if _log_execution(log) == 1:
        runner.sleep(0.5)
    return echo("position 0")


@runner.stage(retries=1, backoff=0.01, retry_on=ValueError)
def calls_then_sleeps(log):
    """Breaks the rule the other way: a call at position 0, a sleep there when retried."""
    if _log_execution(log) == 1:
        echo("position 0")
        raise ValueError("run me again")
    runner.sleep(0.5)
    return "unreachable"


@runner.stage
def awaits_approval(log, key, timeout=None):
    """A token, a wait for the event sent to `key`, another token."""
    before = token(log)
    payload = runner.wait_for_event(key, timeout=timeout)
    return [before, payload, token(log)]


@runner.stage
def calls_an_approver(log, key):
    """Its child waits for an event while running in place in this call's slot."""
    return awaits_approval(log, key)


@runner.stage
def times_out_waiting(key, timeout):
    """Waits for an event that does not come: says what it caught."""
    try:
        runner.wait_for_event(key, timeout=timeout)
    except EventTimeout as exc:
        return f"{type(exc).__name__}: {exc}"
    return "no timeout"


@runner.stage
def waits_for_another_key(log, key):
    """Breaks the rule: waits for `key` in its first run, another key at the same position after."""
    return runner.wait_for_event(key if _log_execution(log) == 1 else key + "-other", timeout=1)


@runner.stage
def leaves_a_child(log, seconds):
    """Finishes while the child it started naps on (a run with a call still running)."""
    logged_nap.submit(log, seconds, "the child")
    return "the parent is done"
