"""The `callplane` command."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import click

from controlplane.cli_client import SERVER_URL_HELP, ask, client_for, listed, server_url_option
from controlplane.cli_declared import events, limits, schedules
from controlplane.run_stage import DEFAULT_STAGE, run_stage
from controlplane.server import DEFAULT_THREADS, SERVERS, serve
from sdk.settings import Settings, parse_age, shown_age
from workers.main import worker


@click.group()
def main():
    """callplane: distributed function calls with a full audit trail.

    \b
    Start here:
      callplane demo --keep  run the example on a private cluster, then look at it
      callplane server       the control plane on port 5001: REST API (/api/docs),
                             web view (/), rq-dashboard (/rq)
      callplane worker       a worker for a workflow file
      callplane run FILE     call a stage through the control plane and watch it run
      callplane calls        list runs, show a call or its tree, why it waits, retry, cancel
      callplane schedules    the schedules workers registered: list, pause, resume, trigger
      callplane limits list  the stages' limits, with their calls running and waiting
      callplane events send  send an event to the calls waiting for its key
      callplane db upgrade   create or upgrade the audit tables (the Procfile's release)

    Each command's --help has examples. Configuration comes from the environment:
    DATABASE_URL, REDIS_URL, PORT, CALLPLANE_TOKEN, CALLPLANE_SERVER_URL.
    """


@main.command()
@click.option("--host", default=None, help="Interface to listen on [default: $HOST or 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [default: $PORT or 5001].")
@click.option("--workers", type=int, default=1, show_default=True, help="Server processes.")
@click.option("--threads", type=click.IntRange(min=1), default=DEFAULT_THREADS, show_default=True,
              help="Threads per process, at most (each waiting request holds one).")
@click.option("--server", "http_server", type=click.Choice(SERVERS), default=SERVERS[0],
              show_default=True, help="The HTTP server: granian (leaner per request) or gunicorn.")
@click.option("--no-migrate", is_flag=True, help="Do not upgrade the database schema first.")
@click.option("--allow-no-token", is_flag=True,
              help="Listen beyond loopback without CALLPLANE_TOKEN (an open API; refused otherwise).")
def server(host, port, workers, threads, http_server, no_migrate, allow_no_token):
    """Serve the control plane: REST API (/api, its page at /api/docs), web view
    (/), rq-dashboard (/rq), and the recorder that keeps stage_runs.

    Configured by DATABASE_URL (default: a SQLite file callplane.db here),
    REDIS_URL (default: redis://localhost:6379/0) and CALLPLANE_TOKEN (when set,
    every request must send 'Authorization: Bearer <token>', and a browser signs
    in at /login).

    \b
    Examples:
      callplane server
      CALLPLANE_TOKEN=$(openssl rand -hex 16) callplane server --host 0.0.0.0 --workers 2
    """
    settings = Settings.from_env().replace(
        host=host, port=port, allow_no_token=True if allow_no_token else None
    )
    serve(settings, workers, threads, not no_migrate, http_server)


@main.group()
def db():
    """The audit database."""


@db.command()
def upgrade():
    """Create or upgrade the stage_runs schema in DATABASE_URL, in place."""
    from controlplane.migrate import shown
    from controlplane.migrate import upgrade as run_upgrade

    settings = Settings.from_env()
    migration = run_upgrade(settings.database_url)
    click.echo(f"{migration} ({shown(settings.database_url)})")


class Age(click.ParamType):
    """An age such as 30d (sdk.settings.parse_age)."""

    name = "age"

    def convert(self, value, param, ctx):
        try:
            return parse_age(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@db.command()
@click.option("--older-than", "older_than", type=Age(), required=True,
              help="Delete runs that finished longer ago than this: 30d, 12h, 90m, 2w.")
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
def prune(older_than, dry_run):
    """Delete whole finished runs from DATABASE_URL (never one with a call still
    pending or running), 100 rows per transaction with pauses between."""
    from controlplane.retention import Retention
    from controlplane.store import make_engine
    from controlplane.store.retention import RetentionRows

    engine = make_engine(Settings.from_env().database_url)
    try:
        pruned = Retention(RetentionRows(engine), keep=None).prune(older_than, dry_run=dry_run)
    finally:
        engine.dispose()
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"{verb} {pruned.runs} run(s) that finished over {shown_age(older_than)} ago "
               f"({pruned.rows} call row(s))")


@main.group()
def recorder():
    """The recorder, which writes workers' reports into stage_runs."""


@recorder.command("dead-letters")
@click.option("--count", type=click.IntRange(1, 10_000), default=20, show_default=True,
              help="How many of the newest to show.")
def dead_letters(count):
    """Reports the recorder could not read or apply, set aside with the reason (in REDIS_URL)."""
    from sdk.transport import Transport

    total, newest = Transport.from_url(Settings.from_env().redis_url).events.dead_letters(count)
    click.echo(f"{total} report(s) set aside" + (f"; the newest {len(newest)}:" if newest else ""))
    for set_aside_as, fields in newest:
        body = fields.get("body", "")
        click.echo(f"{set_aside_as}  {fields.get('kind', '?')} {fields.get('id', '?')}: "
                   f"{fields.get('reason', '')}")
        click.echo(f"    {body[:300]}{'...' if len(body) > 300 else ''}")


@main.command()
@click.option("--workflow-file", default=None, type=click.Path(dir_okay=False),
              help="Workflow to run [default: the example ETL workflow].")
@click.option("--workers", "worker_count", type=int, default=2, show_default=True)
@click.option("--keep", is_flag=True,
              help="Keep everything running afterwards, to look at the run in the web view.")
def demo(workflow_file, worker_count, keep):
    """Start a control plane, workers (and Redis if none answers), run the example, show its tree."""
    from controlplane.demo import run_demo

    raise SystemExit(run_demo(Settings.from_env(), workflow_file, worker_count, keep))


@main.command(context_settings={"ignore_unknown_options": True})  # so that -1 is an argument
@click.argument("workflow_file", metavar="FILE", type=click.Path(exists=True, dir_okay=False))
@click.argument("stage", default=DEFAULT_STAGE)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--server-url", default=None, help=f"The control plane to call through {SERVER_URL_HELP}.")
def run(workflow_file, stage, args, server_url):
    """Call STAGE (default: main) of the workflow FILE and watch it run.

    The workers that serve FILE's stages run the call (any code version that
    has the stage); the control plane records it. ARGS are the stage's
    arguments, each a JSON value. While it runs, the call tree's progress goes
    to stderr; then the tree, and the result as JSON on stdout (exit 0), or the
    error (exit 1). Ctrl-C stops watching; the call goes on.

    \b
    Examples:
      callplane run examples/example_workflow.py
      callplane run wf.py process '[1, 2, 3]'
      callplane run wf.py greet '"Ada"' --server-url http://10.0.0.5:5001
    """
    settings = Settings.from_env().replace(server_url=server_url)
    raise SystemExit(run_stage(settings.server_url, workflow_file, stage, args))


@main.group()
@server_url_option
@click.pass_context
def calls(ctx, server_url):
    """Look at and act on recorded calls, through the control plane.

    \b
    Examples:
      callplane calls list --status failed
      callplane calls tree 3f2a9c...
      callplane calls why 3f2a9c...
      callplane calls retry 3f2a9c...
    """
    ctx.obj = client_for(server_url)


@calls.command("list")
@click.option("--status", help="Only runs in this status (pending, running, succeeded, failed, cancelled).")
@click.option("--stage", help="Only runs of this stage.")
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run and line.")
@click.pass_obj
def list_runs(client, status, stage, limit, as_json):
    """The latest runs (root calls), newest first: when each was made, its status,
    how long it waited to start (or when a delayed one is due) and how long it ran."""
    query = {"page_size": limit, "status": status, "stage": stage}
    runs = ask(client, "GET", "/api/runs?" + urlencode({k: v for k, v in query.items() if v}))
    if not listed(runs, as_json, "no runs recorded"):
        return
    for run in runs:
        click.echo(f"{run['created_at'][:19]}  {run['status']:<9}  {_waited(run)}"
                   f"  ran {_took(run['ran_seconds'])}  {run['stage']}  id={run['id']}")


def _waited(call: dict) -> str:
    """How long it waited to start; for a call not started yet that waits, what for."""
    if call.get("waiting_for"):
        import msgspec

        from controlplane.trees import waiting
        from sdk.waits import WaitingFor

        return waiting(msgspec.convert(call["waiting_for"], WaitingFor, strict=False)).strip()
    return f"waited {_took(call['waited_seconds'])}"


def _took(seconds: float | None) -> str:
    return "-".rjust(8) if seconds is None else f"{seconds:7.3f}s"


@calls.command()
@click.argument("call_id")
@click.pass_obj
def show(client, call_id):
    """One call: status, arguments, result or error, attempts, timings (JSON)."""
    click.echo(json.dumps(ask(client, "GET", f"/api/call/{call_id}"), indent=2))


@calls.command()
@click.argument("call_id")
@click.pass_obj
def tree(client, call_id):
    """The call tree under a call: stage, status, attempt, worker and time of each."""
    from controlplane.trees import TreeNode, render
    from sdk.records import convert

    nodes = ask(client, "GET", f"/api/call/{call_id}/tree")["calls"]
    for line in render(convert(nodes, list[TreeNode], "the call tree")):
        click.echo(line)


@calls.command()
@click.argument("call_id")
@click.option("--json", "as_json", is_flag=True, help="The chain as one JSON object.")
@click.pass_obj
def why(client, call_id, as_json):
    """Why a call has not finished: what it waits for (its place in its queue, a
    delay, a sleep, an event, a backoff, its worker) and, for the calls it waits
    on, grouped by stage and status, what they wait for, down the chain.

    \b
    Example:
      callplane calls why 3f2a9c...
    """
    from controlplane.why import WaitNode, render
    from sdk.records import convert

    chain = ask(client, "GET", f"/api/call/{call_id}/waits")
    if as_json:
        click.echo(json.dumps(chain, separators=(",", ":")))
        return
    for line in render(convert(chain, WaitNode, "the waits chain")):
        click.echo(line)


@calls.command()
@click.argument("call_id")
@click.pass_obj
def retry(client, call_id):
    """Run a failed or cancelled call again, as its next attempt.

    \b
    Example:
      callplane calls retry 3f2a9c...
    """
    call = ask(client, "POST", f"/api/call/{call_id}/retry")
    click.echo(f"call {call['id']} ({call['stage']}) is {call['status']} as attempt {call['attempt']}")


@calls.command()
@click.argument("call_id")
@click.pass_obj
def cancel(client, call_id):
    """Cancel a call and every unfinished call under it.

    Queued calls leave their queue, running ones are stopped, and whoever waits
    on them gets a cancellation error.
    """
    answer = ask(client, "POST", f"/api/call/{call_id}/cancel")
    click.echo(f"cancelled {len(answer['cancelled'])} call(s); call {call_id} is "
               f"{answer['call']['status']}")


main.add_command(worker)
for group in (schedules, limits, events):
    main.add_command(group)


if __name__ == "__main__":
    main()
