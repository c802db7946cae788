"""`callplane worker` and `python -m sdk.worker`: the seed's worker command line."""

from __future__ import annotations

import logging
import sys

import click

from sdk.errors import RedisUnavailable, WorkflowFileError
from sdk.settings import DEFAULT_SERVER_URL, Settings
from workers.executor import CodeVersion
from workers.loader import load_workflow, resolve_commit
from workers.worker import Worker

#: Exit codes a supervisor can tell apart.
EXIT_BAD_WORKFLOW = 3
EXIT_REDIS_UNREACHABLE = 4
#: Python frames allowed on the worker's thread (the default 1,000 allows ~100 nested calls).
RECURSION_LIMIT = 20_000


@click.command("worker")
@click.option("--server-url", envvar="CALLPLANE_SERVER_URL", default=DEFAULT_SERVER_URL,
              show_default=True, help="The control plane that records calls.")
@click.option("--repo-name", envvar="CALLPLANE_REPO_NAME", required=True,
              help="Name of the code repository this worker runs (part of its code version).")
@click.option("--workflow-file", required=True, type=click.Path(dir_okay=False),
              help="Python file whose @runner.stage functions this worker runs.")
@click.option("--commit-hash", envvar="CALLPLANE_COMMIT_HASH", default="HEAD", show_default=True,
              help="Commit of the code. A git revision (HEAD, a branch) is resolved in the "
                   "repository holding the workflow file; anything else is taken as given.")
@click.option("--redis-url", envvar="REDIS_URL", default=None,
              help="Redis to take calls from [default: $REDIS_URL or redis://localhost:6379/0].")
@click.option("--name", default=None, help="Worker name shown in rq info [default: host.pid.random].")
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
@click.option("--isolate", is_flag=True,
              help="Run each call in a fresh process of its own (slower; for isolation). "
                   "A stage can ask for it alone with @runner.stage(isolate=True).")
@click.option("--inline/--no-inline", default=True, show_default=True,
              help="Run a child call that its parent only waits on in the parent's slot, "
                   "instead of queueing it for any worker.")
def worker(server_url, repo_name, workflow_file, commit_hash, redis_url, name, burst, isolate,
           inline):
    """Run the calls of one workflow file's stages, one at a time, until SIGTERM.

    \b
    Example:
      callplane worker --server-url http://localhost:5001 --repo-name my-repo \\
          --workflow-file examples/example_workflow.py --commit-hash HEAD
    """
    # Nested calls that run in place stack up on this thread: leave room for deep trees.
    sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    settings = Settings.from_env().replace(redis_url=redis_url)
    try:
        workflow = load_workflow(workflow_file)
        commit = resolve_commit(workflow_file, commit_hash)
    except WorkflowFileError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_BAD_WORKFLOW)
    try:
        version = CodeVersion(repo_name, commit)
        process = Worker(settings.redis_url, server_url, workflow, version, name,
                         isolate=isolate, inline=inline, lease_seconds=settings.lease_seconds)
        process.run(burst=burst)
    except RedisUnavailable as exc:
        click.echo(f"Error: {exc} (set --redis-url or REDIS_URL)", err=True)
        sys.exit(EXIT_REDIS_UNREACHABLE)

