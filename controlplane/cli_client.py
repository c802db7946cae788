"""How the `callplane` commands reach the control plane, and say what went wrong."""

from __future__ import annotations

import click

from sdk.settings import Settings

#: How `--server-url` explains its default.
SERVER_URL_HELP = "[default: $CALLPLANE_SERVER_URL or http://localhost:5001]"


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
