"""`python -m bench.profile`: where the time of one call goes, process by process.

Starts a private redis-server, a control plane (SQLite) and one worker, then
makes W1 calls (a client calls a no-op stage and waits), W2 calls (a stage
calls a no-op child in turn, inline) and W3 calls (a client submits no-op calls one
`submit()` at a time, then a batch of them, and gathers them) and prints, per call, the wall time and
the CPU time each process spent (user + system, from psutil). CPU time is
steadier than wall time on a shared machine. With `--spy server|worker`, it
also records the chosen process with py-spy (`bench/results/profile-*.txt`,
collapsed stacks for a flame graph).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import psutil

from bench import callplane_tasks
from bench.common import REPO_ROOT
from controlplane.local_cluster import (
    free_port,
    start_redis_server,
    start_server,
    start_worker,
    stop,
)
from controlplane.server import SERVERS
from sdk.caller import RemoteCaller
from sdk.client import ControlPlaneClient
from sdk.context import CallContext

RESULTS = REPO_ROOT / "bench" / "results"


def cpu_seconds(processes: dict[str, list[psutil.Process]]) -> dict[str, float]:
    return {
        name: sum(p.cpu_times().user + p.cpu_times().system for p in group)
        for name, group in processes.items()
    }


def measure(label: str, calls: int, run, processes) -> None:
    before, started = cpu_seconds(processes), time.perf_counter()
    run()
    wall = (time.perf_counter() - started) / calls * 1000
    after = cpu_seconds(processes)
    shares = ", ".join(f"{name} {(after[name] - before[name]) / calls * 1000:.2f}" for name in after)
    print(f"{label}: {wall:.2f} ms wall per call; CPU ms per call: {shares}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--spy", choices=["server", "worker"], help="also record this process with py-spy")
    parser.add_argument("--server", choices=SERVERS, default=SERVERS[0], help="the control plane's HTTP server")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="callplane-profile-"))
    redis_port, server_port = free_port(), free_port()
    redis_url, server_url = f"redis://127.0.0.1:{redis_port}/0", f"http://127.0.0.1:{server_port}"
    env = {"REDIS_URL": redis_url, "DATABASE_URL": f"sqlite:///{workdir / 'callplane.db'}"}
    logs = open(workdir / "processes.log", "w")  # noqa: SIM115 - open for the processes' lifetime
    started = [start_redis_server(redis_port, workdir)]
    try:
        started.append(start_server(server_port, env, "--server", args.server, stdout=logs,
                                    stderr=subprocess.STDOUT))
        started.append(start_worker(server_url, redis_url, callplane_tasks.__file__, "profile",
                                    "profile", env, stdout=logs, stderr=subprocess.STDOUT))
        redis_server, server, worker = started
        client = ControlPlaneClient(server_url)
        callplane_tasks.runner.attach(client, RemoteCaller(client), CallContext())
        processes = {
            "control plane": [psutil.Process(server.pid), *psutil.Process(server.pid).children(True)],
            "worker": [psutil.Process(worker.pid)],
            "client": [psutil.Process()],
            "redis": [psutil.Process(redis_server.pid)],
        }
        for _ in range(50):
            callplane_tasks.noop()
        spy = _spy(args.spy, {"server": server, "worker": worker}) if args.spy else None
        measure("W1 client -> no-op stage", args.calls,
                lambda: [callplane_tasks.noop() for _ in range(args.calls)], processes)
        measure("W2 stage -> no-op child, inline", args.calls,
                lambda: callplane_tasks.parent(args.calls), processes)
        measure("W3 client -> one submit() per call", args.calls,
                lambda: callplane_tasks.runner.gather(
                    *[callplane_tasks.noop.submit() for _ in range(args.calls)]),
                processes)
        measure("W3 client -> batch of no-op calls", args.calls * 5,
                lambda: callplane_tasks.runner.gather(
                    *callplane_tasks.runner.submit(callplane_tasks.noop, [((), {})] * (args.calls * 5))),
                processes)
        if spy is not None:
            spy.send_signal(2)
            spy.wait()
            print(f"py-spy stacks: {RESULTS / f'profile-{args.spy}.txt'}")
    finally:
        for process in reversed(started):
            stop(process)
        logs.close()


def _spy(which: str, processes: dict[str, subprocess.Popen]) -> subprocess.Popen:
    RESULTS.mkdir(parents=True, exist_ok=True)
    spy = subprocess.Popen(
        ["py-spy", "record", "-p", str(processes[which].pid), "--subprocesses", "-r", "250", "--gil",
         "-f", "raw", "-o", str(RESULTS / f"profile-{which}.txt"), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    time.sleep(1)
    return spy


if __name__ == "__main__":
    main()
