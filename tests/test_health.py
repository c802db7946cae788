"""/health and /ready: answered without a token, in about a second at most, and
/ready says which part is not ready, with a real redis-server stopped."""

from __future__ import annotations

import signal
import time

import pytest

from controlplane.app import create_app, services_of
from controlplane.local_cluster import free_port, start_redis_server, stop
from controlplane.migrate import head_revision, upgrade
from sdk.settings import Settings


def test_a_running_control_plane_is_healthy_and_ready(api):
    assert api("GET", "/health").json() == {"status": "ok"}
    ready = api("GET", "/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "redis": "ok", "database": "ok"}


@pytest.fixture
def probed(tmp_path):
    """A control plane with a token, over a redis-server of its own; (its test
    client, the redis-server, the database's URL)."""
    port = free_port()
    redis_server = start_redis_server(port, tmp_path)
    url = f"sqlite:///{tmp_path / 'callplane.db'}"
    redis_url = f"redis://127.0.0.1:{port}/0"
    app = create_app(Settings(database_url=url, redis_url=redis_url, token="probe-token"))
    yield app.test_client(), redis_server, url
    redis_server.send_signal(signal.SIGCONT)
    stop(redis_server)
    services_of(app).store.engine.dispose()


def test_ready_needs_the_schema_this_code_expects_and_no_token(probed):
    http, _redis, url = probed
    assert http.get("/health").json == {"status": "ok"}
    answer = http.get("/ready")
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    assert answer.json["redis"] == "ok"
    assert answer.json["database"] == (f"schema is at nothing, this code needs {head_revision()}: "
                                       "run `callplane db upgrade`")
    upgrade(url)
    assert http.get("/ready").json == {"status": "ready", "redis": "ok", "database": "ok"}
    assert http.get("/api/calls").status_code == 401  # the rest still wants the token


def test_ready_answers_within_a_second_or_so_while_redis_hangs(probed):
    http, redis_server, url = probed
    upgrade(url)
    redis_server.send_signal(signal.SIGSTOP)  # up, but answering nothing
    for _ in range(2):  # and again, while the first check still hangs
        started = time.monotonic()
        answer = http.get("/ready")
        assert time.monotonic() - started < 10  # answered, not hanging with Redis
        assert answer.status_code == 503
        assert answer.json["redis"] == "no answer within 1 s" and answer.json["database"] == "ok"
    assert http.get("/health").status_code == 200
    redis_server.send_signal(signal.SIGCONT)
    deadline = time.monotonic() + 5
    while http.get("/ready").status_code != 200:
        assert time.monotonic() < deadline, "not ready again after Redis came back"
        time.sleep(0.1)
