"""The API token: when the control plane has one, every request must carry it.

Programs send `Authorization: Bearer <token>`. A browser signs in once at
/login with the token and then carries a session cookie (HttpOnly,
SameSite=Strict) naming a session kept in Redis, so the web view, the API page
and rq-dashboard are guarded by the same token without it ever sitting in the
page. The token is compared in constant time; the answer to a missing or wrong
token says what to send, never what the token is. Sign-in attempts are limited
per client address.
"""

from __future__ import annotations

import hmac
import ipaddress
from urllib.parse import urlsplit

from flask import Flask, current_app, jsonify, redirect, request, url_for

from sdk.errors import RedisUnavailable

#: Hosts a control plane may listen on without a token.
LOOPBACK_NAMES = {"localhost", ""}
#: The browser's session cookie.
SESSION_COOKIE = "callplane_session"
#: How long a browser stays signed in at most (CALLPLANE_SESSION_IDLE_SECONDS ends
#: an idle session sooner; signing out ends it at once, in every process).
SESSION_SECONDS = 12 * 3600
#: Sign-in attempts a client address may make in LOGIN_WINDOW_SECONDS (from its
#: first); the next is refused with 429 until the window ends. A success clears them.
LOGIN_ATTEMPTS, LOGIN_WINDOW_SECONDS = 10, 300
#: Endpoints open to anyone: the sign-in page and what it needs to show, and the
#: probes of load balancers and orchestrators.
OPEN_ENDPOINTS = {"pages.login", "static", "health.health", "health.ready"}
#: Prometheus' scrape target, which CALLPLANE_METRICS_TOKEN opens alone.
METRICS_ENDPOINT = "scrape.metrics"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def sessions():
    """Where this control plane keeps browsers' sessions (sdk.transport.sessions)."""
    return current_app.extensions["callplane"].transport.sessions


def is_signed_in() -> bool:
    """Whether the request carries an open session (its idle time starts again)."""
    idle = current_app.extensions["callplane"].settings.session_idle_seconds
    try:
        return sessions().touch(request.cookies.get(SESSION_COOKIE, ""), idle)
    except RedisUnavailable:
        return False


def from_this_site() -> bool:
    """Whether a browser's request comes from this control plane's own pages: a
    cookie alone must not let another site's form retry or cancel calls."""
    fetched_from = request.headers.get("Sec-Fetch-Site")
    if fetched_from is not None:
        return fetched_from == "same-origin"
    origin = request.headers.get("Origin")  # older browsers (a TLS proxy may change the scheme)
    return origin is None or urlsplit(origin).netloc == request.host


def require_token(app: Flask, token: str | None, metrics_token: str | None = None) -> None:
    """Every request carries `token` (or a browser session), except the open
    endpoints; `metrics_token` opens GET /metrics alone, to a scraper. With only
    a metrics token, only /metrics is guarded."""
    expected = f"Bearer {token}".encode() if token else None
    scraper = f"Bearer {metrics_token}".encode() if metrics_token else None

    @app.before_request
    def _check_token():
        given = request.headers.get("Authorization", "").encode()
        scraping = request.endpoint == METRICS_ENDPOINT
        if scraping and scraper is not None and hmac.compare_digest(given, scraper):
            return None
        if request.endpoint in OPEN_ENDPOINTS or (expected is None and not scraping):
            return None
        if expected is not None and hmac.compare_digest(given, expected):
            return None
        if is_signed_in():
            if request.method in SAFE_METHODS or from_this_site():
                return None
            return _refusal(403, "Forbidden", "a signed-in browser may change things only from "
                                              "this control plane's own pages")
        if wants_page():
            return redirect(url_for("pages.login", next=request.full_path.rstrip("?")))
        answer = _refusal(401, "Unauthorized", (
            "this control plane requires a token: send the header "
            "'Authorization: Bearer <token>' (the SDK and workers send CALLPLANE_TOKEN), "
            "or sign in at /login in a browser"
            + (" (a scraper of /metrics may send CALLPLANE_METRICS_TOKEN)" if scraping else "")
        ))
        answer.headers["WWW-Authenticate"] = "Bearer"
        return answer


def _refusal(code: int, status: str, message: str):
    answer = jsonify(code=code, status=status, message=message)
    answer.status_code = code
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
            or "\\" in target or any(ord(char) < 0x20 for char in target):
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
