"""The `callplane` command."""

from __future__ import annotations

import click

from sdk.settings import Settings
from workers.main import worker


@click.group()
def main():
    """callplane: distributed function calls with a full audit trail.

    \b
    Start here:
      callplane demo       run the example workflow on a private cluster
      callplane server     the control plane (REST API on port 5001)
      callplane worker     a worker for a workflow file
    """


@main.command()
@click.option("--host", envvar="HOST", default=None, help="Interface to listen on [default: 127.0.0.1].")
@click.option("--port", envvar="PORT", type=int, default=None, help="Port [default: 5001].")
@click.option("--workers", type=int, default=1, show_default=True, help="Server processes.")
@click.option("--threads", type=int, default=32, show_default=True,
              help="Threads per process (each waiting request holds one).")
@click.option("--no-migrate", is_flag=True, help="Do not upgrade the database schema first.")
def server(host, port, workers, threads, no_migrate):
    """Serve the control plane: REST API, audit store and recorder.

    Configured by DATABASE_URL (default: a SQLite file callplane.db here) and
    REDIS_URL (default: redis://localhost:6379/0).
    """
    from controlplane.server import serve

    serve(Settings.from_env().replace(host=host, port=port), workers, threads, not no_migrate)


@main.group()
def db():
    """The audit database."""


@db.command()
def upgrade():
    """Create or upgrade the stage_runs schema in DATABASE_URL, in place."""
    from controlplane.migrate import upgrade as run_upgrade

    settings = Settings.from_env()
    run_upgrade(settings.database_url)
    click.echo(f"database schema is up to date ({settings.database_url})")


@main.command()
@click.option("--workflow-file", default=None, type=click.Path(dir_okay=False),
              help="Workflow to run [default: the example ETL workflow].")
@click.option("--workers", "worker_count", type=int, default=2, show_default=True)
def demo(workflow_file, worker_count):
    """Start a control plane, workers (and Redis if none answers), run the example, show its tree."""
    from controlplane.demo import run_demo

    raise SystemExit(run_demo(Settings.from_env(), workflow_file, worker_count))


main.add_command(worker)
