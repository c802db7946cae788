"""controlplane.api.errors: the service's refusals reach clients in the API's one
error shape; and Redis being away stops at the transport's boundary."""

from __future__ import annotations

import fakeredis
import pytest

from controlplane.app import create_app, services_of
from controlplane.dispatch import Dispatch
from controlplane.migrate import upgrade
from controlplane.store import utcnow
from sdk.errors import RedisUnavailable
from sdk.records import CallRecord
from sdk.settings import Settings
from sdk.transport import Transport
from sdk.wire import Status

pytestmark = pytest.mark.unit


@pytest.fixture
def client(tmp_path):
    url = f"sqlite:///{tmp_path / 'callplane.db'}"
    upgrade(url)
    # Redis is never asked: every request here is refused before it would be.
    app = create_app(Settings(database_url=url, redis_url="redis://127.0.0.1:1/0"))
    yield app.test_client(), services_of(app).store
    services_of(app).store.engine.dispose()


def test_a_missing_call_is_a_404_in_the_error_shape(client):
    http, _store = client
    answer = http.get("/api/call/nosuchcall")
    assert answer.status_code == 404
    assert answer.json == {"code": 404, "status": "Not Found",
                           "message": "no call with id 'nosuchcall'"}


def test_a_conflict_is_a_409_in_the_error_shape(client):
    http, store = client
    store.insert([CallRecord("c1", "s", Status.PENDING, root_stage_run_id="c1", queue="any.s",
                             created_at=utcnow())])
    answer = http.post("/api/call/c1/retry")
    assert answer.status_code == 409 and answer.json["status"] == "Conflict"
    assert "only a failed or cancelled call can be retried" in answer.json["message"]


def test_redis_being_away_is_redis_unavailable_and_dispatch_accepts_the_call_anyway():
    server = fakeredis.FakeServer()
    transport = Transport(fakeredis.FakeRedis(server=server, decode_responses=True))
    server.connected = False
    with pytest.raises(RedisUnavailable):
        transport.jobs.has_epoch()
    pending = CallRecord("c", "s", Status.PENDING, queue="any.s")
    Dispatch(transport).enqueue([pending])  # logged; recovery queues it later
