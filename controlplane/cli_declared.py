"""The `callplane` commands about what workflow files declare (schedules, limits)
and the events their waits listen for."""

from __future__ import annotations

import json
from urllib.parse import quote

import click

from controlplane.cli_client import ask, client_for, listed, server_url_option


@click.group()
@server_url_option
@click.pass_context
def schedules(ctx, server_url):
    """The schedules workers registered from their workflow files.

    \b
    Examples:
      callplane schedules list
      callplane schedules pause nightly-report
      callplane schedules trigger nightly-report
    """
    ctx.obj = client_for(server_url)


@schedules.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per schedule and line.")
@click.pass_obj
def list_schedules(client, as_json):
    """Each schedule: when it fires next and fired last, its last call's status."""
    found = ask(client, "GET", "/api/schedules")
    if not listed(found, as_json, "no schedules registered (workers register those of their "
                                  "workflow files)"):
        return
    for s in found:
        when = s["cron"] and f"cron {s['cron']!r} {s['timezone']}" or f"every {s['every_seconds']:g}s"
        state = "paused" if s["paused"] else "active" if s["active"] else "lapsed"
        late = f" ({s['last_late_seconds']:.1f}s late)" if s["last_late_seconds"] else ""
        click.echo(f"{s['name']}  {state}  {s['stage']}  {when}  next {(s['next_fire_at'] or '-')[:19]}"
                   f"  last {(s['last_fire_at'] or '-')[:19]} {s['last_status'] or ''}{late}")


@schedules.command("pause")
@click.argument("name")
@click.pass_obj
def pause_schedule(client, name):
    """Stop making calls of a schedule until it is resumed."""
    _steer(client, name, "pause")
    click.echo(f"paused {name}")


@schedules.command("resume")
@click.argument("name")
@click.pass_obj
def resume_schedule(client, name):
    """Make a paused schedule's calls again, from its next fire on."""
    _steer(client, name, "resume")
    click.echo(f"resumed {name}")


@schedules.command("trigger")
@click.argument("name")
@click.pass_obj
def trigger_schedule(client, name):
    """Make a call of a schedule now; prints its id."""
    click.echo(_steer(client, name, "trigger")["id"])


@click.group()
@server_url_option
@click.pass_context
def limits(ctx, server_url):
    """The limits workers registered from their workflow files
    (@runner.stage(concurrency=..., rate=..., key=...)).

    \b
    Examples:
      callplane limits list
      callplane limits list --json
    """
    ctx.obj = client_for(server_url)


@limits.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per limited stage and line.")
@click.pass_obj
def list_limits(client, as_json):
    """Each limited stage, its limits, and per key value its calls running and waiting."""
    found = ask(client, "GET", "/api/limits")
    if not listed(found, as_json, "no limits registered (workers register those of their "
                                  "workflow files)"):
        return
    for limit in found:
        click.echo(f"{limit['stage']}  {limit['limit']}")
        for gate in limit["gates"]:
            key = f"{limit['key']}={gate['key']}" if gate["key"] is not None else "all calls"
            click.echo(f"  {key}  running {gate['running']}  waiting {gate['waiting']}")


@click.group()
@server_url_option
@click.pass_context
def events(ctx, server_url):
    """Events that waiting calls wait for (runner.wait_for_event in a stage).

    \b
    Examples:
      callplane events send approval:order-42 '{"approved": true, "by": "ana"}'
      echo '{"paid": 1999}' | callplane events send payment:inv-7 -
    """
    ctx.obj = client_for(server_url)


@events.command("send")
@click.argument("key")
@click.argument("payload", default="null")
@click.pass_obj
def send_event(client, key, payload):
    """Send an event to KEY with a JSON PAYLOAD ('-': read it from standard input;
    none: null). The call waiting longest for KEY gets it; with none waiting it is
    kept for the first that waits."""
    from sdk.errors import ControlPlaneRefused, ControlPlaneUnavailable

    text = click.get_text_stream("stdin").read() if payload == "-" else payload
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON ({exc}): quote it, e.g. '\"yes\"' or "
                                 "'{\"approved\": true}'", param_hint="PAYLOAD") from None
    try:
        sent = client.send_event(key, value)
    except (ControlPlaneRefused, ControlPlaneUnavailable, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if sent.delivered_to:
        click.echo(f"delivered to the wait {sent.delivered_to}")
    else:
        click.echo(f"nobody waits for {key} yet: kept until {sent.kept_until:%Y-%m-%d %H:%M:%S %Z}")


def _steer(client, name: str, action: str):
    return ask(client, "POST", f"/api/schedules/{quote(name, safe='')}/{action}")
