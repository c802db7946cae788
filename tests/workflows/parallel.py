"""Stages for the tests of futures, map, nesting depth, isolation and waiting."""

import os
import signal
import time

from sdk.decorators import WorkflowRunner

runner = WorkflowRunner(os.environ.get("CALLPLANE_SERVER_URL", "http://localhost:5001"))


@runner.stage
def square(x):
    return x * x


@runner.stage
def fail_on(x, bad):
    if x == bad:
        raise ValueError(f"{x} is bad")
    return x


@runner.stage
def recurse(depth):
    return 0 if depth == 0 else 1 + recurse(depth - 1)


@runner.stage
def map_squares(n):
    return sum(square.map(range(n)))


@runner.stage
def submit_and_gather(n):
    handles = [square.submit(i) for i in range(n)]
    return runner.gather(*handles)


@runner.stage
def first_finished(seconds):
    """The slow call was submitted first; as_completed must yield the fast one first."""
    slow, fast = nap.submit(seconds, "slow"), nap.submit(0, "fast")
    return [handle.result() for handle in runner.as_completed([slow, fast])]


@runner.stage
def nap(seconds, label):
    print(f"nap {label}")
    time.sleep(seconds)
    return label


@runner.stage
def wait_on_nap(seconds):
    """Submit a nap and give an idle worker time to take it, then wait for it there."""
    handle = nap.submit(seconds, "child")
    time.sleep(0.5)
    return handle.result()


@runner.stage
def handle_from_threads(n):
    """One handle read from several threads at once: one result, printed once."""
    import threading

    handle = nap.submit(0.2, "shared")
    results = []
    threads = [threading.Thread(target=lambda: results.append(handle.result())) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@runner.stage(isolate=True)
def isolated_pid():
    return os.getpid()


@runner.stage
def worker_pid():
    return os.getpid()


@runner.stage(isolate=True)
def kill_own_process():
    os.kill(os.getpid(), signal.SIGKILL)
