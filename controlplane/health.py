"""`GET /health` and `GET /ready`: what a load balancer, an orchestrator or a
platform's router probes.

/health says the process answers, and does no I/O: a control plane whose Redis
is away is still alive, and restarting it would not bring Redis back. /ready
says it can do its work now: Redis and the database answer, and the schema is
the one this code expects. Each part is asked on a thread of its own with a
deadline, so a part that hangs (a stopped Redis or database) makes the probe
answer 503 within about a second instead of hanging with it. Neither needs a
token: they say nothing about any call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

from flask import Blueprint, current_app

from controlplane.migrate import head_revision
from controlplane.store import Store
from sdk.transport.connection import answers

#: How long /ready waits for each part.
READY_TIMEOUT_SECONDS = 1.0
#: What a load balancer should wait before asking a part that is not ready again.
RETRY_AFTER_SECONDS = 1

blp = Blueprint("health", __name__)


class Readiness:
    """Whether this process's Redis and database answer, each asked at most once
    at a time (a check still hanging from before is reported, not repeated)."""

    def __init__(self, redis_url: str, store: Store, timeout: float = READY_TIMEOUT_SECONDS):
        self._timeout = timeout
        expected = head_revision()  # read from the migrations once, not on every probe
        self._parts: dict[str, Callable[[], str | None]] = {
            "redis": lambda: None if answers(redis_url, timeout) else _no_answer(timeout),
            "database": lambda: _schema_problem(store, expected),
        }
        self._pool = ThreadPoolExecutor(max_workers=len(self._parts),
                                        thread_name_prefix="callplane-ready")
        self._lock = threading.Lock()
        self._asking: dict[str, Future] = {}

    def problems(self) -> dict[str, str]:
        """Each part's state: "ok", or what is wrong with it."""
        with self._lock:
            for part, check in self._parts.items():
                if part not in self._asking or self._asking[part].done():
                    self._asking[part] = self._pool.submit(check)
            asking = dict(self._asking)
        wait(asking.values(), timeout=self._timeout)
        return {part: _state(future, self._timeout) for part, future in asking.items()}


def _state(future: Future, timeout: float) -> str:
    if not future.done():
        return _no_answer(timeout)
    try:
        return future.result() or "ok"
    except Exception as exc:  # noqa: BLE001 - whatever it raised is why it is not ready
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _no_answer(timeout: float) -> str:
    return f"no answer within {timeout:g} s"


def _schema_problem(store: Store, expected: str) -> str | None:
    revision = store.schema_revision()
    if revision != expected:
        return f"schema is at {revision or 'nothing'}, this code needs {expected}: run `callplane db upgrade`"
    return None


@blp.get("/health")
def health():
    return {"status": "ok"}


@blp.get("/ready")
def ready():
    parts = current_app.extensions["callplane"].readiness.problems()
    if all(state == "ok" for state in parts.values()):
        return {"status": "ready", **parts}
    return {"status": "not ready", **parts}, 503, {"Retry-After": str(RETRY_AFTER_SECONDS)}
