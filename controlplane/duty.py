"""What every one-at-a-time duty's thread does (the clock, retention): do its
work every so often, waiting out Redis or the database being away.

Which process does the work is decided by the duty's lease in Redis
(sdk.transport.duties): every control plane runs the thread; the lease's
holder works, the others only try to take the lease.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable

from controlplane.errors import StoreUnavailable
from sdk.errors import RedisUnavailable

log = logging.getLogger(__name__)


def holder_name() -> str:
    """This process, as a duty's lease names its holder (host, pid, and a nonce
    that tells a restarted process with the same pid apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def keep_doing(work: Callable[[], object], every: float, stopping: threading.Event,
               duty: str, waiting: str) -> None:
    """Call `work` every `every` seconds until `stopping` is set. Redis or the
    database away is logged once (`waiting` says what waits for it) and waited
    out, never fatal; any other failure is logged and the next round goes on."""
    away = False
    while not stopping.wait(every):
        try:
            work()
            away = False
        except (RedisUnavailable, StoreUnavailable) as exc:
            if not away:
                log.warning("%s: %s; %s wait for it", duty, exc, waiting)
            away = True
        except Exception:
            log.exception("%s: a round failed; going on", duty)
