"""A Redis master, one replica and three redis-sentinel processes watching them,
each on a free port of its own: what tests/test_sentinel.py fails over."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis

from controlplane.local_cluster import free_port, start_redis_server, stop, wait_until

#: The name the Sentinels monitor the master by (the URL's path names it).
MASTER_NAME = "callplane"
#: How long the master may not answer before a Sentinel thinks it down.
DOWN_AFTER_MS = 1000
QUORUM = 2


class SentinelSet:
    def __init__(self, directory: Path):
        binary = shutil.which("redis-sentinel")
        if binary is None:
            pytest.skip("redis-sentinel is not installed (Debian's redis-sentinel package)")
        self._directory = directory
        self.master_port, self.replica_port = free_port(), free_port()
        self.master = start_redis_server(self.master_port, self._folder("master"))
        self.replica = start_redis_server(self.replica_port, self._folder("replica"),
                                          "--replicaof", "127.0.0.1", str(self.master_port))
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels = [self._start_sentinel(binary, port) for port in self.sentinel_ports]
        wait_until(self._watching, "three Sentinels that know the master, its replica and each other")

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{MASTER_NAME}/0"

    def master_port_now(self) -> int:
        """The master's port as the first Sentinel that answers names it."""
        for port in self.sentinel_ports:
            try:
                _host, master = self._ask(port).sentinel_get_master_addr_by_name(MASTER_NAME)
                return int(master)
            except redis.ConnectionError:
                continue
        raise AssertionError("no Sentinel answers")

    def kill_master(self) -> float:
        """SIGKILL the master; when (time.time())."""
        self.master.kill()
        killed_at = time.time()
        self.master.wait()
        return killed_at

    def wait_for_promotion(self, timeout: float = 30.0) -> float:
        """Wait until the Sentinels name the replica the master and it takes writes;
        when that was seen (time.time())."""
        def promoted() -> bool:
            if self.master_port_now() != self.replica_port:
                return False
            return self._ask(self.replica_port).info("replication")["role"] == "master"

        wait_until(promoted, "the replica promoted", timeout=timeout)
        return time.time()

    def close(self) -> None:
        for process in (*self.sentinels, self.replica, self.master):
            stop(process)

    def _folder(self, name: str) -> Path:
        folder = self._directory / name
        folder.mkdir(exist_ok=True)
        return folder

    def _start_sentinel(self, binary: str, port: int) -> subprocess.Popen:
        folder = self._folder(f"sentinel-{port}")
        config = folder / "sentinel.conf"  # a Sentinel rewrites its file: one each
        config.write_text("\n".join([
            f"port {port}", "bind 127.0.0.1", f"dir {folder}",
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master_port} {QUORUM}",
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {MASTER_NAME} 10000", "",
        ]))
        log = open(folder / "sentinel.log", "w")  # noqa: SIM115 - the process's lifetime
        return subprocess.Popen([binary, str(config)], stdout=log, stderr=subprocess.STDOUT)

    def _watching(self) -> bool:
        try:
            states = [self._ask(port).sentinel_master(MASTER_NAME) for port in self.sentinel_ports]
        except (redis.ConnectionError, redis.ResponseError):
            return False
        return all(int(state["num-slaves"]) == 1 and int(state["num-other-sentinels"]) == 2
                   for state in states)

    @staticmethod
    def _ask(port: int) -> redis.Redis:
        return redis.Redis(port=port, decode_responses=True, socket_timeout=1,
                           socket_connect_timeout=1)
