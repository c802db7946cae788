"""`callplane demo`: a real distributed run of the example workflow on this machine.

Starts what it needs (a Redis of its own, never REDIS_URL's; a control plane;
workers), runs the example as its own process, prints its output
and the call tree recorded in stage_runs, and stops everything it started.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import tempfile
import threading
from contextlib import ExitStack
from pathlib import Path

import click

from controlplane.local_cluster import (
    free_port,
    start_redis_server,
    start_server,
    start_worker,
    stop,
)
from controlplane.migrate import shown, upgrade
from controlplane.store import Store, make_engine
from controlplane.store.reads import RunQuery
from controlplane.trees import render, tree_nodes
from sdk.errors import WorkflowFileError
from sdk.settings import DEFAULT_PORT, Settings, environment_with
from workers.loader import resolve_commit

EXAMPLE = Path("examples") / "example_workflow.py"


def find_example() -> Path:
    for base in (Path.cwd(), Path(__file__).resolve().parents[1]):
        if (base / EXAMPLE).is_file():
            return base / EXAMPLE
    raise click.ClickException(f"cannot find {EXAMPLE}; run from the callplane checkout or pass --workflow-file")


def run_demo(settings: Settings, workflow_file: str | None, worker_count: int,
             keep: bool = False) -> int:
    workflow = Path(workflow_file) if workflow_file else find_example()
    with ExitStack() as started, tempfile.TemporaryDirectory() as scratch:
        redis_url = private_redis(Path(scratch), started)
        upgrade(settings.database_url)
        port = DEFAULT_PORT if port_is_free(DEFAULT_PORT) else free_port()
        server_url = f"http://127.0.0.1:{port}"
        env = {"REDIS_URL": redis_url, "DATABASE_URL": settings.database_url,
               "CALLPLANE_SERVER_URL": server_url}
        click.echo(f"control plane: {server_url} (database {shown(settings.database_url)})")
        server = start_server(port, env, stderr=subprocess.DEVNULL)
        started.callback(stop, server)
        try:
            commit = resolve_commit(workflow, "HEAD")
        except WorkflowFileError:
            commit = "unversioned"
        for _ in range(worker_count):
            process = start_worker(server_url, redis_url, workflow, "callplane-examples", commit,
                                   env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            started.callback(stop, process)
        click.echo(f"workers: {worker_count}, running {workflow}\n")
        example = subprocess.run(
            [sys.executable, str(workflow)], env=environment_with(env), check=False
        )
        click.echo("\nCall tree (from stage_runs):")
        run_id = print_latest_tree(settings.database_url)
        if keep:
            show_and_wait(server_url, run_id)
        else:
            click.echo("\n(`callplane demo --keep` keeps it running, to look at the run in the web view)")
        return example.returncode


def show_and_wait(server_url: str, run_id: str | None) -> None:
    """Keep the cluster up so the run can be looked at, until Ctrl-C (or SIGTERM,
    so a process manager stopping the demo stops what it started too)."""
    run_page = f"{server_url}/calls/{run_id}" if run_id else server_url
    click.echo(f"\nweb view:     {run_page}\nrq-dashboard: {server_url}/rq/\n"
               f"API:          {server_url}/api/docs\nPress Ctrl-C to stop.")
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    stopping.wait()
    click.echo("stopping")


def private_redis(scratch: Path, started: ExitStack) -> str:
    """A Redis of the demo's own, stopped at its end: a private redis-server on a
    free port, or an embedded fakeredis where none is installed. Never REDIS_URL's:
    a demo must not write into a Redis that may hold someone's work."""
    port = free_port()
    try:
        process = start_redis_server(port, scratch)
        started.callback(stop, process)
        click.echo(f"redis: a private redis-server on port {port}, for this demo only")
    except FileNotFoundError:
        from fakeredis import TcpFakeServer

        server = TcpFakeServer(("127.0.0.1", port), server_type="redis")
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.callback(server.shutdown)
        click.echo(f"redis: WARNING no redis-server binary; using an embedded fakeredis on port {port} "
                   "(fine for a demo, not for production)")
    return f"redis://127.0.0.1:{port}/0"


def print_latest_tree(database_url: str) -> str | None:
    """Print the newest run's tree; its id."""
    store = Store(make_engine(database_url))
    try:
        roots, _total = store.runs(RunQuery(stage="main"), limit=1)
        if not roots:
            click.echo("  (no run recorded)")
            return None
        root = roots[0].root_stage_run_id
        for line in render(tree_nodes(store.tree(root), root)):
            click.echo(f"  {line}")
        return root
    finally:
        store.engine.dispose()


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0
