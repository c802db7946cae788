"""Serve the control plane: granian by default, gunicorn's threaded worker on request.

granian parses HTTP in native code and runs the Flask app on a pool of threads,
for a few percent less CPU per call than gunicorn's gthread worker
(bench/README.md). Each `?wait=` long poll holds one of those threads while it
waits, so a process may start many (DEFAULT_THREADS); granian starts them as
requests need them and lets idle ones go.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing.util
from functools import partial

from flask import Flask
from gunicorn.app.base import BaseApplication
from werkzeug.middleware.proxy_fix import ProxyFix

from controlplane import gunicorn_hooks
from controlplane.app import create_app, services_of, settle_heap
from controlplane.auth import check_exposure
from controlplane.migrate import upgrade
from sdk.logs import configure_logging
from sdk.settings import Settings

#: The HTTP servers `callplane server --server` offers; the first is the default.
SERVERS = ("granian", "gunicorn")
#: Threads per server process, at most; each waiting request holds one.
DEFAULT_THREADS = 1024
#: Keep idle client connections open this long, so SDK callers reuse them.
KEEPALIVE_SECONDS = 75
#: How long a stopping server process may finish its requests before it is killed.
GRACEFUL_SECONDS = 10


def serve(settings: Settings, workers: int = 1, threads: int = DEFAULT_THREADS,
          migrate: bool = True, server: str = SERVERS[0]) -> None:
    """Bring the database schema up to date, then serve until stopped."""
    if server not in SERVERS:
        raise ValueError(f"server must be one of {', '.join(SERVERS)}, not {server!r}")
    check_exposure([settings.host], settings.token, settings.allow_no_token)
    if migrate:
        upgrade(settings.database_url)
    if server == "gunicorn":
        GunicornServer(settings, workers, threads).run()
    else:
        serve_with_granian(settings, workers, threads)


def serve_with_granian(settings: Settings, workers: int, threads: int) -> None:
    from granian.constants import Interfaces
    from granian.server import Server

    # granian warns of more threads than cores; here they are waiting long polls.
    logging.getLogger("_granian").addFilter(lambda record: "Python threads" not in record.getMessage())
    Server(
        target="controlplane.server:served_app", address=settings.host, port=settings.port,
        interface=Interfaces.WSGI, workers=workers, blocking_threads=threads,
        websockets=False, workers_kill_timeout=GRACEFUL_SECONDS,
    ).serve(target_loader=partial(served_app, settings), wrap_loader=False)


def served_app(settings: Settings | None = None) -> Flask:
    """One server process's app, its recorder and completion listener running
    until the process exits. Also `granian --interface wsgi --factory
    controlplane.server:served_app` (configured by the environment)."""
    settings = settings or Settings.from_env()
    configure_logging(settings.log_format)
    app = create_app(settings, start_services=True)
    services = services_of(app)
    # granian's worker processes end through multiprocessing, which runs its
    # finalizers but not atexit's; a process of its own runs atexit's.
    multiprocessing.util.Finalize(services, services.stop, exitpriority=10)
    atexit.register(services.stop)
    app.wsgi_app = ProxyFixFrom(app.wsgi_app, settings.forwarded_allow_ips)  # type: ignore[method-assign]
    settle_heap()
    return app



class ProxyFixFrom:
    """Believe X-Forwarded-Proto and -For only from the proxies FORWARDED_ALLOW_IPS
    names (as gunicorn does): the scheme decides whether the session cookie is Secure."""

    def __init__(self, wsgi_app, allowed: str):
        self._direct = wsgi_app
        self._proxied = ProxyFix(wsgi_app, x_for=1, x_proto=1)
        self._allowed = frozenset(address.strip() for address in allowed.split(","))

    def __call__(self, environ, start_response):
        peer = environ.get("REMOTE_ADDR", "")
        trusted = "*" in self._allowed or peer in self._allowed
        return (self._proxied if trusted else self._direct)(environ, start_response)


class GunicornServer(BaseApplication):
    def __init__(self, settings: Settings, workers: int = 1, threads: int = DEFAULT_THREADS):
        self.settings = settings
        self.options = {
            "bind": f"{settings.host}:{settings.port}",
            "workers": workers,
            "worker_class": "gthread",
            "threads": threads,
            "keepalive": KEEPALIVE_SECONDS,
            "timeout": 120,
            "graceful_timeout": GRACEFUL_SECONDS,
            "forwarded_allow_ips": settings.forwarded_allow_ips,
            "post_worker_init": gunicorn_hooks.post_worker_init,
            "worker_exit": gunicorn_hooks.worker_exit,
        }
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        configure_logging(self.settings.log_format)
        return create_app(self.settings)
