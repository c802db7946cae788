"""A Redis client as callplane needs it, and the boundary where redis-py's errors stop."""

from __future__ import annotations

import functools
import inspect

import redis

from sdk.errors import RedisUnavailable

#: How long to wait for Redis to accept a connection.
CONNECT_TIMEOUT_SECONDS = 5
#: How often an idle connection is checked before use.
HEALTH_CHECK_SECONDS = 30


def connect(url: str) -> redis.Redis:
    """A client whose blocking pops and pub/sub reads may wait as long as they like.

    redis-py 8 defaults to a 5 s socket timeout, which would cut an idle worker's
    blocking pop; callplane's waits carry their own timeouts instead.
    """
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=None,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_keepalive=True,
        health_check_interval=HEALTH_CHECK_SECONDS,
    )


def answers(url: str, timeout_seconds: float = 1.0) -> bool:
    """Whether a Redis answers at `url` within the timeout (a PING)."""
    client = redis.Redis.from_url(
        url, socket_connect_timeout=timeout_seconds, socket_timeout=timeout_seconds
    )
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
    finally:
        client.close()


def translate_errors(method):
    """Turn redis-py's connection errors into RedisUnavailable at this boundary."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise RedisUnavailable(f"Redis is unreachable: {exc}") from None

    return wrapper


def translating(cls):
    """Class decorator: every public method translates redis-py's connection errors."""
    for name, member in list(vars(cls).items()):
        if not name.startswith("_") and inspect.isfunction(member):
            setattr(cls, name, translate_errors(member))
    return cls
