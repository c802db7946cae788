"""`callplane demo --keep`: the quick start's run, kept up to be looked at in the web
view (the run page, rq-dashboard, the API page), until Ctrl-C or SIGTERM stops all of it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import requests

from sdk.transport import Transport
from tests.conftest import ROOT, redis_database


def test_the_kept_demo_serves_its_run_until_interrupted(redis_url, tmp_path):
    # A Redis the demo must leave alone: it starts one of its own.
    untouched = redis_database(redis_url, 4)
    Transport.from_url(untouched).redis.flushdb()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}",
           "REDIS_URL": untouched, "PYTHONUNBUFFERED": "1"}
    env.pop("CALLPLANE_TOKEN", None)
    demo = subprocess.Popen([sys.executable, "-m", "controlplane.cli", "demo", "--keep"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in demo.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        output = "".join(lines)
        assert "Result: {'status': 'success'" in output, output
        assert "redis: a private redis-server on port" in output
        assert Transport.from_url(untouched).redis.dbsize() == 0
        run_page = re.search(r"web view: +(\S+)", output).group(1)
        server_url, run_id = run_page.split("/calls/")
        assert requests.get(run_page, timeout=10).status_code == 200
        tree = requests.get(f"{server_url}/api/call/{run_id}/tree", timeout=10).json()["calls"]
        assert tree[0]["stage"] == "main" and {node["status"] for node in tree} == {"succeeded"}
        assert requests.get(f"{server_url}/rq/", timeout=10).status_code == 200
        demo.send_signal(signal.SIGTERM)  # as a process manager stops it (Ctrl-C is SIGINT)
        assert demo.wait(timeout=60) == 0
        assert "stopping" in demo.stdout.read()
        assert not _answers(server_url)
    finally:
        if demo.poll() is None:
            demo.kill()


def _answers(url: str) -> bool:
    try:
        requests.get(url + "/api/openapi.json", timeout=2)
        return True
    except requests.ConnectionError:
        return False
