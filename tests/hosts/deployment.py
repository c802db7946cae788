"""callplane deployed as on several machines, on the hosts of a tests.hosts.network:

    db        redis-server and a PostgreSQL of its own (initdb, pg_ctl)
    cp1, cp2  a control plane each
    lb        HAProxy, health-checking the control planes' /ready
    w1, ...   a worker each
    client    where the workload runs, talking to the balancer only

This process (the machine's own namespace) takes no part in the network: it
reads Redis and the database through their Unix sockets, which namespaces do
not separate, and reaches HTTP from a host's namespace (curl).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from controlplane.local_cluster import server_command, stop, wait_until, worker_command
from controlplane.local_postgres import postgres_binaries, private_postgres
from controlplane.migrate import upgrade
from sdk.transport import Transport
from sdk.transport.connection import answers
from tests.conftest import ROOT, TEST_COMMIT
from tests.hosts.network import Host, Network

WORKFLOW = ROOT / "tests" / "workflows" / "recovery.py"
TOKEN = "a-token-for-the-hosts"
PORT = 5001
REDIS_PORT = 6379
LEASE_SECONDS = 2
#: PostgreSQL notices a cut-off client within seconds, idle (keepalives, not the
#: kernel's two hours) or sending it rows (tcp_user_timeout, not the kernel's
#: quarter of an hour of retransmits), so its locks do not outlive it: a real
#: deployment wants the same.
POSTGRES_SETTINGS = ("tcp_keepalives_idle=2", "tcp_keepalives_interval=1",
                     "tcp_keepalives_count=3", "tcp_user_timeout=5000",
                     "idle_in_transaction_session_timeout=10s")
HAPROXY = """\
global
    maxconn 4096
defaults
    mode http
    timeout connect 1s
    timeout client 90s
    timeout server 90s
    retries 2
    option redispatch
frontend api
    bind {address}:{port}
    default_backend control_planes
backend control_planes
    balance roundrobin
    option httpchk GET /ready
    http-check expect status 200
    default-server inter 500ms fall 2 rise 2 on-marked-down shutdown-sessions
{servers}
"""


def missing_tools() -> str | None:
    """What this machine lacks for a deployment, if anything."""
    if shutil.which("haproxy") is None:
        return "haproxy is not installed (Debian's haproxy package)"
    if postgres_binaries() is None:
        return "PostgreSQL's initdb and pg_ctl are not installed"
    if shutil.which("redis-server") is None:
        return "redis-server is not installed"
    return None


class Deployment:
    def __init__(self, network: Network, directory: Path, control_planes: int = 2):
        self.network, self.logs = network, directory
        self._stack = contextlib.ExitStack()
        self.processes: dict[str, subprocess.Popen] = {}
        self.db = network.host("db")
        self.balancer = network.host("lb")
        self.client = network.host("client")
        self.control_planes = [network.host(f"cp{i + 1}") for i in range(control_planes)]
        self.workers: dict[str, Host] = {}
        self.redis_socket = directory / "redis.sock"
        self.server_url = f"http://{self.balancer.address}:{PORT}"
        self.env = {"REDIS_URL": f"redis://{self.db.address}:{REDIS_PORT}/0",
                    "CALLPLANE_TOKEN": TOKEN, "CALLPLANE_LEASE_SECONDS": str(LEASE_SECONDS),
                    "CALLPLANE_SERVER_URL": self.server_url}

    def start(self) -> Deployment:
        try:
            self._start_redis()
            self.postgres = self._stack.enter_context(private_postgres(
                postgres_binaries(), listen=self.db.address,
                wrapper=self.db.command([]), settings=POSTGRES_SETTINGS,
                trusted=self.network.cidr))
            self.env["DATABASE_URL"] = self.postgres.url
            upgrade(self.postgres.socket_url)
            for host in self.control_planes:
                self.start_control_plane(host)
            self._start_balancer()
        except BaseException:
            self.close()
            raise
        return self

    @property
    def local_redis_url(self) -> str:
        """Redis as this process reaches it (its Unix socket)."""
        return f"unix://{self.redis_socket}?db=0"

    @property
    def local_database_url(self) -> str:
        return self.postgres.socket_url

    def start_control_plane(self, host: Host) -> None:
        self.processes[host.name] = host.popen(
            server_command(PORT, "--host", host.address, "--no-migrate"),
            self.logs / f"{host.name}.log", self.env)
        wait_until(lambda: host.answers(f"http://{host.address}:{PORT}/ready"),
                   f"the control plane on {host.name}", self.processes[host.name])

    def worker_host(self, name: str) -> Host:
        """A worker on a new host `name`."""
        host = self.workers[name] = self.network.host(name)
        worker_name = f"worker-{name}-{uuid.uuid4().hex[:6]}"
        process = host.popen(
            worker_command(self.server_url, WORKFLOW, "tests", TEST_COMMIT, worker_name),
            self.logs / f"{name}.log", self.env)
        process.worker_name = worker_name
        self.processes[name] = process
        workers = Transport.from_url(self.local_redis_url).rq_workers
        wait_until(lambda: workers.registered(worker_name), f"the worker on {name}", process)
        return host

    def pids(self, name: str) -> set[str]:
        """The process started on host `name` and every process under it (a
        control plane's server runs its app in a worker process of its own)."""
        found, todo = set(), [str(self.processes[name].pid)]
        while todo:
            pid = todo.pop()
            found.add(pid)
            for task in Path(f"/proc/{pid}/task").glob("*"):
                with contextlib.suppress(OSError):
                    todo += (task / "children").read_text().split()
        return found

    def run_on_client(self, module: str, *args: str) -> subprocess.Popen:
        """`python -m module args` on the client host, from the checkout's root."""
        return self.client.popen([sys.executable, "-m", module, *args],
                                 self.logs / f"{module}.log", self.env, cwd=ROOT)

    def close(self) -> None:
        """Stop every process, then kill what is left of its group: a server whose
        host is cut off may outlast its graceful stop, and its worker processes
        would outlive it (made orphans, not stopped)."""
        for process in reversed(list(self.processes.values())):
            if process.poll() is None:
                stop(process, timeout=10)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        self._stack.close()

    def _start_redis(self) -> None:
        self.processes["redis"] = self.db.popen(
            ["redis-server", "--bind", self.db.address, "--port", str(REDIS_PORT),
             "--protected-mode", "no", "--save", "", "--appendonly", "no",
             "--unixsocket", str(self.redis_socket), "--unixsocketperm", "777",
             "--dir", str(self.logs)], self.logs / "redis.log")
        wait_until(lambda: answers(self.local_redis_url), "redis-server on db",
                   self.processes["redis"])

    def _start_balancer(self) -> None:
        servers = "\n".join(f"    server {host.name} {host.address}:{PORT} check"
                            for host in self.control_planes)
        config = self.logs / "haproxy.cfg"
        config.write_text(HAPROXY.format(address=self.balancer.address, port=PORT,
                                         servers=servers))
        self.processes["lb"] = self.balancer.popen(["haproxy", "-db", "-f", str(config)],
                                                   self.logs / "haproxy.log")
        wait_until(lambda: self.client.answers(f"{self.server_url}/health"), "HAProxy on lb",
                   self.processes["lb"])


