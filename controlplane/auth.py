"""The API token: when the control plane has one, every request must carry it.

Programs send `Authorization: Bearer <token>`. A browser signs in once at
/login and then carries a session cookie derived from the token (HttpOnly,
SameSite=Strict), so the web view, the API page and rq-dashboard are guarded by
the same token without it ever sitting in the page. Both are compared in
constant time; the answer to a missing or wrong token says what to send, never
what the token is.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from urllib.parse import urlsplit

from flask import Flask, jsonify, redirect, request, url_for

#: Hosts a control plane may listen on without a token.
LOOPBACK_NAMES = {"localhost", ""}
#: The browser's session cookie.
SESSION_COOKIE = "callplane_session"
#: Endpoints open to anyone: the sign-in page and what it needs to show.
OPEN_ENDPOINTS = {"pages.login", "static"}


def session_value(token: str) -> str:
    """What the session cookie holds: derived from the token, not the token itself
    (a cookie that leaks does not give away the bearer token programs use)."""
    return hmac.new(token.encode(), b"callplane web session", hashlib.sha256).hexdigest()


def is_signed_in(token: str) -> bool:
    return hmac.compare_digest(
        request.cookies.get(SESSION_COOKIE, "").encode(), session_value(token).encode()
    )


def require_token(app: Flask, token: str) -> None:
    expected = f"Bearer {token}".encode()

    @app.before_request
    def _check_token():
        if request.endpoint in OPEN_ENDPOINTS:
            return None
        given = request.headers.get("Authorization", "").encode()
        if hmac.compare_digest(given, expected) or is_signed_in(token):
            return None
        if wants_page():
            return redirect(url_for("pages.login", next=request.full_path.rstrip("?")))
        answer = jsonify(code=401, status="Unauthorized", message=(
            "this control plane requires a token: send the header "
            "'Authorization: Bearer <token>' (the SDK and workers send CALLPLANE_TOKEN), "
            "or sign in at /login in a browser"
        ))
        answer.status_code = 401
        answer.headers["WWW-Authenticate"] = "Bearer"
        return answer


def wants_page() -> bool:
    """A browser asking for a page (it gets the sign-in page, not a JSON 401)."""
    return request.method == "GET" and request.accept_mimetypes.best_match(
        ["application/json", "text/html"]
    ) == "text/html"


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this server only (no open redirect)."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") \
            or "\\" in target:
        return "/"
    return target


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
