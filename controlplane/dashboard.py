"""rq-dashboard at /rq, showing callplane's queues, jobs and workers.

Its own requeue, delete, empty and compact routes would write to Redis alone
and leave the audit table out of step, so they are replaced: requeueing a job
retries its call and deleting a job cancels its call, both through callplane's
own service (table first, then Redis); emptying or compacting a queue is refused.
"""

from __future__ import annotations

import rq_dashboard.web
from flask import Flask, current_app, jsonify

from controlplane.api.parsing import refuse_malformed_id
from sdk.transport.rq_compat import serializer

URL_PREFIX = "/rq"
#: The dashboard's views that change Redis, and what answers them instead.
BLOCKED_ENDPOINTS = ("requeue_all", "empty_queue", "compact_queue")


def mount_dashboard(app: Flask, redis_url: str) -> None:
    app.config["RQ_DASHBOARD_REDIS_URL"] = [redis_url]
    # callplane's jobs hold JSON; the dashboard's default serializer is pickle.
    rq_dashboard.web.config.serializer = serializer()
    app.register_blueprint(rq_dashboard.web.blueprint, url_prefix=URL_PREFIX)
    rq_dashboard.web.setup_rq_connection(app)
    views = app.view_functions
    views["rq_dashboard.requeue_job_view"] = retry_job
    views["rq_dashboard.delete_job_view"] = cancel_job
    for endpoint in BLOCKED_ENDPOINTS:
        views[f"rq_dashboard.{endpoint}"] = refuse


def _through_callplane(action, call_id: str):
    """The action's refusals answer as the API's do (404, 409, 503: see
    controlplane.api.errors)."""
    refuse_malformed_id(call_id)
    action(call_id)
    return jsonify(status="OK")


def retry_job(job_id: str):
    """Requeue = retry the call (a new attempt, recorded in stage_runs)."""
    return _through_callplane(current_app.extensions["callplane"].commands.retry, job_id)


def cancel_job(job_id: str, registry=None):
    """Delete = cancel the call and everything under it."""
    return _through_callplane(current_app.extensions["callplane"].commands.cancel, job_id)


def refuse(**_route):
    return jsonify(status="ERROR", message=(
        "callplane's queues are read-only here: they mirror the stage_runs table. Retry or "
        "cancel single calls (the job's Requeue and Delete buttons, POST /api/call/<id>/retry "
        "or /cancel, or callplane calls retry|cancel ID)."
    )), 403
