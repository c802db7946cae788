"""huey 3 on Redis: one consumer with one worker process per slot.

Processes rather than threads: like the RQ and Celery workers, two slots then use both cores
instead of sharing one GIL. Threads measured 10-20 % slower on W3 here, so this is huey at
its best, and callplane's ratio against it is the conservative one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from huey.api import Result
from huey.exceptions import ResultTimeout

from bench.common import python_command
from bench.peers import huey_tasks
from bench.peers.base import PeerSystem

CONSUMER_APP = "bench.peers.huey_worker.huey"  # not imported here: it needs the worker's env


class HueySystem(PeerSystem):
    """The consumer's defaults otherwise (blocking BRPOP dequeue, INFO logging to a file)."""

    name = "huey"

    def __init__(self, redis_url: str, workdir: Path) -> None:
        super().__init__(redis_url, workdir)
        self._app = huey_tasks.build(redis_url)

    def worker_commands(self, slots: int) -> list[list[str]]:
        return [python_command("-m", "huey.bin.huey_consumer", CONSUMER_APP,
                               "--workers", str(slots), "--worker-type", "process")]

    def submit_noop(self) -> Result:
        return self._app.noop()

    def submit_parent(self, children: int) -> Result:
        return self._app.parent(children)

    def submit_nap(self, seconds: float) -> Result:
        return self._app.nap(seconds)

    def wait(self, handle: Result, timeout: float) -> Any:
        try:
            return handle.get(blocking=True, timeout=timeout)
        except ResultTimeout as error:
            raise TimeoutError(f"huey task {handle.id}: {error}") from error

    def count_finished(self, handles: Sequence[Result]) -> int:
        return len(self._app.huey.storage.peek_many([result.id for result in handles]))

    def close(self) -> None:
        self._app.huey.storage.pool.disconnect()
        super().close()
