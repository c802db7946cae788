"""Helpers every benchmarked system shares: statistics, a private Redis, worker processes.

Each system gets its own non-persistent redis-server on a free port, so no run touches the
developer's Redis on 6379 or another system's keys. Worker processes are killed on every exit
path (normal return, exception, Ctrl-C, interpreter exit), so a deadlocked peer never outlives
the run.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import redis

if TYPE_CHECKING:
    from typing_extensions import Self

REPO_ROOT = Path(__file__).resolve().parents[1]
REDIS_URL_ENV = "BENCH_REDIS_URL"
STOP_GRACE_SECONDS = 2.0


def median(values: Sequence[float]) -> float:
    """The middle value (mean of the two middle ones for an even count)."""
    return percentile(values, 50)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile with linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.005) -> None:
    """Poll `predicate` until it holds; raise TimeoutError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done after {timeout:.0f} s")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def blocking_client(url: str) -> redis.Redis:
    """A client with no socket timeout: redis-py 8's default 5 s breaks longer blocking reads."""
    return redis.Redis.from_url(url, socket_timeout=None)


def most_at_once(spans: Sequence[tuple[float, float]]) -> int:
    """The most of these (start, end) spans that cover one moment (an end before a
    start at the same moment)."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


class Processes:
    """Subprocesses started together and always killed together, whatever the exit path.

    Each runs in its own session, so a Ctrl-C aimed at the runner does not reach it half-way
    through a job; the runner kills it instead (in `stop`, or at interpreter exit).
    """

    def __init__(self, commands: Sequence[Sequence[str]], log_dir: Path,
                 env: dict[str, str] | None = None) -> None:
        self._commands = [list(command) for command in commands]
        self._log_paths = [log_dir / f"{Path(c[0]).name}-{i}.log" for i, c in enumerate(commands)]
        self._env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
        self._running: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Self:
        atexit.register(self.kill)
        try:
            for command, log_path in zip(self._commands, self._log_paths):
                with log_path.open("wb") as log:
                    self._running.append(subprocess.Popen(
                        command, cwd=REPO_ROOT, env=self._env, stdin=subprocess.DEVNULL,
                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        except BaseException:
            self.kill()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def pids(self) -> list[int]:
        """The running processes' ids (each also its process group's)."""
        return [proc.pid for proc in self._running]

    def check_alive(self) -> None:
        """Raise with the log's tail if any process has already exited."""
        for proc, log_path in zip(self._running, self._log_paths):
            if proc.poll() is not None:
                raise RuntimeError(f"{self._commands[0][0]} exited with {proc.returncode}: "
                                   f"{log_tail(log_path)}")

    def logs(self) -> str:
        """The tails of all logs, for an error message."""
        return " | ".join(log_tail(path) for path in self._log_paths)

    def stop(self) -> None:
        """SIGTERM, a short grace for a clean shutdown, then SIGKILL for whatever is left."""
        self._signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for proc in self._running:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def kill(self) -> None:
        """SIGKILL every process group at once (a deadlocked worker ignores SIGTERM).

        The whole group, even when its leader has exited: huey's consumer forks its workers.
        """
        self._signal(signal.SIGKILL)
        for proc in self._running:
            proc.wait()
        self._running.clear()
        atexit.unregister(self.kill)

    def _signal(self, signum: int) -> None:
        for proc in self._running:
            try:
                os.killpg(proc.pid, signum)  # its own session: the group id is its pid
            except ProcessLookupError:
                pass


def log_tail(path: Path, chars: int = 600) -> str:
    """The end of a log file, on one line, for an error message."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return " ".join(text[-chars:].split()) or "(empty log)"


class RedisServer:
    """A private, non-persistent redis-server on a free port, for one system's run."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        workdir.mkdir(parents=True, exist_ok=True)
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                   "--save", "", "--appendonly", "no", "--dir", str(workdir)]
        self._process = Processes([command], workdir)

    def __enter__(self) -> Self:
        self._process.__enter__()
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        try:
            wait_until(lambda: self._answers(client), 10, f"redis-server on {self.port}")
        except BaseException:
            self._process.kill()
            raise
        finally:
            client.close()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._process.kill()

    def _answers(self, client: redis.Redis) -> bool:
        self._process.check_alive()
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False


def python_command(*args: str) -> list[str]:
    """This interpreter running `args`, so workers use the same venv as the runner."""
    return [sys.executable, *args]
