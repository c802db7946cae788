"""Browser sessions and sign-in attempts, kept in Redis so every control-plane
process agrees: a session ends when its browser signs out (in every process at
once), when it has been idle too long, or at the end of its life; and a client
address that keeps failing to sign in is held off for a while.

Redis keeps a session under the SHA-256 of its id, never the id itself: what the
cookie holds cannot be read back out of Redis.
"""

from __future__ import annotations

import hashlib
import secrets
import time

import redis

from sdk.transport.connection import translating
from sdk.transport.keys import LOGIN_ATTEMPTS_PREFIX, SESSION_PREFIX


def _key(session_id: str) -> str:
    return SESSION_PREFIX + hashlib.sha256(session_id.encode()).hexdigest()


@translating
class Sessions:
    def __init__(self, client: redis.Redis):
        self._redis = client

    def open(self, idle_seconds: int, life_seconds: int) -> str:
        """A new session's id, for the cookie: it lasts `life_seconds` at most,
        and ends sooner after `idle_seconds` without a request."""
        session_id = secrets.token_urlsafe(32)
        ends = int(time.time()) + life_seconds
        self._redis.set(_key(session_id), ends, ex=min(idle_seconds, life_seconds))
        return session_id

    def touch(self, session_id: str, idle_seconds: int) -> bool:
        """Whether the session is open; if so, its idle time starts again."""
        if not session_id:
            return False
        ends = self._redis.getex(_key(session_id), ex=idle_seconds)
        if ends is None:
            return False
        left = int(ends) - int(time.time())
        if left <= 0:
            self._redis.delete(_key(session_id))
            return False
        if left < idle_seconds:  # never past the end of its life
            self._redis.expire(_key(session_id), left)
        return True

    def close(self, session_id: str) -> None:
        if session_id:
            self._redis.delete(_key(session_id))

    def count_attempt(self, address: str, window_seconds: int) -> int:
        """Count a sign-in attempt from `address`; how many it made in its window
        (which starts at its first attempt)."""
        key = LOGIN_ATTEMPTS_PREFIX + address
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, window_seconds, nx=True)
            attempts, _ = pipe.execute()
        return int(attempts)

    def held_off_for(self, address: str) -> int:
        """Seconds until `address` may try to sign in again (0: it may now)."""
        return max(0, int(self._redis.ttl(LOGIN_ATTEMPTS_PREFIX + address)))

    def clear_attempts(self, address: str) -> None:
        self._redis.delete(LOGIN_ATTEMPTS_PREFIX + address)
