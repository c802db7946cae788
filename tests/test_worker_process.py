"""The worker as users start it: `python -m sdk.worker` with the seed's flags."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

import pytest
import redis
from rq import Queue, Worker
from rq.job import Job
from rq.serializers import JSONSerializer

from controlplane.local_cluster import start_worker, stop
from tests.conftest import ROOT, SAMPLE
from tests.workflows import sample


def test_seed_command_line_resolves_head_and_registers_with_rq(server_url, redis_url, env, tmp_path):
    # A workflow file in its own git repository, so HEAD has a known commit.
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "flow.py").write_text((ROOT / "examples" / "example_workflow.py").read_text())
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "flow"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()

    process = start_worker(server_url, redis_url, repo / "flow.py", "my-repo", "HEAD", env)
    try:
        connection = redis.Redis.from_url(redis_url)
        rq_worker = Worker.find_by_key(f"rq:worker:{process.worker_name}", connection=connection)
        assert f"my-repo@{head[:12]}.main" in rq_worker.queue_names()
        assert "any.extract_data" in rq_worker.queue_names()
    finally:
        stop(process)
    assert process.returncode == 0


def test_bad_workflow_file_exits_with_a_clear_message(server_url):
    completed = subprocess.run(
        [sys.executable, "-m", "sdk.worker", "--server-url", server_url, "--repo-name", "r",
         "--workflow-file", "no/such/file.py", "--commit-hash", "HEAD"],
        capture_output=True, text=True, check=False, timeout=60,
    )
    assert completed.returncode == 3
    assert "does not exist" in completed.stderr


def test_sigterm_lets_the_current_call_finish(server_url, redis_url, env, runner, workers):
    process = start_worker(server_url, redis_url, SAMPLE, "tests", "1" * 40, env)
    try:
        # Keep the shared workers busy so the new worker takes one of these.
        results, threads = [], []
        for i in range(3):
            t = threading.Thread(target=lambda i=i: results.append(sample.sleep_then_add(2.0, i, 1)))
            t.start()
            threads.append(t)
        import time

        time.sleep(0.8)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        for t in threads:
            t.join(timeout=60)
        assert sorted(results) == [1, 2, 3]
    finally:
        stop(process)


def test_rq_reads_callplane_jobs_with_its_json_serializer(api, redis_url):
    call = api("POST", "/api/call", json={"stage": "nobody_runs_this", "arguments": {"args": [7]}}).json()
    connection = redis.Redis.from_url(redis_url)
    job = Job.fetch(call["id"], connection=connection, serializer=JSONSerializer)
    assert job.func_name == "workers.executor.run_call"
    assert job.args[0]["stage"] == "nobody_runs_this" and job.args[0]["args"] == [7]
    assert job.get_status() == "queued"
    queue = Queue(call["queue"], connection=connection, serializer=JSONSerializer)
    assert call["id"] in queue.job_ids


def test_a_stock_rq_worker_runs_no_stage(api, redis_url):
    """Anyone who can write to Redis could make a stock RQ worker import a dotted path;
    callplane's job function refuses to do anything outside callplane's worker."""
    from workers.executor import run_call

    with pytest.raises(RuntimeError, match="only on callplane workers"):
        run_call({"stage": "add"})
