"""Only what the control plane created runs: jobs pushed into a queue by anyone
else (a copy of a real job under another id, pickle, text that is not UTF-8, a
job without its attempt) are set aside in the failed registry with the reason,
counted, and never run; the worker goes on with the next call."""

from __future__ import annotations

import pickle
import time

import redis

from controlplane.local_cluster import wait_until
from sdk.transport import Transport
from sdk.transport.keys import failed_registry, job_key, queue_key, started_registry
from tests.cluster import executions
from tests.workflows import recovery


def test_jobs_the_control_plane_did_not_create_never_run(run, tmp_path):
    cluster = run
    cluster.worker()
    raw = redis.Redis.from_url(cluster.redis_url)  # bytes, as an intruder writes them
    log = tmp_path / "executions.log"
    handle = recovery.logged_nap.submit(str(log), 0, "real")
    assert handle.result(timeout=30) == "real" and len(executions(log)) == 1
    genuine = {k.decode(): v for k, v in raw.hgetall(job_key(handle.id)).items()}
    queue = genuine["origin"].decode()
    before = Transport.from_url(cluster.redis_url).queues.rejected()

    forged = {
        "copy": {**genuine, "status": b"queued"},  # a real job's data, signature and all
        "pickled": {**genuine, "status": b"queued", "data": pickle.dumps(("os.system", "id"))},
        "not-utf8": {**genuine, "status": b"queued", "data": b"\xff\xfe[not json"},
        "no-attempt": {k: v for k, v in {**genuine, "status": b"queued"}.items()
                       if k != "cp_attempt"},
    }
    for name, fields in forged.items():
        raw.hset(job_key(f"forged-{name}"), mapping=fields)
        raw.rpush(queue_key(queue), f"forged-{name}")

    wait_until(lambda: raw.zcard(failed_registry(queue)) >= len(forged), "jobs set aside",
               timeout=30)
    time.sleep(0.5)
    assert len(executions(log)) == 1  # none of them ran
    for name in forged:
        call_id = f"forged-{name}"
        assert raw.zscore(failed_registry(queue), call_id) is not None
        assert raw.zscore(started_registry(queue), call_id) is None
        job = raw.hgetall(job_key(call_id))
        assert job[b"status"] == b"failed"
        assert b"callplane refused to run job" in job[b"exc_info"], job[b"exc_info"]
    reasons = {name: raw.hget(job_key(f"forged-{name}"), "exc_info").decode() for name in forged}
    assert "signature is not the control plane's" in reasons["copy"]
    assert "not callplane JSON" in reasons["pickled"] and "not callplane JSON" in reasons["not-utf8"]
    assert "no cp_attempt" in reasons["no-attempt"]
    assert Transport.from_url(cluster.redis_url).queues.rejected() == before + len(forged)
    assert recovery.echo(5) == 5  # the worker went on


def test_a_real_call_whose_job_was_refused_runs_again_from_the_table(run, store_of):
    """A job queued unsigned (by a control plane from before jobs were signed), or
    tampered with: the worker refuses it, and the call, being real, is queued
    again with a job of its own and runs."""
    cluster = run
    raw = redis.Redis.from_url(cluster.redis_url)
    handle = recovery.echo.submit("kept")  # no worker yet: its job waits in its queue
    assert raw.hdel(job_key(handle.id), "cp_signature") == 1
    cluster.worker()
    assert handle.result(timeout=60) == "kept"
    record = store_of.get(handle.id)
    assert record.attempt == 2 and record.status.value == "succeeded"
    # Its first attempt was claimed and refused, then given up when its lease ended.
    assert [attempt.status for attempt in store_of.attempts(handle.id)] == ["lost"]
