"""Small pieces on their own: the wire format, argument checks, the atomic claim
(fakeredis is enough for one script's logic), and code versions."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import fakeredis
import pytest

from sdk.decorators import WorkflowRunner
from sdk.errors import DecodeError
from sdk.transport import JOB_GONE, Claimed, FinishReport, StartReport, Transport
from sdk.wire import ENTRY_POINT, TRANSITIONS, CallMessage, Status, queue_name, sources_of
from workers.loader import load_workflow, resolve_commit


def test_call_message_round_trips():
    message = CallMessage(id="a", stage="s", args=[1], kwargs={"k": None}, attempt=2)
    assert CallMessage.decode(message.encode()) == message


@pytest.mark.parametrize("data, complaint", [
    ("not json", "not callplane's JSON"),
    (json.dumps(["os.system", None, ["rm -rf /"], {}]), "refusing to run it"),
    (json.dumps([ENTRY_POINT, None, [], {}]), "one call message"),
    (json.dumps([ENTRY_POINT, None, [{"id": "a", "stage": "s", "evil": 1}], {}]), "unknown fields"),
    (json.dumps([ENTRY_POINT, None, [{"id": "a"}], {}]), "incomplete"),
    (json.dumps([ENTRY_POINT, None, [{"id": "a", "stage": "s", "args": {}}], {}]), "args must be a list"),
])
def test_bad_jobs_are_refused_with_a_reason(data, complaint):
    with pytest.raises(DecodeError, match=complaint):
        CallMessage.decode(data)


def test_transitions_allow_only_forward_moves():
    assert set(sources_of(Status.RUNNING)) == {"pending"}
    assert set(sources_of(Status.SUCCEEDED)) == {"running"}
    for terminal in (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED):
        assert TRANSITIONS[terminal] == frozenset() and terminal.is_terminal


def test_queue_names_keep_versions_apart():
    assert queue_name("main", "repo", "a" * 40) == "repo@aaaaaaaaaaaa.main"
    assert queue_name("main", None, None) == "any.main"
    assert queue_name("main", "my repo!", "abc") == "my_repo_@abc.main"


def test_stage_options_are_checked_at_decoration():
    runner = WorkflowRunner("http://localhost:5001")
    with pytest.raises(TypeError, match="unknown stage option"):
        runner.stage(retry=3)
    with pytest.raises(ValueError, match="retries must be a whole number"):
        runner.stage(retries=-1)
    with pytest.raises(ValueError, match="backoff must be"):
        runner.stage(retries=2, backoff="soon")
    with pytest.raises(TypeError, match="retry_on takes an exception class"):
        runner.stage(retries=2, retry_on=ValueError("x"))
    with pytest.raises(ValueError, match="timeout must be"):
        runner.stage(timeout=0)

    @runner.stage
    def twice():
        pass

    with pytest.raises(ValueError, match="already registered"):
        runner.stage(name="twice")(lambda: None)
    with pytest.raises(ValueError, match="http://HOST:PORT"):
        WorkflowRunner("localhost:5001")


def test_claim_is_atomic_and_only_the_holder_can_finish():
    transport = Transport(fakeredis.FakeRedis(decode_responses=True))
    now = datetime.now(timezone.utc)
    message = CallMessage(id="c1", stage="s")
    transport.enqueue([message], now)
    assert transport.pop([message.queue], 1) == (message.queue, "c1")
    first = StartReport("w1", now)
    assert transport.claim(message.queue, "c1", first) == Claimed(
        message.queue, "c1", message.encode(), first
    )
    assert transport.claim(message.queue, "c1", StartReport("w2", now)) is None
    assert transport.finish(FinishReport(message.queue, "c1", "w2", 1, "{}", True, now)) == 0
    assert transport.finish(FinishReport(message.queue, "c1", "w1", 2, "{}", True, now)) == 0
    assert transport.finish(
        FinishReport(message.queue, "c1", "w1", 1, '{"status":"succeeded"}', True, now)
    ) == 1
    assert transport.outcomes(["c1", "gone"]) == {"c1": '{"status":"succeeded"}'}
    gone = FinishReport(message.queue, "gone", "w1", 1, "{}", True, now)
    assert transport.finish(gone) == JOB_GONE


def test_finishing_a_call_claims_the_next_of_the_first_queue_that_has_one():
    transport = Transport(fakeredis.FakeRedis(decode_responses=True))
    now = datetime.now(timezone.utc)
    high, low = CallMessage(id="h1", stage="high"), CallMessage(id="l1", stage="low")
    transport.enqueue([low, high, CallMessage(id="h2", stage="high")], now)
    queues = [high.queue, low.queue]
    start = StartReport("w1", now, "dispatched")
    first = transport.claim_next(queues, start)
    assert (first.queue, first.call_id) == (high.queue, "h1")
    transport.claim(high.queue, "h2", StartReport("w2", now))  # another worker got h2 first
    accepted, after = transport.finish_and_claim_next(
        FinishReport(high.queue, "h1", "w1", 1, "{}", True, now), queues, start
    )
    assert accepted and (after.queue, after.call_id, after.data) == (low.queue, "l1", low.encode())
    assert transport.redis.hget("rq:job:l1", "worker_name") == "w1"
    assert transport.claim_next(queues, start) is None


def test_take_removes_a_queued_call_once():
    transport = Transport(fakeredis.FakeRedis(decode_responses=True))
    message = CallMessage(id="c2", stage="s")
    transport.enqueue([message], datetime.now(timezone.utc))
    assert transport.take(message.queue, "c2") is True
    assert transport.take(message.queue, "c2") is False


def test_workflow_loader_explains_failures(tmp_path):
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(Exception, match="registers no stage"):
        load_workflow(empty)
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(Exception, match="failed to import"):
        load_workflow(broken)


def test_head_outside_git_is_a_clear_error_and_labels_pass_through(tmp_path):
    flow = tmp_path / "flow.py"
    flow.write_text("")
    with pytest.raises(Exception, match="not in a git repository"):
        resolve_commit(flow, "HEAD")
    assert resolve_commit(flow, "release-42") == "release-42"


def test_db_upgrade_command_creates_the_schema_and_is_repeatable(tmp_path):
    import sqlalchemy as sa
    from click.testing import CliRunner

    from controlplane.cli import main

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    for _ in range(2):
        result = CliRunner().invoke(main, ["db", "upgrade"], env={"DATABASE_URL": url})
        assert result.exit_code == 0, result.output
        assert "up to date" in result.output
    columns = {c["name"] for c in sa.inspect(sa.create_engine(url)).get_columns("stage_runs")}
    assert {"id", "parent_stage_run_id", "arguments", "workflow_run_id", "status"} <= columns


def test_the_event_stream_is_started_anew_after_redis_lost_it(redis_url):
    # A real redis-server (fakeredis words this error differently), in a database of its own.
    transport = Transport.from_url(redis_url.rsplit("/", 1)[0] + "/7")
    client = transport.redis
    transport.ensure_recorder_group()
    client.flushdb()  # what a restart of a Redis without persistence leaves
    assert transport.read_events("c", 10, 10) == []
    client.xadd("callplane:events", {"kind": "finish", "id": "x", "body": "{}"})
    assert [fields["id"] for _, fields in transport.read_events("c", 10, 10)] == ["x"]


def test_pending_calls_redis_lost_track_of_are_found():
    transport = Transport(fakeredis.FakeRedis(decode_responses=True))
    now = datetime.now(timezone.utc)
    queued, popped, started, stopped, stale = (CallMessage(id=i, stage="s") for i in "qpxyz")
    transport.enqueue([queued, popped, started, stopped, stale], now)
    transport.redis.lrem(f"rq:queue:{popped.queue}", 1, "p")  # popped by a worker that died
    for message in (started, stopped):
        transport.claim(message.queue, message.id, StartReport("w", now))
    transport.abandon(stopped.queue, "y", "w", 1)
    pending = [(m.queue, m.id, 1) for m in (queued, popped, started, stopped)]
    pending += [(stale.queue, "z", 2), (queued.queue, "never-queued", 1)]
    assert sorted(transport.untracked(pending)) == ["never-queued", "p", "y", "z"]


def test_retry_pauses_grow_exponentially_with_jitter_and_only_listed_errors_retry():
    import random

    from sdk.decorators import BACKOFF_CAP_SECONDS, RetryPolicy

    policy = RetryPolicy(retries=20, backoff=0.5, retry_on=(KeyError,))
    rng = random.Random(7)
    pauses = [policy.pause(attempt, rng) for attempt in range(1, 21)]
    assert all(0 <= p <= min(BACKOFF_CAP_SECONDS, 0.5 * 2 ** i) for i, p in enumerate(pauses))
    assert max(pauses[:3]) <= 2.0 and max(pauses) > 10
    assert policy.retries_after(KeyError("k"), 20) and not policy.retries_after(KeyError("k"), 21)
    assert not policy.retries_after(ValueError("v"), 1)


def test_queueing_a_call_again_never_resets_a_job_a_worker_holds():
    transport = Transport(fakeredis.FakeRedis(decode_responses=True))
    now = datetime.now(timezone.utc)
    message = CallMessage(id="c", stage="s")
    transport.enqueue([message], now)
    assert transport.claim_next([message.queue], StartReport("w1", now)).call_id == "c"
    transport.enqueue([message], now)  # e.g. a rebuild that raced the claim
    assert transport.redis.hget("rq:job:c", "status") == "started"
    assert transport.redis.llen(f"rq:queue:{message.queue}") == 0
    transport.enqueue([CallMessage(id="c", stage="s", attempt=2)], now)  # its next attempt
    assert transport.redis.hmget("rq:job:c", ["status", "cp_attempt"]) == ["queued", "2"]


def test_printed_database_urls_hide_their_password():
    from controlplane.migrate import shown

    assert shown("postgresql://app:hunter2@db:5432/calls") == "postgresql://app:***@db:5432/calls"
    assert shown("sqlite:///callplane.db") == "sqlite:///callplane.db"
