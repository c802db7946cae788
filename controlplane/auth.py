"""The API token: when the control plane has one, every request must carry it.

Compared in constant time; the answer to a missing or wrong token says what to
send, never what the token is.
"""

from __future__ import annotations

import hmac
import ipaddress

from flask import Flask, jsonify, request

#: Hosts a control plane may listen on without a token.
LOOPBACK_NAMES = {"localhost", ""}


def require_token(app: Flask, token: str) -> None:
    expected = f"Bearer {token}".encode()

    @app.before_request
    def _check_token():
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            answer = jsonify(code=401, status="Unauthorized", message=(
                "this control plane requires a token: send the header "
                "'Authorization: Bearer <token>' (the SDK and workers send CALLPLANE_TOKEN)"
            ))
            answer.status_code = 401
            answer.headers["WWW-Authenticate"] = "Bearer"
            return answer
        return None


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(hosts: list[str], token: str | None, allowed: bool) -> None:
    """Refuse to listen beyond loopback without a token, unless told explicitly."""
    exposed = [host for host in hosts if not is_loopback(host)]
    if exposed and not token and not allowed:
        raise SystemExit(
            f"refusing to listen on {', '.join(exposed)} without a token: set CALLPLANE_TOKEN "
            "(clients send it as 'Authorization: Bearer ...'), or set CALLPLANE_ALLOW_NO_TOKEN=1 "
            "to serve an open API on purpose"
        )
