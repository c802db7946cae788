"""`python -m bench.chaos`: runs of 1,000 calls while faults strike at random.

Each round submits 100 roots (each 3 children, each 2 grandchildren: 1,000 calls)
to 2 workers, under the fault kinds chosen with `--faults` (all by default):

- `kill`: a random worker is SIGKILLed every 0.5-2 s (a fresh one takes its place);
- `store`: the audit database (a PostgreSQL of the benchmark's own) is stopped
  once a round, for two leases, while calls run;
- `poison`: 5 calls a round return a result nested 2,000 levels deep;
- `forged`: 5 jobs a round are pushed into a queue by hand, copies of a real
  job under new ids.

Then it checks the audit table and the execution history every stage wrote:

- lost: calls of the round that are not in the table as succeeded;
- double completions: calls whose recorded completion changed after it was
  first seen (the table is watched twice a second during the round);
- double successes: (parent, position) pairs with more than one succeeded row;
- wrong results: roots whose result is not the expected sum;
- poison not failed: poison calls not recorded as failed with the reason;
- forged run: executions of forged jobs (the copied call's executions beyond
  its recorded attempts);
- and how long the round took, how many workers were killed, and how many
  executions there were beyond one per call (at-least-once re-runs).

Every count but the last must be 0.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import redis
import sqlalchemy as sa

from bench import chaos_tasks
from controlplane.local_cluster import (
    free_port,
    start_redis_server,
    start_server,
    start_worker,
    stop,
)
from controlplane.local_postgres import PrivatePostgres, postgres_binaries, private_postgres
from controlplane.migrate import upgrade
from controlplane.store import Store, make_engine
from controlplane.tables import stage_runs
from sdk.caller import RemoteCaller
from sdk.client import ControlPlaneClient
from sdk.context import CallContext
from sdk.transport.keys import job_key, queue_key

ROOTS = 100
CALLS_PER_ROOT = 1 + 3 + 3 * 2
LEASE_SECONDS = 3
TERMINAL = ("succeeded", "failed", "cancelled")
FAULTS = ("kill", "store", "poison", "forged")
#: Poison calls and forged jobs per round.
POISONS = FORGERIES = 5


class Cluster:
    """A private redis-server, control plane (SQLite) and workers; kills on demand."""

    def __init__(self, workdir: Path, workers: int, database_url: str | None = None,
                 postgres: PrivatePostgres | None = None):
        self.workdir = workdir
        self.postgres = postgres
        redis_port, server_port = free_port(), free_port()
        self.redis_url = f"redis://127.0.0.1:{redis_port}/0"
        self.server_url = f"http://127.0.0.1:{server_port}"
        self.history = workdir / "history.txt"
        self.env = {
            "REDIS_URL": self.redis_url,
            "DATABASE_URL": database_url or f"sqlite:///{workdir / 'callplane.db'}",
            "CALLPLANE_LEASE_SECONDS": str(LEASE_SECONDS),
            "CALLPLANE_CHAOS_HISTORY": str(self.history),
        }
        self.logs = open(workdir / "processes.log", "w")  # noqa: SIM115 - for the cluster's life
        self.redis = start_redis_server(redis_port, workdir)
        self.server = start_server(server_port, self.env, stdout=self.logs, stderr=subprocess.STDOUT)
        self.workers = [self._worker() for _ in range(workers)]
        self.kills = 0

    def _worker(self) -> subprocess.Popen:
        return start_worker(self.server_url, self.redis_url, chaos_tasks.__file__, "chaos", "chaos",
                            self.env, stdout=self.logs, stderr=subprocess.STDOUT)

    def kill_one(self, rng: random.Random) -> None:
        victim = rng.choice(self.workers)
        victim.kill()
        victim.wait()
        self.kills += 1
        self.workers[self.workers.index(victim)] = self._worker()

    def store_outage(self, seconds: float) -> None:
        """Stop the audit database for `seconds`, then start it again."""
        self.postgres.stop()
        time.sleep(seconds)
        self.postgres.start()

    def close(self) -> None:
        for process in [*self.workers, self.server, self.redis]:
            stop(process)
        self.logs.close()


class CompletionWatch:
    """Reads every finished row twice a second; a recorded completion that later
    changes (status, result, attempt, worker or time) is a double completion."""

    def __init__(self, store: Store):
        self._store = store
        self.seen: dict[str, tuple] = {}
        self.changed: set[str] = set()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stopping.set()
        self._thread.join()
        self.read()

    def _run(self) -> None:
        while not self._stopping.wait(0.5):
            with contextlib.suppress(sa.exc.DBAPIError):  # the store fault: read it next time
                self.read()

    def read(self) -> None:
        columns = [stage_runs.c[n] for n in ("id", "status", "result", "attempt", "worker", "finished_at")]
        query = sa.select(*columns).where(stage_runs.c.status.in_(TERMINAL))
        with self._store.engine.connect() as conn:
            for row in conn.execute(query):
                completion = tuple(row[1:])
                if self.seen.setdefault(row.id, completion) != completion:
                    self.changed.add(row.id)


def run_round(cluster: Cluster, store: Store, rng: random.Random, number: int,
              faults: set[str]) -> dict:
    runner = chaos_tasks.runner
    offset = number * ROOTS
    executions_before = _lines(cluster.history)
    kills_before = cluster.kills
    done = threading.Event()

    def killer() -> None:
        while not done.wait(rng.uniform(0.5, 2.0)):
            cluster.kill_one(rng)

    def outage() -> None:
        if not done.wait(rng.uniform(0.5, 2.0)):
            cluster.store_outage(2 * LEASE_SECONDS)

    label = f"genuine-{number}"
    copied = _forge(cluster, label) if "forged" in faults else None
    started = time.monotonic()
    with CompletionWatch(store) as watch:
        poisons = runner.submit(chaos_tasks.too_deep, [((), {})] * POISONS) if "poison" in faults else []
        handles = runner.submit(chaos_tasks.root, [((offset + i,), {}) for i in range(ROOTS)])
        threads = [threading.Thread(target=target, daemon=True)
                   for kind, target in (("kill", killer), ("store", outage)) if kind in faults]
        for thread in threads:
            thread.start()
        results = runner.gather(*handles, return_exceptions=True)
        poisoned = runner.gather(*poisons, return_exceptions=True)
        done.set()
        for thread in threads:
            thread.join()
    seconds = time.monotonic() - started
    wrong = sum(result != chaos_tasks.expected_root(offset + i) for i, result in enumerate(results))
    ids = _tree_ids(store, [handle.id for handle in handles])
    succeeded = sum(status == "succeeded" for status in ids.values())
    return {
        "round": number + 1,
        "calls": ROOTS * CALLS_PER_ROOT,
        "lost": ROOTS * CALLS_PER_ROOT - succeeded,
        "double completions": len(watch.changed & ids.keys()),
        "double successes": _double_successes(store, ids.keys()),
        "wrong results": wrong,
        "poison not failed": sum("nested more than" not in str(p) for p in poisoned),
        "forged run": _forged_runs(cluster, store, copied, label) if copied else 0,
        "seconds": round(seconds, 1),
        "workers killed": cluster.kills - kills_before,
        "re-executions": _lines(cluster.history) - executions_before - ROOTS * CALLS_PER_ROOT
        - len(poisons) - _target_lines(cluster, label),
    }


def _forge(cluster: Cluster, label: str) -> str:
    """Run a real call, then push FORGERIES copies of its job under new ids; the
    real call's id."""
    handle = chaos_tasks.forgery_target.submit(label)
    handle.result(timeout=120)
    raw = redis.Redis.from_url(cluster.redis_url)
    job = raw.hgetall(job_key(handle.id))
    for n in range(FORGERIES):
        forged_id = f"forged-{label}-{n}"
        raw.hset(job_key(forged_id), mapping={**job, b"status": b"queued"})
        raw.rpush(queue_key(job[b"origin"].decode()), forged_id)
    return handle.id


def _target_lines(cluster: Cluster, label: str) -> int:
    lines = cluster.history.read_text().splitlines() if cluster.history.exists() else []
    return sum(line.split()[2:] == ["target", label] for line in lines)


def _forged_runs(cluster: Cluster, store: Store, copied: str, label: str) -> int:
    """Executions of the copied call beyond its recorded attempts: forged ones."""
    attempts = store.get(copied).attempt
    return max(0, _target_lines(cluster, label) - attempts)


def _tree_ids(store: Store, roots: list[str]) -> dict[str, str]:
    found = {}
    for root in roots:
        found.update({row.id: row.status.value for row in store.tree(root)})
    return found


def _double_successes(store: Store, ids) -> int:
    query = (
        sa.select(stage_runs.c.parent_stage_run_id, stage_runs.c.position)
        .where(stage_runs.c.status == "succeeded", stage_runs.c.parent_stage_run_id.is_not(None),
               stage_runs.c.id.in_(list(ids)))
        .group_by(stage_runs.c.parent_stage_run_id, stage_runs.c.position)
        .having(sa.func.count() > 1)
    )
    with store.engine.connect() as conn:
        return len(conn.execute(query).all())


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=None, help="for the moments and victims")
    parser.add_argument("--faults", default=",".join(FAULTS),
                        help=f"comma-separated, of {', '.join(FAULTS)} (default: all)")
    args = parser.parse_args()
    faults = set(args.faults.split(","))
    if faults - set(FAULTS):
        parser.error(f"unknown fault kind(s) {sorted(faults - set(FAULTS))}: choose from {FAULTS}")
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    workdir = Path(tempfile.mkdtemp(prefix="callplane-chaos-"))
    with contextlib.ExitStack() as stack:
        postgres = None
        if "store" in faults:
            binaries = postgres_binaries()
            if binaries is None:
                parser.error("the store fault needs PostgreSQL's initdb and pg_ctl (Debian: postgresql)")
            postgres = stack.enter_context(private_postgres(binaries))
            upgrade(postgres.url)
        print(f"seed {seed}; lease {LEASE_SECONDS} s; faults {', '.join(sorted(faults))}; "
              f"audit {'PostgreSQL' if postgres else 'SQLite'}; processes' logs in {workdir}")
        run_rounds(args.rounds, workdir, postgres, rng, faults)


def run_rounds(count: int, workdir: Path, postgres: PrivatePostgres | None, rng: random.Random,
               faults: set[str]) -> None:
    cluster = Cluster(workdir, 2, postgres.url if postgres else None, postgres)
    store = Store(make_engine(cluster.env["DATABASE_URL"]))
    client = ControlPlaneClient(cluster.server_url)
    chaos_tasks.runner.attach(client, RemoteCaller(client), CallContext())
    os.environ["CALLPLANE_CHAOS_HISTORY"] = str(cluster.history)
    rounds = []
    try:
        for number in range(count):
            rounds.append(run_round(cluster, store, rng, number, faults))
            print("  ".join(f"{key} {value}" for key, value in rounds[-1].items()), flush=True)
    finally:
        cluster.close()
        store.engine.dispose()
    totals = {key: sum(r[key] for r in rounds) for key in rounds[0] if key not in ("round",)}
    print("totals: " + "  ".join(f"{key} {value:g}" for key, value in totals.items()))
    must_be_zero = ("lost", "double completions", "double successes", "wrong results",
                    "poison not failed", "forged run")
    failed = [key for key in must_be_zero if totals[key]]
    print("every count that must be 0 is 0" if not failed else f"NOT ZERO: {', '.join(failed)}")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
