"""The numbers an operator scales by: counted here as calls are created and
finish, added to totals in Redis once a second (sdk.transport.metrics), and
read back for `GET /metrics` (Prometheus' text format, written by
prometheus_client) and `GET /api/stats` (JSON for autoscalers and the web view).

The totals live in Redis, not in each process, so every process and every host
answers with the same figures for the whole deployment: a scraper may ask any
control plane behind the load balancer. A process that dies loses at most its
last second of counts.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone

import msgspec
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest

from controlplane.duty import keep_doing
from sdk.records import CallRecord
from sdk.transport.metrics import Figures
from sdk.wire import Status

#: How often each process adds what it counted to the totals.
FLUSH_SECONDS = 1.0
#: The histograms' upper bounds, in seconds (a call waits or runs from
#: milliseconds to an hour).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
           900.0, 3600.0)
#: The counters: name, help, label names.
COUNTERS = (
    ("calls_created", "Calls created", ("stage",)),
    ("calls_finished", "Calls finished (succeeded, failed or cancelled)", ("stage", "status")),
    ("retries", "Attempts that raised and were run again (the stages' retries)", ()),
    ("lost_attempts", "Attempts given up as lost (their worker died, hung or was cut off)",
     ("stage",)),
    ("missed_wakeups", "Finished calls a waiter found in the table, their broadcast lost", ()),
)
HISTOGRAMS = (
    ("queue_wait_seconds", "From a call's creation (or due time) to its start"),
    ("run_seconds", "From a call's start to its finish"),
)
MINUTES_SHOWN = 60


class QueueBacklog(msgspec.Struct, frozen=True):
    queue: str
    depth: int
    #: How long the call at the queue's head (the next to start) has been queued.
    oldest_age_seconds: float | None


class Minute(msgspec.Struct, frozen=True):
    """One minute of the last hour: calls finished, and how long they took."""

    minute: datetime
    finished: int
    failed: int
    mean_wait_seconds: float | None
    mean_run_seconds: float | None
    #: Creation to finish, read from the histogram (the bucket's upper bound).
    p50_seconds: float | None
    p95_seconds: float | None


class Stats(msgspec.Struct, frozen=True):
    queues: list[QueueBacklog]
    #: Calls on queues, in all: what an autoscaler of workers scales by.
    backlog: int
    delayed: int
    held_by_limits: int
    workers_alive: int
    recorder_unread: int
    recorder_unrecorded: int
    last_hour: list[Minute]


class Metrics:
    def __init__(self, figures: Figures):
        self._figures = figures
        self._lock = threading.Lock()
        self._totals: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._minutes: defaultdict[int, Counter[str]] = defaultdict(Counter)

    def created(self, calls: Iterable[CallRecord]) -> None:
        with self._lock:
            self._totals["calls_created"].update(_labels(call.stage) for call in calls)

    def finished(self, calls: Iterable[CallRecord]) -> None:
        with self._lock:
            for call in calls:
                self._finished(call)

    def retried(self, count: int) -> None:
        if count:
            self._count("retries", _labels(), count)

    def lost(self, stage: str) -> None:
        self._count("lost_attempts", _labels(stage))

    def missed_wakeups(self, count: int) -> None:
        self._count("missed_wakeups", _labels(), count)

    def flush(self) -> None:
        """Add what this process counted to the totals in Redis; kept for the next
        flush if Redis is away."""
        with self._lock:
            totals, minutes = self._totals, self._minutes
            self._totals, self._minutes = defaultdict(Counter), defaultdict(Counter)
        if not totals and not minutes:
            return
        try:
            self._figures.add(totals, minutes)
        except Exception:
            with self._lock:
                for metric, fields in totals.items():
                    self._totals[metric].update(fields)
                for minute, fields in minutes.items():
                    self._minutes[minute].update(fields)
            raise

    def run(self, stopping: threading.Event) -> None:
        """Flush every FLUSH_SECONDS until `stopping` is set, then once more."""
        keep_doing(self.flush, FLUSH_SECONDS, stopping, "metrics", "the figures")
        with contextlib.suppress(Exception):  # stopping: Redis away loses the last second
            self.flush()

    def exposition(self) -> bytes:
        """Every metric in Prometheus' text format."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self._figures))
        return generate_latest(registry)

    def stats(self, now: datetime) -> Stats:
        backlog = self._figures.backlog()
        delayed, held = self._figures.waiting_elsewhere()
        unread, unrecorded = self._figures.recorder_lag()
        return Stats(
            queues=[QueueBacklog(q, depth, age) for q, (depth, age) in backlog.items()],
            backlog=sum(depth for depth, _ in backlog.values()),
            delayed=delayed, held_by_limits=held, workers_alive=self._figures.workers_alive(),
            recorder_unread=unread, recorder_unrecorded=unrecorded, last_hour=self._last_hour(now),
        )

    def _last_hour(self, now: datetime) -> list[Minute]:
        last = int(now.timestamp() // 60)
        minutes = self._figures.minutes(last - MINUTES_SHOWN + 1, last)
        return [_minute(minute, minutes.get(minute, {}))
                for minute in range(last - MINUTES_SHOWN + 1, last + 1)]

    def _count(self, metric: str, labels: str, amount: float = 1) -> None:
        with self._lock:
            self._totals[metric][labels] += amount

    def _finished(self, call: CallRecord) -> None:
        """Count one finished call (the lock held)."""
        self._totals["calls_finished"][_labels(call.stage, call.status.value)] += 1
        if call.finished_at is None:
            return
        minute = self._minutes[int(call.finished_at.timestamp() // 60)]
        minute["finished"] += 1
        minute["failed"] += call.status is Status.FAILED
        minute[f"le:{_bucket(_seconds(call.created_at, call.finished_at))}"] += 1
        if call.started_at is None:
            return
        waited_from = max(call.created_at, call.not_before or call.created_at)
        for name, seconds in (("queue_wait_seconds", _seconds(waited_from, call.started_at)),
                              ("run_seconds", _seconds(call.started_at, call.finished_at))):
            self._totals[name][_labels(call.stage, _bucket(seconds))] += 1
            self._totals[name][_labels(call.stage, "sum")] += seconds
            minute[name] += seconds
        minute["started"] += 1


class _Collector:
    """Builds every metric family from Redis each time it is collected."""

    def __init__(self, figures: Figures):
        self._figures = figures

    def collect(self) -> Iterator[Metric]:
        names = [name for name, _, _ in COUNTERS] + [name for name, _ in HISTOGRAMS]
        totals = self._figures.totals(names)
        for name, text, labels in COUNTERS:
            family = CounterMetricFamily(f"callplane_{name}", text, labels=labels)
            for values, amount in totals[name].items():
                family.add_metric(json.loads(values), amount)
            yield family
        for name, text in HISTOGRAMS:
            yield _histogram(name, text, totals[name])
        yield from self._gauges()

    def _gauges(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("callplane_queue_depth", "Calls on each queue", labels=["queue"])
        age = GaugeMetricFamily("callplane_queue_oldest_age_seconds",
                                "How long the call at each queue's head has been queued",
                                labels=["queue"])
        for queue, (count, oldest) in self._figures.backlog().items():
            depth.add_metric([queue], count)
            age.add_metric([queue], oldest or 0.0)
        yield depth
        yield age
        delayed, held = self._figures.waiting_elsewhere()
        unread, unrecorded = self._figures.recorder_lag()
        for name, text, value in (
            ("calls_delayed", "Calls delayed or asleep, not yet due", delayed),
            ("calls_held_by_limits", "Calls held back by a concurrency or rate limit", held),
            ("workers_alive", "Workers whose heartbeat is current", self._figures.workers_alive()),
            ("recorder_lag", "Workers' reports no recorder has read yet", unread),
            ("recorder_unrecorded", "Reports read by a recorder and not yet recorded", unrecorded),
        ):
            yield GaugeMetricFamily(f"callplane_{name}", text, value=value)


def _histogram(name: str, text: str, fields: dict[str, float]) -> Metric:
    """A histogram family from its per-bucket counts and sums by stage."""
    by_stage: defaultdict[str, dict[str, float]] = defaultdict(dict)
    for values, amount in fields.items():
        stage, bound = json.loads(values)
        by_stage[stage][bound] = amount
    family = HistogramMetricFamily(f"callplane_{name}", text, labels=["stage"])
    for stage, counts in sorted(by_stage.items()):
        running, buckets = 0.0, []
        for bound in (*map(_bound, BUCKETS), "+Inf"):
            running += counts.get(bound, 0.0)
            buckets.append((bound, running))
        family.add_metric([stage], buckets, sum_value=counts.get("sum", 0.0))
    return family


def _minute(minute: int, fields: dict[str, float]) -> Minute:
    finished, started = int(fields.get("finished", 0)), fields.get("started", 0)
    counts = [(bound, fields.get(f"le:{_bound(bound)}", 0.0)) for bound in BUCKETS]
    counts.append((float("inf"), fields.get("le:+Inf", 0.0)))
    return Minute(
        minute=datetime.fromtimestamp(minute * 60, timezone.utc), finished=finished,
        failed=int(fields.get("failed", 0)),
        mean_wait_seconds=fields.get("queue_wait_seconds", 0) / started if started else None,
        mean_run_seconds=fields.get("run_seconds", 0) / started if started else None,
        p50_seconds=_quantile(counts, finished, 0.5), p95_seconds=_quantile(counts, finished, 0.95),
    )


def _quantile(counts: list[tuple[float, float]], total: int, q: float) -> float | None:
    """The upper bound of the bucket the q-quantile falls in."""
    if not total:
        return None
    running = 0.0
    for bound, count in counts:
        running += count
        if running >= q * total:
            return bound if bound != float("inf") else BUCKETS[-1]
    return BUCKETS[-1]


def _labels(*values: str) -> str:
    return json.dumps(values)


def _bucket(seconds: float) -> str:
    """The histogram bucket `seconds` falls in, by its upper bound."""
    index = bisect.bisect_left(BUCKETS, seconds)
    return _bound(BUCKETS[index]) if index < len(BUCKETS) else "+Inf"


def _bound(bound: float) -> str:
    return f"{bound:g}"


def _seconds(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds())
