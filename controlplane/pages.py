"""The web view: a list of runs and each run's tree, timeline and details.

The pages are shells; their script reads the same REST API that programs use
(so what a person sees is what the API answers) and acts through it (retry,
cancel). Signing in sets the session cookie that auth.py checks.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, current_app, redirect, render_template, request

from controlplane.auth import SESSION_COOKIE, SESSION_SECONDS, safe_next, session_value
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
    given = request.form.get("token", "").encode()
    if not hmac.compare_digest(given, token.encode()):
        return render_template("login.html", target=target,
                               error="That is not this control plane's token (CALLPLANE_TOKEN)."), 401
    answer = redirect(target)
    answer.set_cookie(SESSION_COOKIE, session_value(token), max_age=SESSION_SECONDS,
                      httponly=True, samesite="Strict", secure=request.is_secure)
    return answer


@blp.post("/logout")
def logout():
    answer = redirect("/login")
    answer.delete_cookie(SESSION_COOKIE)
    return answer
