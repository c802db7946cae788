"""The Flask app factory."""

from __future__ import annotations

import gc
from collections.abc import Callable
from datetime import datetime

from flask import Flask
from flask_smorest import Api

from controlplane import apidocs, health, pages
from controlplane.api import calls, events, jobs, limits, runs, schedules, stats
from controlplane.api.errors import register_error_handlers
from controlplane.api.lane import CreateLane
from controlplane.auth import require_token
from controlplane.dashboard import mount_dashboard
from controlplane.services import Services
from controlplane.store import utcnow
from sdk.settings import Settings


def create_app(settings: Settings | None = None, *, start_services: bool = False,
               clock: Callable[[], datetime] = utcnow) -> Flask:
    """Build a control plane: the REST API and its page (/api/docs), the web view
    (/), rq-dashboard (/rq). Background threads (recorder, completion listener)
    start only when asked, so each server process starts its own after forking.
    `clock`: the time its clock duty and schedules go by, when a test sets it."""
    settings = settings or Settings.from_env()
    app = Flask("controlplane")
    app.json.sort_keys = False  # a result's keys come back in the order the stage made them
    app.config.update(
        API_TITLE="callplane",
        API_VERSION="1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        **apidocs.api_docs_config(),
    )
    if settings.token or settings.metrics_token:
        require_token(app, settings.token, settings.metrics_token)
    services = Services(settings, clock)
    app.extensions["callplane"] = services
    api = Api(app)
    for resources in (calls, runs, jobs, schedules, events, limits, stats):
        api.register_blueprint(resources.blp)
    register_error_handlers(app)
    app.wsgi_app = CreateLane(app.wsgi_app, services, settings.token,  # type: ignore[method-assign]
                              settings.max_body_bytes)
    apidocs.serve_assets(app)
    app.register_blueprint(pages.blp)
    app.register_blueprint(health.blp)
    app.register_blueprint(stats.scrape)
    mount_dashboard(app, settings.redis_url)
    if start_services:
        services.start()
    return app


def settle_heap() -> None:
    """Leave everything a server process made before serving (modules, the app,
    its pools) out of the collector's full passes, which otherwise walk it all
    again whenever a request made many objects: the tree of a 10,000-call run
    took about 40 ms longer every other time."""
    gc.collect()
    gc.freeze()


def services_of(app: Flask) -> Services:
    return app.extensions["callplane"]

