"""`callplane worker` and `python -m sdk.worker`: the seed's worker command line."""

from __future__ import annotations

import sys

import click

from sdk.errors import RedisUnavailable, WorkflowFileError
from sdk.logs import configure_logging
from sdk.settings import Settings
from workers.executor import CodeVersion
from workers.loader import load_workflow, resolve_commit
from workers.worker import Worker

#: Exit codes a supervisor can tell apart.
EXIT_BAD_WORKFLOW = 3
EXIT_REDIS_UNREACHABLE = 4
#: Python frames allowed on the worker's thread (the default 1,000 allows ~100 nested calls).
RECURSION_LIMIT = 20_000


@click.command("worker")
@click.option("--server-url", default=None,
              help="The control plane that records calls "
                   "[default: $CALLPLANE_SERVER_URL or http://localhost:5001].")
@click.option("--repo-name", default=None,
              help="Name of the code repository this worker runs (part of its code version) "
                   "[default: $CALLPLANE_REPO_NAME; one of them is required].")
@click.option("--workflow-file", required=True, type=click.Path(dir_okay=False),
              help="Python file whose @runner.stage functions this worker runs.")
@click.option("--commit-hash", default=None,
              help="Commit of the code. A git revision (HEAD, a branch) is resolved in the "
                   "repository holding the workflow file; anything else is taken as given "
                   "[default: $CALLPLANE_COMMIT_HASH or HEAD].")
@click.option("--redis-url", default=None,
              help="Redis to take calls from [default: $REDIS_URL or redis://localhost:6379/0].")
@click.option("--name", default=None, help="Worker name shown in rq info [default: host.pid.random].")
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
@click.option("--isolate", is_flag=True,
              help="Run each call in a fresh process of its own (slower; for isolation). "
                   "A stage can ask for it alone with @runner.stage(isolate=True).")
@click.option("--concurrency", type=click.IntRange(1, 1024), default=None,
              help="Calls run at once, each in a thread of its own [default: "
                   "$CALLPLANE_WORKER_CONCURRENCY or 1]. For stages that wait on I/O.")
@click.option("--inline/--no-inline", default=True, show_default=True,
              help="Run a child call that its parent only waits on in the parent's slot, "
                   "instead of queueing it for any worker.")
def worker(server_url, repo_name, workflow_file, commit_hash, redis_url, name, burst, isolate,
           concurrency, inline):
    """Run the calls of one workflow file's stages, --concurrency at once, until SIGTERM.

    \b
    Example:
      callplane worker --server-url http://localhost:5001 --repo-name my-repo \\
          --workflow-file examples/example_workflow.py --commit-hash HEAD
    """
    # Nested calls that run in place stack up on this thread: leave room for deep trees.
    sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))
    settings = Settings.from_env().replace(
        redis_url=redis_url, server_url=server_url, repo_name=repo_name, commit_hash=commit_hash
    )
    if not settings.repo_name:
        raise click.UsageError("Missing option '--repo-name' (or set CALLPLANE_REPO_NAME).")
    try:
        workflow = load_workflow(workflow_file)
        commit = resolve_commit(workflow_file, settings.commit_hash)
    except WorkflowFileError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_BAD_WORKFLOW)
    try:
        version = CodeVersion(settings.repo_name, commit)
        process = Worker(settings, workflow, version, name, isolate=isolate, inline=inline,
                         concurrency=concurrency or settings.worker_concurrency)
        configure_logging(settings.log_format, process.context)
        process.run(burst=burst)
    except RedisUnavailable as exc:
        click.echo(f"Error: {exc} (set --redis-url or REDIS_URL)", err=True)
        sys.exit(EXIT_REDIS_UNREACHABLE)
