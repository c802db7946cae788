"""Start callplane's processes on this machine: the demo and the tests both use it."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

from sdk.settings import environment_with
from sdk.transport import Transport, answers

#: How long a started process may take to answer before it is declared failed.
START_TIMEOUT_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(ready: Callable[[], bool], what: str, process: subprocess.Popen | None = None,
               timeout: float = START_TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before it was ready")
        if ready():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} was not ready after {timeout:.0f} s")


def http_answers(url: str) -> bool:
    """Whether a server answers there (a 401 of one that wants a token counts)."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except urllib.error.HTTPError as exc:
        return exc.code == 401
    except OSError:
        return False


def start_redis_server(port: int, directory: Path, *options: str) -> subprocess.Popen:
    """A private, non-persistent redis-server on `port` (needs the redis-server
    binary), with more of its `options` (such as `--replicaof HOST PORT`)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server is not installed")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(directory), *options],
        stdout=subprocess.DEVNULL,
    )
    wait_until(lambda: answers(f"redis://127.0.0.1:{port}/0"), "redis-server", process)
    return process


def server_command(port: int, *options: str) -> list[str]:
    """`python -m controlplane` on `port`, with `options` (e.g. "--server", "gunicorn")."""
    return [sys.executable, "-m", "controlplane", "--port", str(port), *options]


def worker_command(server_url: str, workflow_file: str | Path, repo_name: str,
                   commit_hash: str, name: str, *options: str) -> list[str]:
    """`python -m sdk.worker` with the seed's flags, its name, and `options`."""
    return [sys.executable, "-m", "sdk.worker", "--server-url", server_url,
            "--repo-name", repo_name, "--workflow-file", str(workflow_file),
            "--commit-hash", commit_hash, "--name", name, *options]


def start_server(port: int, env: dict[str, str], *options: str, **popen) -> subprocess.Popen:
    """server_command, returned once it answers."""
    process = subprocess.Popen(server_command(port, *options), env=environment_with(env), **popen)
    wait_until(lambda: http_answers(f"http://127.0.0.1:{port}/api/openapi.json"),
               "the control plane", process)
    return process


def start_worker(server_url: str, redis_url: str, workflow_file: str | Path,
                 repo_name: str = "callplane", commit_hash: str = "HEAD",
                 env: dict[str, str] | None = None, options: tuple[str, ...] = (),
                 **popen) -> subprocess.Popen:
    """worker_command, returned once RQ lists it."""
    name = f"worker-{uuid.uuid4().hex[:8]}"
    process = subprocess.Popen(
        worker_command(server_url, workflow_file, repo_name, commit_hash, name, *options),
        env=environment_with({**(env or {}), "REDIS_URL": redis_url}), **popen,
    )
    workers = Transport.from_url(redis_url).rq_workers
    wait_until(lambda: workers.registered(name), f"worker {name}", process)
    process.worker_name = name
    return process


def stop(process: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM (a worker finishes its call first), then SIGKILL if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
