"""What each workload measures on a system, and which way is better for each number.

A measurement is a row per system (or per variant of one, e.g. callplane's two W2 modes),
each a mapping of metric key to value; None means the run deadlocked, and a metric a row
leaves out does not apply to that system (e.g. the control plane's CPU, for a peer).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.common import percentile

Row = dict[str, Any]
Measurement = dict[str, Row]
W2_MODES = ("dispatched", "inline")
#: callplane's W1 also runs with every call in a fresh process (worker --isolate).
W1_MODES = ("default", "isolated")
#: callplane's one-by-one submits also run inside `runner.batch()` (created together).
W3ONE_MODES = ("default", "batched")


@dataclass(frozen=True)
class Sizes:
    """How big each workload is; `quick` shrinks them for smoke runs."""

    w1_calls: int = 300
    w2_children: int = 100
    w3_calls: int = 5_000
    memory_calls: int = 100_000
    slots: int = 2
    deadline: float = 12.0  # seconds before a nested run counts as deadlocked
    conc_threads: int = 64
    conc_calls: int = 50  # per thread, in turn
    conc_slots: int = 4
    nap_seconds: float = 0.010  # what each concurrent call does: sleep, holding its slot
    #: One worker process running many calls at once (callplane's --concurrency).
    slot_calls: int = 320
    slot_seconds: float = 0.1
    slot_concurrency: int = 32
    #: The limits workload: calls of a stage limited to 2 at once per key, over keys.
    w5_calls: int = 1_000
    w5_keys: int = 10
    w5_seconds: float = 0.005
    w5_workers: int = 4

    @classmethod
    def quick(cls) -> Sizes:
        return cls(w1_calls=30, w2_children=20, w3_calls=500, memory_calls=5_000,
                   conc_threads=16, conc_calls=10, w5_calls=100)


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    higher_is_better: bool = False
    compare: bool = True  # print a callplane / best peer ratio for it


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    metrics: tuple[Metric, ...]
    measure: Callable[[Any, Sizes], Measurement]
    applies: Callable[[Any], bool] = lambda system: True


def _w1(system: Any, sizes: Sizes) -> Measurement:
    def run(**mode: str) -> Row:
        latencies = system.w1_round_trip(sizes.w1_calls, **mode)
        return {"p50_ms": percentile(latencies, 50) * 1000,
                "p90_ms": percentile(latencies, 90) * 1000,
                "p99_ms": percentile(latencies, 99) * 1000,
                "latencies_ms": [round(s * 1000, 4) for s in latencies]}

    return _by_mode(system, system.w1_round_trip, getattr(system, "w1_modes", W1_MODES), run)


def _by_mode(system: Any, method: Callable, modes: tuple[str, ...],
             run: Callable[..., Row]) -> Measurement:
    """A row per mode when `method` takes one (the default mode under the system's own name)."""
    if "mode" not in inspect.signature(method).parameters:
        return {system.name: run()}
    return {system.name if mode == "default" else f"{system.name} {mode}": run(mode=mode)
            for mode in modes}


def _nested(slots: Callable[[Sizes], int]) -> Callable[[Any, Sizes], Measurement]:
    """W2 with the given slot count; each mode of a system that has modes is a row of its own."""

    def measure(system: Any, sizes: Sizes) -> Measurement:
        def run(**mode: str) -> Row:
            seconds = system.w2_nested(sizes.w2_children, slots(sizes), sizes.deadline, **mode)
            return {"ms_per_child": None if seconds is None else seconds * 1000}

        if "mode" not in inspect.signature(system.w2_nested).parameters:
            return {system.name: run()}
        return {f"{system.name} {mode}": run(mode=mode) for mode in W2_MODES}

    return measure


def _w3(system: Any, sizes: Sizes) -> Measurement:
    calls_per_s, creations_per_s = system.w3_fanout(sizes.w3_calls, sizes.slots)
    return {system.name: {"calls_per_s": calls_per_s, "creations_per_s": creations_per_s}}


def _w3_one_by_one(system: Any, sizes: Sizes) -> Measurement:
    def run(**mode: str) -> Row:
        calls_per_s, creations_per_s = system.w3_one_by_one(sizes.w3_calls, sizes.slots, **mode)
        return {"creations_per_s": creations_per_s, "calls_per_s": calls_per_s}

    modes = getattr(system, "w3one_modes", W3ONE_MODES)
    return _by_mode(system, system.w3_one_by_one, modes, run)


def _concurrency(system: Any, sizes: Sizes) -> Measurement:
    seen = system.concurrency(sizes.conc_threads, sizes.conc_calls, sizes.conc_slots,
                              sizes.nap_seconds)
    row = {"calls_per_s": seen.calls_per_s,
           "p50_ms": percentile(seen.latencies, 50) * 1000,
           "p99_ms": percentile(seen.latencies, 99) * 1000}
    if seen.server_cpu_seconds is not None:
        row["cp_cpu_ms"] = seen.server_cpu_seconds * 1000 / len(seen.latencies)
    return {system.name: row}


def _slots(system: Any, sizes: Sizes) -> Measurement:
    seconds = system.slots(sizes.slot_calls, sizes.slot_seconds, sizes.slot_concurrency)
    return {system.name: {"seconds": seconds, "calls_per_s": sizes.slot_calls / seconds}}


def _limited(system: Any, sizes: Sizes) -> Measurement:
    rate, overlap = system.w5_limited(sizes.w5_calls, sizes.w5_keys, sizes.w5_seconds,
                                      sizes.w5_workers)
    return {system.name: {"calls_per_s": rate, "most_per_key": overlap}}


def _memory(system: Any, sizes: Sizes) -> Measurement:
    rss_mb, growth_mb = system.memory(sizes.memory_calls)
    return {system.name: {"rss_mb": rss_mb, "growth_mb": growth_mb}}


def all_workloads(sizes: Sizes) -> dict[str, Workload]:
    """The workloads by key, titled with the sizes they run at."""
    per_child = (Metric("ms_per_child", "ms/child"),)
    workloads = [
        Workload("w1", f"W1 round trip: {sizes.w1_calls} no-op calls in turn, 1 worker",
                 (Metric("p50_ms", "p50 ms"), Metric("p90_ms", "p90 ms", compare=False),
                  Metric("p99_ms", "p99 ms", compare=False)), _w1),
        Workload("w2", f"W2 nested: a job awaits {sizes.w2_children} no-op children in turn, "
                       f"{sizes.slots} slots (time inside the parent / children)",
                 per_child, _nested(lambda s: s.slots)),
        Workload("w2b", f"W2b nested, 1 slot ({sizes.deadline:.0f} s deadline)",
                 per_child, _nested(lambda s: 1)),
        Workload("w3", f"W3 fan-out: {sizes.w3_calls} no-op calls, {sizes.slots} slots "
                       "(callplane creates them a batch per request, as `map` does)",
                 (Metric("calls_per_s", "calls/s", higher_is_better=True),
                  Metric("creations_per_s", "creations/s", higher_is_better=True)), _w3),
        Workload("w3one", f"W3 one by one: one client thread submits {sizes.w3_calls} no-op "
                          f"calls, one submit() each, {sizes.slots} slots",
                 (Metric("creations_per_s", "creations/s", higher_is_better=True),
                  Metric("calls_per_s", "calls/s", higher_is_better=True)), _w3_one_by_one),
        Workload("conc", f"Concurrency: {sizes.conc_threads} client threads each call a "
                         f"{sizes.nap_seconds * 1000:.0f} ms sleep {sizes.conc_calls} times in "
                         f"turn, {sizes.conc_slots} slots (cp CPU: control plane ms per call)",
                 (Metric("calls_per_s", "calls/s", higher_is_better=True),
                  Metric("p50_ms", "p50 ms"), Metric("p99_ms", "p99 ms", compare=False),
                  Metric("cp_cpu_ms", "cp CPU ms", compare=False)), _concurrency),
        Workload("slots", f"Slots: {sizes.slot_calls} calls of a {sizes.slot_seconds:g} s sleep, "
                          f"all at once, on one worker process with --concurrency "
                          f"{sizes.slot_concurrency}",
                 (Metric("seconds", "seconds", compare=False),
                  Metric("calls_per_s", "calls/s", compare=False)),
                 _slots, applies=lambda system: hasattr(system, "slots")),
        Workload("w5", f"W5 limits: {sizes.w5_calls} calls of a {sizes.w5_seconds * 1000:g} ms "
                       f"sleep limited to 2 at once per key, over {sizes.w5_keys} keys, "
                       f"{sizes.w5_workers} workers (most per key: must be <= 2)",
                 (Metric("calls_per_s", "calls/s", higher_is_better=True, compare=False),
                  Metric("most_per_key", "max/key", compare=False)),
                 _limited, applies=lambda system: hasattr(system, "w5_limited")),
        Workload("memory", f"Memory: worker RSS over {sizes.memory_calls} calls",
                 (Metric("rss_mb", "RSS MB after warm-up", compare=False),
                  Metric("growth_mb", "growth MB", compare=False)),
                 _memory, applies=lambda system: hasattr(system, "memory")),
    ]
    return {workload.key: workload for workload in workloads}
