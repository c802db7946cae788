"""A Redis client as callplane needs it, and the boundary where redis-py's errors stop.

A URL names one server (`redis://host:6379/0`) or the Sentinels that watch a
master and its replicas (`redis+sentinel://[:password@]host1:26379,host2:26379/
<master name>/<db>`): then every new connection asks a Sentinel which server is
the master now, so after a failover the clients follow the promoted replica.
The password, if any, is the master's; the Sentinels are asked without one.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.sentinel import Sentinel
from redis_sentinel_url import parse_sentinel_url

from sdk.errors import RedisUnavailable

#: How long to wait for Redis to accept a connection.
CONNECT_TIMEOUT_SECONDS = 5
#: How often an idle connection is checked before use.
HEALTH_CHECK_SECONDS = 30
SENTINEL_SCHEME = "redis+sentinel"
#: How long one Sentinel may take to say which server is the master (the next is
#: asked after that).
SENTINEL_TIMEOUT_SECONDS = 1.0


def connect(url: str, *, decode: bool = True, timeout: float | None = None,
            connect_timeout: float = CONNECT_TIMEOUT_SECONDS) -> redis.Redis:
    """A client whose blocking pops and pub/sub reads may wait as long as they like
    (no `timeout` by default). `decode=False` gives bytes, as RQ's classes want.

    redis-py 8 defaults to a 5 s socket timeout, which would cut an idle worker's
    blocking pop; callplane's waits carry their own timeouts instead.
    """
    options: dict[str, Any] = {
        "decode_responses": decode,
        "socket_timeout": timeout,
        "socket_connect_timeout": connect_timeout,
        "socket_keepalive": True,
        "health_check_interval": HEALTH_CHECK_SECONDS,
    }
    scheme = urlsplit(url).scheme
    if scheme == SENTINEL_SCHEME:
        return _master_of(url, options)
    if scheme == "unix":
        del options["socket_keepalive"]  # a TCP option
    return redis.Redis.from_url(url, **options)


def _master_of(url: str, options: dict[str, Any]) -> redis.Redis:
    """A client of the master that the Sentinels in `url` name at each connection."""
    asking = min(SENTINEL_TIMEOUT_SECONDS, options["socket_connect_timeout"])
    parsed = parse_sentinel_url(
        url, sentinel_options={"socket_timeout": asking, "socket_connect_timeout": asking},
        client_options=options,
    )
    service = parsed.default_client.service
    if not service:
        raise ValueError(
            f"{url!r} names no master: write redis+sentinel://host1:26379,host2:26379/"
            "<master name>/<db>, with the name the Sentinels monitor it by"
        )
    sentinel = Sentinel(parsed.hosts, sentinel_kwargs=parsed.sentinel_options,
                        **parsed.client_options)
    return sentinel.master_for(service, redis_class=redis.Redis)


def answers(url: str, timeout_seconds: float = 1.0) -> bool:
    """Whether a Redis answers at `url` within the timeout (a PING)."""
    client = connect(url, decode=False, timeout=timeout_seconds, connect_timeout=timeout_seconds)
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
