"""How the `callplane` commands reach the control plane, and say what went wrong."""

from __future__ import annotations

import json

import click

from sdk.settings import Settings

#: How `--server-url` explains its default.
SERVER_URL_HELP = "[default: $CALLPLANE_SERVER_URL or http://localhost:5001]"
#: The option of every command group that asks the control plane.
server_url_option = click.option("--server-url", default=None,
                                 help=f"The control plane to ask {SERVER_URL_HELP}.")


def client_for(server_url: str | None):
    """A client of the control plane at `server_url` (or the configured one)."""
    from sdk.client import ControlPlaneClient

    settings = Settings.from_env().replace(server_url=server_url)
    return ControlPlaneClient(settings.server_url, outage_seconds=5)


def ask(client, method: str, path: str):
    """The control plane's answer, or a ClickException with its refusal."""
    from sdk.errors import ControlPlaneRefused, ControlPlaneUnavailable

    try:
        return client.request(method, path)
    except (ControlPlaneRefused, ControlPlaneUnavailable) as exc:
        raise click.ClickException(str(exc)) from None


def listed(items: list, as_json: bool, none: str) -> bool:
    """A list command's common part: with --json each item as one JSON line, else
    `none` when there is no item. True when the caller prints the items its way."""
    if as_json:
        for item in items:
            click.echo(json.dumps(item, separators=(",", ":")))
        return False
    if not items:
        click.echo(none)
    return bool(items)
