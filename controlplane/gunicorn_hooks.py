"""Gunicorn hooks for a plain `gunicorn 'controlplane.app:create_app()'` (the Procfile's web):
each server process starts its own recorder and completion listener after forking."""

from controlplane.app import services_of, settle_heap
from controlplane.auth import check_exposure
from sdk.settings import Settings


def on_starting(server):
    """Before binding: refuse an open API beyond loopback (see check_exposure)."""
    settings = Settings.from_env()
    hosts = [address.rsplit(":", 1)[0] for address in server.cfg.bind
             if not address.startswith(("unix:", "fd://"))]  # local sockets are not exposed
    check_exposure(hosts, settings.token, settings.allow_no_token)


def post_worker_init(worker):
    services_of(worker.wsgi).start()
    settle_heap()


def worker_exit(_server, worker):
    services_of(worker.wsgi).stop()
