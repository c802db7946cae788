"""The web view: a list of runs and each run's tree, timeline and details.

The pages are shells; their script reads the same REST API that programs use
(so what a person sees is what the API answers) and acts through it (retry,
cancel). Signing in sets the session cookie that auth.py checks.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, current_app, redirect, render_template, request

from controlplane.auth import (
    LOGIN_ATTEMPTS,
    LOGIN_WINDOW_SECONDS,
    SESSION_COOKIE,
    SESSION_SECONDS,
    safe_next,
    sessions,
)
from sdk.wire import Status

blp = Blueprint("pages", __name__)  # templates and static files: the app's own folders


def _token() -> str | None:
    return current_app.extensions["callplane"].settings.token


@blp.get("/")
def runs():
    return render_template("runs.html", signed_in=bool(_token()),
                           statuses=[status.value for status in Status])


@blp.get("/calls/<call_id>")
def call(call_id: str):
    return render_template("call.html", call_id=call_id, signed_in=bool(_token()))


@blp.route("/login", methods=["GET", "POST"])
def login():
    token = _token()
    target = safe_next(request.values.get("next"))
    if not token:
        return redirect(target)
    if request.method == "GET":
        return render_template("login.html", target=target)
    address = request.remote_addr or ""
    if sessions().count_attempt(address, LOGIN_WINDOW_SECONDS) > LOGIN_ATTEMPTS:
        wait = max(1, sessions().held_off_for(address))
        error = f"Too many sign-in attempts from {address}: try again in {wait} s."
        return render_template("login.html", target=target, error=error), 429, {
            "Retry-After": str(wait)}
    given = request.form.get("token", "").encode()
    if not hmac.compare_digest(given, token.encode()):
        return render_template("login.html", target=target,
                               error="That is not this control plane's token (CALLPLANE_TOKEN)."), 401
    sessions().clear_attempts(address)
    idle = current_app.extensions["callplane"].settings.session_idle_seconds
    answer = redirect(target)
    answer.set_cookie(SESSION_COOKIE, sessions().open(idle, SESSION_SECONDS),
                      max_age=SESSION_SECONDS, httponly=True, samesite="Strict",
                      secure=request.is_secure)
    return answer


@blp.post("/logout")
def logout():
    """Sign out: the session ends on the server, for every process, at once."""
    sessions().close(request.cookies.get(SESSION_COOKIE, ""))
    answer = redirect("/login")
    answer.delete_cookie(SESSION_COOKIE)
    return answer
