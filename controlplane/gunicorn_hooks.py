"""Gunicorn hooks for a plain `gunicorn 'controlplane.app:create_app()'` (the Procfile's web):
each server process starts its own recorder and completion listener after forking."""

from controlplane.app import services_of


def post_worker_init(worker):
    services_of(worker.wsgi).start()


def worker_exit(_server, worker):
    services_of(worker.wsgi).stop()
