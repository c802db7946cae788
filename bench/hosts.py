"""`python -m bench.hosts`: completed calls per second on several hosts (network
namespaces: tests.hosts.network), with 1, 2 and 4 worker hosts behind 1 and 2
control planes, and the CPU each part spends per call. Needs root, haproxy and
PostgreSQL's initdb (the deployment of tests.hosts.deployment).

Each configuration runs `--calls` no-op calls through the balancer from the
client host (a batch of creates, then each result awaited), after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Iterable
from pathlib import Path

import psutil

from tests.hosts.deployment import Deployment, missing_tools
from tests.hosts.network import Network

WORKER_HOSTS = (1, 2, 4)
CONTROL_PLANES = (1, 2)
WARM_UP_CALLS = 300


def cpu_seconds(pids: Iterable[int]) -> float:
    """User and system CPU of these processes and all their children, so far."""
    total = 0.0
    for pid in pids:
        try:
            process = psutil.Process(pid)
            for each in (process, *process.children(recursive=True)):
                times = each.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def parts(deployment: Deployment) -> dict[str, list[int]]:
    """Which processes make up each part of the deployment."""
    named = deployment.processes
    return {
        "control planes": [p.pid for name, p in named.items() if name.startswith("cp")],
        "workers": [p.pid for name, p in named.items() if name.startswith("w")],
        "redis": [named["redis"].pid],
        "postgres": [deployment.postgres.pid],
        "haproxy": [named["lb"].pid],
    }


def measure(deployment: Deployment, calls: int, scratch: Path) -> dict:
    """One timed run of `calls` no-op calls, and each part's CPU ms per call."""
    before = {part: cpu_seconds(pids) for part, pids in parts(deployment).items()}
    out = scratch / "results.json"
    client = deployment.run_on_client("tests.hosts.client", str(calls), "0",
                                      str(scratch / "executions"), str(out))
    if client.wait(timeout=900) != 0:
        raise RuntimeError(f"the client failed: see {deployment.logs}/tests.hosts.client.log")
    answer = json.loads(out.read_text())
    after = {part: cpu_seconds(pids) for part, pids in parts(deployment).items()}
    spent = {part: after[part] - before[part] for part in before}
    spent["client"] = answer["cpu_seconds"]  # its whole life: imports and start-up too
    return {"calls_per_second": calls / answer["seconds"],
            "cpu_ms_per_call": {part: 1000 * seconds / calls for part, seconds in spent.items()}}


def run(calls: int) -> list[dict]:
    rows = []
    for control_planes in CONTROL_PLANES:
        network = Network.open()
        scratch = Path(tempfile.mkdtemp(prefix="callplane-hosts-"))
        deployment = Deployment(network, scratch, control_planes).start()
        try:
            for count in WORKER_HOSTS:
                while len(deployment.workers) < count:
                    deployment.worker_host(f"w{len(deployment.workers) + 1}")
                measure(deployment, WARM_UP_CALLS, scratch)
                row = {"control_planes": control_planes, "worker_hosts": count,
                       **measure(deployment, calls, scratch)}
                print(json.dumps(row), flush=True)
                rows.append(row)
        finally:
            deployment.close()
            network.close()
    return rows


def render(rows: list[dict]) -> str:
    parts_ = list(rows[0]["cpu_ms_per_call"])
    lines = ["control planes  worker hosts  calls/s  " + "  ".join(
        f"{part} CPU ms/call" for part in parts_)]
    for row in rows:
        cpu = "  ".join(f"{row['cpu_ms_per_call'][part]:>{len(part) + 12}.3f}" for part in parts_)
        lines.append(f"{row['control_planes']:>14}  {row['worker_hosts']:>12}  "
                     f"{row['calls_per_second']:>7.0f}  {cpu}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hosts", description=__doc__)
    parser.add_argument("--calls", type=int, default=3000, help="calls per configuration")
    args = parser.parse_args()
    missing = missing_tools()
    if missing:
        raise SystemExit(missing)
    print(render(run(args.calls)))


if __name__ == "__main__":
    main()
