"""A PostgreSQL server of its own on this machine (initdb and pg_ctl from Debian's
packages), which a test or the chaos benchmark may stop and start: never the
machine's shared server."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from controlplane.local_cluster import free_port


def postgres_binaries() -> Path | None:
    """Where initdb and pg_ctl are, if PostgreSQL is installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


class PrivatePostgres:
    def __init__(self, binaries: Path, directory: Path, listen: str = "127.0.0.1",
                 wrapper: Sequence[str] = (), settings: Sequence[str] = (),
                 trusted: str | None = None):
        """`wrapper` runs its commands elsewhere (such as `ip netns exec HOST`);
        `settings` are more of the server's `-c name=value` settings; clients
        from the `trusted` network (a CIDR) need no password."""
        self._bin = binaries
        self._dir = directory
        self._listen, self._wrapper, self._settings = listen, list(wrapper), list(settings)
        self._trusted = trusted
        self.port = free_port()
        self.url = f"postgresql://postgres@{listen}:{self.port}/postgres"
        #: The same database through its Unix socket (reachable from any network namespace).
        self.socket_url = f"postgresql://postgres@/postgres?host={directory}&port={self.port}"

    def _run(self, program: str, *args: str) -> None:
        command = [str(self._bin / program), *args]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run([*self._wrapper, *command], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.STDOUT)

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self._dir, "postgres")
        self._run("initdb", "-D", str(self._dir / "data"), "-A", "trust", "-U", "postgres",
                  "--no-sync")
        if self._trusted:
            with open(self._dir / "data" / "pg_hba.conf", "a") as rules:
                rules.write(f"host all all {self._trusted} trust\n")

    def start(self) -> None:
        options = " ".join([f"-p {self.port} -k {self._dir} -c listen_addresses={self._listen}",
                            "-c fsync=off -c full_page_writes=off",
                            *(f"-c {setting}" for setting in self._settings)])
        self._run("pg_ctl", "-D", str(self._dir / "data"), "-o", options, "-l",
                  str(self._dir / "postgres.log"), "-w", "start")

    @property
    def pid(self) -> int:
        """The postmaster's process id (its backends are its children)."""
        return int((self._dir / "data" / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self._dir / "data"), "-m", "fast", "-w", "stop")


@contextlib.contextmanager
def private_postgres(binaries: Path, **options: Any) -> Iterator[PrivatePostgres]:
    """A started server of its own (PrivatePostgres's `options`), removed afterwards."""
    # Not under pytest's temporary directory, which only root may enter.
    directory = Path(tempfile.mkdtemp(prefix="callplane-pg-"))
    server = PrivatePostgres(binaries, directory, **options)
    try:
        server.init()
        server.start()
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            server.stop()
        shutil.rmtree(directory, ignore_errors=True)
