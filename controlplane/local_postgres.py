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
from collections.abc import Iterator
from pathlib import Path

from controlplane.local_cluster import free_port


def postgres_binaries() -> Path | None:
    """Where initdb and pg_ctl are, if PostgreSQL is installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


class PrivatePostgres:
    def __init__(self, binaries: Path, directory: Path):
        self._bin = binaries
        self._dir = directory
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str) -> None:
        command = [str(self._bin / program), *args]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self._dir, "postgres")
        self._run("initdb", "-D", str(self._dir / "data"), "-A", "trust", "-U", "postgres",
                  "--no-sync")

    def start(self) -> None:
        options = (f"-p {self.port} -k {self._dir} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c full_page_writes=off")
        self._run("pg_ctl", "-D", str(self._dir / "data"), "-o", options, "-l",
                  str(self._dir / "postgres.log"), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self._dir / "data"), "-m", "fast", "-w", "stop")


@contextlib.contextmanager
def private_postgres(binaries: Path) -> Iterator[PrivatePostgres]:
    """A started server of its own, removed afterwards."""
    # Not under pytest's temporary directory, which only root may enter.
    directory = Path(tempfile.mkdtemp(prefix="callplane-pg-"))
    server = PrivatePostgres(binaries, directory)
    try:
        server.init()
        server.start()
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            server.stop()
        shutil.rmtree(directory, ignore_errors=True)
