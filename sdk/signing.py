"""Jobs signed by the control plane, so a worker runs only what it created.

Anyone who can write to Redis can push a job into a queue; only the control
plane holds the key (made by `callplane db upgrade`, or CALLPLANE_JOB_KEY). It
signs each job's id, attempt and data with HMAC-SHA256 when it queues it, and a
worker checks the signature after claiming the job and before reading its
data: a forged job, or a copy of a real one under another id or attempt, is set
aside unrun. The key is fetched when first needed (a worker asks its control
plane), so either side may start first.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Callable


class JobSigner:
    def __init__(self, key: Callable[[], str]):
        self._source = key
        self._key: bytes | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Fetch the key now (a worker does before it claims anything)."""
        self._secret()

    def _secret(self) -> bytes:
        with self._lock:
            if self._key is None:
                self._key = self._source().encode()
            return self._key

    def sign(self, call_id: str, attempt: int | str, data: str) -> str:
        message = f"{call_id}\n{attempt}\n{data}".encode()
        return hmac.new(self._secret(), message, hashlib.sha256).hexdigest()

    def genuine(self, call_id: str, attempt: int | str, data: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(call_id, attempt, data), signature)
