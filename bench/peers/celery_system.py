"""Celery 5 with the solo pool: one worker process per slot, Redis broker and backend."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import celery.exceptions
from celery import Celery
from celery.result import AsyncResult

from bench.common import python_command
from bench.peers import celery_tasks
from bench.peers.base import PeerSystem


class CelerySystem(PeerSystem):
    """A client app of its own, sending tasks by name to the workers' app.

    Usable from many client threads as it is: Celery gives each thread a result backend of its
    own (its Redis one is not thread-safe), so each waits on its own pubsub connection.
    """

    name = "celery"

    def __init__(self, redis_url: str, workdir: Path) -> None:
        super().__init__(redis_url, workdir)
        self._app = celery_tasks.configure(Celery("bench-client"), redis_url)

    def worker_commands(self, slots: int) -> list[list[str]]:
        return [python_command("-m", "celery", "-A", celery_tasks.__name__, "worker",
                               "--pool", "solo", "--concurrency", "1", "--hostname", hostname)
                for hostname in _hostnames(slots)]

    def is_ready(self, slots: int) -> bool:
        replies = self._app.control.ping(_hostnames(slots), timeout=0.5, limit=slots)
        return len(replies) >= slots

    def submit_noop(self) -> AsyncResult:
        return self._app.send_task(celery_tasks.NOOP)

    def submit_parent(self, children: int) -> AsyncResult:
        return self._app.send_task(celery_tasks.PARENT, args=(children,))

    def submit_nap(self, seconds: float) -> AsyncResult:
        return self._app.send_task(celery_tasks.NAP, args=(seconds,))

    def wait(self, handle: AsyncResult, timeout: float) -> Any:
        try:
            return handle.get(timeout=timeout)
        except BaseException as error:
            # An abandoned wait (deadline, Ctrl-C): else Celery keeps the handle until the
            # interpreter exits, then retries for seconds to unsubscribe from a stopped Redis.
            handle.forget()
            if isinstance(error, celery.exceptions.TimeoutError):
                raise TimeoutError(f"Celery task {handle.id}: {error}") from error
            raise

    def count_finished(self, handles: Sequence[AsyncResult]) -> int:
        backend = self._app.backend
        keys = [backend.get_key_for_task(result.id) for result in handles]
        return backend.client.exists(*keys) if keys else 0

    def close(self) -> None:
        self._app.close()
        super().close()


def _hostnames(slots: int) -> list[str]:
    return [f"bench-{slot}@localhost" for slot in range(slots)]
