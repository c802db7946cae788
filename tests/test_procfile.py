"""The Procfile as a platform runs it: honcho runs its release step, then starts web and
worker, configured by environment variables only; the example workflow runs against
them as its own process; stopping honcho leaves no process of theirs behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import redis
import requests

from controlplane.local_cluster import free_port, http_answers, wait_until
from tests.conftest import ROOT, TEST_COMMIT, redis_database

#: The whole configuration is the environment: no .env file is read.
HONCHO = [sys.executable, "-m", "honcho", "--procfile", str(ROOT / "Procfile"), "--env", os.devnull]
#: What the Procfile's lines read; the test's own environment must not leak into them.
PROCFILE_VARIABLES = {"DATABASE_URL", "REDIS_URL", "PORT", "WEB_CONCURRENCY", "WORKFLOW_FILE",
                      "SOURCE_VERSION"}
TOKEN = "procfile-test-token"
EXPECTED = "Result: {'status': 'success', 'records_processed': 5, 'pipeline': 'ETL complete'}"


class Proc(NamedTuple):
    parent: int
    session: int
    state: str
    command: str


def procfile_environment(tmp_path: Path, redis_url: str) -> dict[str, str]:
    port = free_port()
    inherited = {name: value for name, value in os.environ.items()
                 if name not in PROCFILE_VARIABLES and not name.startswith("CALLPLANE_")}
    return {
        **inherited,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{inherited.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'procfile.db'}",
        # A Redis database of its own: two control planes on one would take each
        # other's worker reports (the session's control plane uses database 0).
        "REDIS_URL": redis_database(redis_url, 3),
        # honcho gives the first process it starts PORT, the next PORT+100, ...: web is first.
        "PORT": str(port),
        "CALLPLANE_TOKEN": TOKEN,  # the web line binds 0.0.0.0: refused without a token
        "CALLPLANE_SERVER_URL": f"http://127.0.0.1:{port}",  # for the worker's child calls
        "CALLPLANE_REPO_NAME": "procfile-test",
        "SOURCE_VERSION": TEST_COMMIT,
    }


def processes() -> dict[int, Proc]:
    """Every process on this machine, from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # it ended meanwhile
            continue
        found[int(entry.name)] = Proc(int(fields[1]), int(fields[3]), fields[0], command.strip())
    return found


def descendants(pid: int) -> dict[int, Proc]:
    everything = processes()
    tree, frontier = {}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, proc in everything.items():
            if proc.parent == parent and child not in tree:
                tree[child] = proc
                frontier.append(child)
    return tree


def kinds(tree: dict[int, Proc]) -> tuple[int, int]:
    """How many control-plane server processes and callplane workers are among `tree`."""
    commands = [proc.command for proc in tree.values()]
    return (sum("bin/callplane server " in command for command in commands),
            sum("bin/callplane worker " in command for command in commands))


def still_alive(pids: set[int], sessions: set[int]) -> dict[int, Proc]:
    """Those of `pids`, or of any process in `sessions`, that still run (zombies are dead)."""
    return {pid: proc for pid, proc in processes().items()
            if (pid in pids or proc.session in sessions) and proc.state != "Z"}


def test_the_procfile_runs_the_example_and_stops_cleanly(tmp_path, redis_url):
    env = procfile_environment(tmp_path, redis_url)
    server_url = env["CALLPLANE_SERVER_URL"]

    release = subprocess.run([*HONCHO, "start", "release"], env=env, cwd=ROOT, capture_output=True,
                             text=True, timeout=60, check=False)
    assert release.returncode == 0, release.stdout + release.stderr
    assert "created the schema at revision" in release.stdout

    log_path = tmp_path / "honcho.log"
    with open(log_path, "w") as log:
        honcho = subprocess.Popen([*HONCHO, "start", "web", "worker"], env=env, cwd=ROOT,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        workers = redis.Redis.from_url(env["REDIS_URL"])
        wait_until(lambda: http_answers(f"{server_url}/api/openapi.json"), "web", honcho)
        wait_until(lambda: any(workers.scan_iter(match="rq:worker:*")), "worker", honcho)
        # The server's main process and its WEB_CONCURRENCY (default 2) processes, and the worker.
        wait_until(lambda: kinds(descendants(honcho.pid)) == (3, 1), "every process", honcho)
        started = descendants(honcho.pid)

        example = subprocess.run(
            [sys.executable, "examples/example_workflow.py"], cwd=ROOT, capture_output=True,
            text=True, timeout=60, check=False,
            env={**os.environ, "CALLPLANE_TOKEN": TOKEN, "CALLPLANE_SERVER_URL": server_url},
        )
        assert example.returncode == 0, example.stdout + example.stderr
        assert example.stdout.rstrip().endswith(EXPECTED)

        assert requests.get(f"{server_url}/api/runs", timeout=10).status_code == 401
        runs = requests.get(f"{server_url}/api/runs", timeout=10,
                            headers={"Authorization": f"Bearer {TOKEN}"}).json()
        assert [(run["stage"], run["status"]) for run in runs] == [("main", "succeeded")]
        assert runs[0]["result"]["records_processed"] == 5

        os.killpg(honcho.pid, signal.SIGTERM)
        assert honcho.wait(30) == 128 + signal.SIGTERM
        sessions = {proc.session for proc in started.values()}
        wait_until(lambda: not still_alive(set(started), sessions), "the processes' end", timeout=10)
    finally:
        if honcho.poll() is None:
            os.killpg(honcho.pid, signal.SIGKILL)
            honcho.wait()
    output = log_path.read_text()
    assert "listening on procfile-test@000000000000.main" in output  # the worker line's variables
    assert "Granian shutdown completed" in output and "stopped" in output
