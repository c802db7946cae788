"""Serve the control plane under gunicorn (threads: each `?wait=` long poll holds one)."""

from __future__ import annotations

from gunicorn.app.base import BaseApplication

from controlplane import gunicorn_hooks
from controlplane.app import create_app
from controlplane.auth import check_exposure
from controlplane.migrate import upgrade
from sdk.settings import Settings

#: Threads per server process; each waiting request holds one.
DEFAULT_THREADS = 32
#: Keep idle client connections open this long, so SDK callers reuse them.
KEEPALIVE_SECONDS = 75


class ControlPlaneServer(BaseApplication):
    def __init__(self, settings: Settings, workers: int = 1, threads: int = DEFAULT_THREADS):
        self.settings = settings
        self.options = {
            "bind": f"{settings.host}:{settings.port}",
            "workers": workers,
            "worker_class": "gthread",
            "threads": threads,
            "keepalive": KEEPALIVE_SECONDS,
            "timeout": 120,
            "graceful_timeout": 10,
            "post_worker_init": gunicorn_hooks.post_worker_init,
            "worker_exit": gunicorn_hooks.worker_exit,
        }
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return create_app(self.settings)


def serve(settings: Settings, workers: int = 1, threads: int = DEFAULT_THREADS, migrate: bool = True):
    """Bring the database schema up to date, then serve until stopped."""
    check_exposure([settings.host], settings.token, settings.allow_no_token)
    if migrate:
        upgrade(settings.database_url)
    ControlPlaneServer(settings, workers, threads).run()
