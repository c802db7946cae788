"""`callplane run`: call one stage of a workflow file through the control plane, the
way a client's root call is made (so any worker that has the stage runs it), and
follow it to its end.

Progress, the stage's printed output and the final tree go to stderr; only the
result, as JSON, goes to stdout, so `callplane run ... > result.json` keeps it.
"""

from __future__ import annotations

import json
from typing import Any

import click

from controlplane.progress import Progress
from controlplane.trees import TreeNode, render
from sdk.caller import RemoteCaller
from sdk.client import ControlPlaneClient
from sdk.context import CallContext
from sdk.decorators import Stage
from sdk.errors import (
    CallCancelled,
    ControlPlaneRefused,
    ControlPlaneUnavailable,
    StageFailed,
    WorkflowFileError,
)
from sdk.handles import unwrap
from sdk.records import CallRecord, convert
from sdk.settings import DEFAULT_SERVER_URL
from workers.loader import load_workflow

DEFAULT_STAGE = "main"
#: How often the tree is read while the call runs; its end is seen at once (the wait returns).
POLL_SECONDS = 0.5
#: How long a request keeps retrying an unreachable control plane: a wrong URL fails soon.
OUTAGE_SECONDS = 10.0
#: Ctrl-C: the call goes on, only the watching stopped.
EXIT_INTERRUPTED = 130
CONTROL_PLANE_ERRORS = (ControlPlaneRefused, ControlPlaneUnavailable)


def run_stage(server_url: str, workflow_file: str, stage_name: str,
              raw_args: tuple[str, ...]) -> int:
    """Call the stage, show its progress, print its tree and outcome; the exit status."""
    stage = find_stage(workflow_file, stage_name)
    args = parse_arguments(raw_args)
    try:
        client = ControlPlaneClient(server_url, outage_seconds=OUTAGE_SECONDS)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--server-url'") from None
    progress = Progress(click.get_text_stream("stderr"))  # its clock starts with the call
    call_id = submit(stage, args, client)
    click.echo(f"{stage.name}: call {call_id} on {server_url}", err=True)
    try:
        record, nodes = follow(client, call_id, progress)
    except KeyboardInterrupt:
        click.echo(f"\nstopped watching; call {call_id} goes on. Cancel it with:\n"
                   f"  {cancel_command(server_url, call_id)}", err=True)
        return EXIT_INTERRUPTED
    except CONTROL_PLANE_ERRORS as exc:
        raise click.ClickException(
            f"{exc}\n(call {call_id} goes on; `callplane calls tree {call_id}` shows it later)"
        ) from None
    return report(record, nodes)


def find_stage(workflow_file: str, name: str) -> Stage:
    """The stage of that name, loaded as a worker loads the file."""
    try:
        workflow = load_workflow(workflow_file)
    except WorkflowFileError as exc:
        raise click.BadParameter(str(exc), param_hint="'FILE'") from None
    if name not in workflow.stages:
        raise click.BadParameter(
            f"{workflow_file} has no stage {name!r}; its stages are: "
            f"{', '.join(sorted(workflow.stages))} (the stage comes before its arguments)",
            param_hint="'STAGE'",
        )
    return workflow.stages[name]


def parse_arguments(raw_args: tuple[str, ...]) -> list[Any]:
    """Each argument as the JSON value it spells."""
    values = []
    for number, raw in enumerate(raw_args, 1):
        try:
            values.append(json.loads(raw))
        except ValueError as exc:
            raise click.BadParameter(
                f"argument {number}, {raw!r}, is not a JSON value ({exc}); write numbers as 3, "
                f"lists as '[1,2]', strings in double quotes inside single ones: '\"text\"'",
                param_hint="'ARGS'",
            ) from None
    return values


def submit(stage: Stage, args: list[Any], client: ControlPlaneClient) -> str:
    """Make the call as a client's root call through `client`; its id."""
    stage.runner.attach(client, RemoteCaller(client), CallContext())
    try:
        return stage.submit(*args).id
    except TypeError as exc:  # the arguments do not fit the function: raised before sending
        raise click.UsageError(f"{exc}; call it as {stage.name}{stage.signature}") from None
    except CONTROL_PLANE_ERRORS as exc:
        raise click.ClickException(str(exc)) from None


def follow(client: ControlPlaneClient, call_id: str, progress: Progress):
    """Show the call's tree until the call finishes; its final record and tree."""
    while True:
        finished = client.finished_calls([call_id], wait=POLL_SECONDS)
        nodes = convert(client.request("GET", f"/api/call/{call_id}/tree")["calls"],
                        list[TreeNode], "the call tree")
        progress.show(nodes)
        if finished:
            progress.clear()
            return finished[0], nodes


def report(record: CallRecord, nodes: list[TreeNode]) -> int:
    """What the stages printed, the tree, then the result (stdout) or the failure."""
    if record.output:
        click.echo(record.output, err=True, nl=not record.output.endswith("\n"))
    for line in render(nodes):
        click.echo(line, err=True)
    try:
        result = unwrap(record.outcome())
    except (StageFailed, CallCancelled) as exc:
        click.echo(f"Error: {exc}", err=True)
        return 1
    click.echo(json.dumps(result, indent=2))
    return 0


def cancel_command(server_url: str, call_id: str) -> str:
    where = "" if server_url == DEFAULT_SERVER_URL else f" --server-url {server_url}"
    return f"callplane calls{where} cancel {call_id}"
