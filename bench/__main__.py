"""`python -m bench`: run callplane and its peers on the same workloads and compare them.

Repeats are interleaved (each repeat runs every system in turn), so a noisy spell on the shared
machine hurts all systems alike rather than one. Progress goes to stderr, the table to stdout,
and the table with every raw number to bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import tempfile
import time
import traceback
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, RedisServer
from bench.report import CALLPLANE, render, summarize
from bench.workloads import Measurement, Row, Sizes, Workload, all_workloads

#: The report counts every row whose name starts with "callplane" as callplane's (a ratio line
#: each); a peer's name must not.
SYSTEMS = {
    "callplane": "bench.callplane_system:CallplaneSystem",
    "callplane-gunicorn": "bench.callplane_variants:CallplaneGunicorn",
    "callplane-pg": "bench.callplane_variants:CallplanePostgres",
    "rq": "bench.peers.rq_system:RQSystem",
    "celery": "bench.peers.celery_system:CelerySystem",
    "huey": "bench.peers.huey_system:HueySystem",
}
RESULTS_PATH = REPO_ROOT / "bench" / "results" / "latest.json"
Runs = dict[str, dict[str, list[Row]]]  # workload -> row -> one entry per repeat
#: A system that did not start: its error row and the workloads it takes part in (None: all).
Failed = dict[str, tuple[Row, frozenset[str] | None]]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Run callplane and its peers on the same workloads.")
    parser.add_argument("--repeats", type=int, help="runs per workload and system (default 3)")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated")
    parser.add_argument("--workloads", default="w1,w2,w2b,w3,w3one,conc,slots,memory",
                        help="comma-separated")
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 repeat: a smoke run")
    args = parser.parse_args(argv)
    args.systems = _choices(parser, args.systems, SYSTEMS)
    args.workloads = _choices(parser, args.workloads, all_workloads(Sizes()))
    args.repeats = args.repeats or (1 if args.quick else 3)
    return args


def _choices(parser: argparse.ArgumentParser, text: str, known: dict[str, Any]) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(known))
    if unknown:
        parser.error(f"unknown {', '.join(unknown)}; choose from {', '.join(known)}")
    return names


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_class(name: str) -> type:
    module_name, class_name = SYSTEMS[name].split(":")
    system_class = getattr(importlib.import_module(module_name), class_name)
    if system_class.name != name:  # rows are named after the system: keep them as listed
        raise ValueError(f"{SYSTEMS[name]} is named {system_class.name!r}, not {name!r}")
    return system_class


def start_system(system_class: type, name: str, stack: ExitStack, workdir: Path) -> Any:
    """The system on a Redis of its own, closed (then the Redis stopped) when `stack` ends."""
    server = stack.enter_context(RedisServer(workdir / name / "redis"))
    system = system_class(server.url, workdir / name)
    stack.callback(system.close)
    progress(f"[{name}] private redis-server at {server.url}")
    return system


def describe(error: BaseException) -> str:
    """The error on one line, for a table cell."""
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


def measure(workload: Workload, system: Any, sizes: Sizes) -> Measurement:
    """One run; a failure becomes an error row, so the other systems go on."""
    started = time.monotonic()
    try:
        rows = workload.measure(system, sizes)
    except Exception as error:  # noqa: BLE001 - any peer failure is reported, not fatal
        traceback.print_exc(file=sys.stderr)
        rows = {system.name: {"error": describe(error)}}
    for name, row in rows.items():
        shown = {key: value for key, value in row.items() if key != "latencies_ms"}
        progress(f"  {name}: {shown} ({time.monotonic() - started:.1f} s)")
    return rows


def start_systems(names: list[str], stack: ExitStack, workdir: Path) -> tuple[list, Failed]:
    """The systems that started, and an error row for each peer that did not."""
    systems, failed = [], {}
    for name in names:
        try:
            system_class = load_class(name)
        except ImportError as error:
            if name.startswith(CALLPLANE):  # optional: the engineer may not have it yet
                progress(f"note: skipping {name} ({error})")
            else:
                failed[name] = ({"error": f"cannot import: {error}"}, None)
            continue
        try:
            systems.append(start_system(system_class, name, stack, workdir))
        except Exception as error:  # noqa: BLE001 - reported in the system's rows
            failed[name] = ({"error": f"cannot start: {describe(error)}"}, system_class.workloads)
    return systems, failed


def runs_workload(system: Any, workload: Workload) -> bool:
    """Whether the workload applies to the system and the system takes part in it."""
    return workload.applies(system) and (system.workloads is None
                                         or workload.key in system.workloads)


def run(args: argparse.Namespace, sizes: Sizes, stack: ExitStack, runs: Runs) -> None:
    """Fill `runs[workload][row]` with one entry per repeat, every system in each repeat."""
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
    systems, failed = start_systems(args.systems, stack, workdir)
    workloads = all_workloads(sizes)
    for key in args.workloads:
        workload = workloads[key]
        table = runs.setdefault(key, {name: [error] for name, (error, keys) in failed.items()
                                      if keys is None or key in keys})
        for repeat in range(1, args.repeats + 1):
            for system in (s for s in systems if runs_workload(s, workload)):
                if any("error" in entry for entry in table.get(system.name, [])):
                    continue  # it failed once: repeating would only cost more deadlines
                progress(f"{key} repeat {repeat}/{args.repeats}: {system.name}")
                for row, values in measure(workload, system, sizes).items():
                    table.setdefault(row, []).append(values)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = Sizes.quick() if args.quick else Sizes()
    # SIGTERM takes Ctrl-C's path. The interrupt is handled inside the stack, so the clients'
    # pending handles are dropped while their Redis still answers.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    runs: Runs = {}
    status = 0
    load_before = os.getloadavg()  # a busy shared machine explains odd numbers afterwards
    progress(f"load average before: {load_before[0]:.2f}")
    with ExitStack() as stack:
        try:
            run(args, sizes, stack, runs)
        except KeyboardInterrupt:
            progress("interrupted: stopping workers and redis-servers; partial results follow")
            status = 130
    workloads = [all_workloads(sizes)[key] for key in args.workloads if key in runs]
    medians = {w.key: {row: summarize(w, entries) for row, entries in runs[w.key].items()}
               for w in workloads}
    table = render(workloads, medians)
    print(table, end="")
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(json.dumps({
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "repeats": args.repeats,
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "systems": args.systems, "sizes": asdict(sizes), "table": table,
        "medians": medians, "runs": runs}, indent=1))
    progress(f"raw numbers: {RESULTS_PATH.relative_to(REPO_ROOT)}")
    return status


if __name__ == "__main__":
    sys.exit(main())
