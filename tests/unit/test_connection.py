"""sdk.transport.connection: which server a URL names, read without connecting."""

from __future__ import annotations

import pytest
from redis.sentinel import SentinelConnectionPool

from sdk.transport.connection import connect

pytestmark = pytest.mark.unit


def test_a_sentinel_url_names_the_sentinels_the_master_and_the_database():
    client = connect("redis+sentinel://:secret@10.0.0.1:26379,10.0.0.2:26380/orders/3")
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "orders"
    assert (pool.connection_kwargs["db"], pool.connection_kwargs["password"]) == (3, "secret")
    assert pool.connection_kwargs["socket_timeout"] is None  # blocking pops wait as they like
    sentinels = pool.sentinel_manager.sentinels
    assert [s.connection_pool.connection_kwargs["port"] for s in sentinels] == [26379, 26380]
    assert all(s.connection_pool.connection_kwargs.get("password") is None for s in sentinels)


def test_a_sentinel_url_without_a_master_name_says_how_to_write_one():
    with pytest.raises(ValueError, match="names no master: write redis\\+sentinel://"):
        connect("redis+sentinel://10.0.0.1:26379")


def test_a_plain_url_names_one_server():
    pool = connect("redis://10.0.0.1:6390/2").connection_pool
    assert (pool.connection_kwargs["host"], pool.connection_kwargs["port"]) == ("10.0.0.1", 6390)
    assert pool.connection_kwargs["db"] == 2
