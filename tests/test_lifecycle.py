"""The call lifecycle against the store, as a hypothesis state machine: random
sequences of create, start, heartbeat, finish, expire, retry and cancel, by the
right and the wrong worker and attempt. Every move the store accepts must be a
legal one, every legal one must be accepted, and the row must always say what
a model of the lifecycle says."""

from __future__ import annotations

import uuid
from datetime import timedelta

import msgspec
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

from controlplane.store import Store, make_engine, utcnow
from sdk.records import CallRecord, ErrorRecord, Outcome
from sdk.reports import Heartbeat
from sdk.wire import Status

WORKERS = st.sampled_from(["w1", "w2"])
ATTEMPTS = st.integers(min_value=1, max_value=4)
LOST_ATTEMPTS = 3
ERROR = ErrorRecord("E", "m")


class Model:
    """What a call's row must say."""

    def __init__(self, max_attempts: int):
        self.status, self.attempt, self.worker, self.max_attempts = "pending", 1, None, max_attempts
        self.ended_attempts = 0


@pytest.fixture(scope="module")
def lifecycle_store(database_url):
    store = Store(make_engine(database_url))
    yield store
    store.engine.dispose()


class Lifecycle(RuleBasedStateMachine):
    store: Store

    calls = Bundle("calls")

    @initialize()
    def start_empty(self):
        self.models: dict[str, Model] = {}

    @rule(target=calls, max_attempts=st.integers(min_value=1, max_value=4))
    def create(self, max_attempts):
        call_id = uuid.uuid4().hex
        self.store.insert([CallRecord(
            call_id, "s", Status.PENDING, root_stage_run_id=call_id, queue="any.s",
            max_attempts=max_attempts, created_at=utcnow(),
        )])
        self.models[call_id] = Model(max_attempts)
        return call_id

    @rule(call=calls, worker=WORKERS, attempt=ATTEMPTS)
    def start(self, call, worker, attempt):
        model = self.models[call]
        legal = model.status == "pending" and attempt == model.attempt
        now = utcnow()
        assert self.store.start(call, worker, now, attempt=attempt,
                                lease_until=now + timedelta(seconds=30)) == legal
        if legal:
            model.status, model.worker = "running", worker

    @rule(call=calls, worker=WORKERS, attempt=ATTEMPTS)
    def heartbeat(self, call, worker, attempt):
        before = self.store.get(call)
        later = utcnow() + timedelta(seconds=60)
        self.store.apply_reports([(worker, Heartbeat(worker, [(call, attempt)]))], later)
        model = self.models[call]
        renewed = (model.status, model.worker, model.attempt) == ("running", worker, attempt)
        expected = later if renewed else before.lease_expires_at
        assert self.store.get(call).lease_expires_at == expected

    @rule(call=calls, worker=WORKERS, attempt=ATTEMPTS,
          outcome=st.sampled_from(["succeeded", "failed"]))
    def finish(self, call, worker, attempt, outcome):
        model = self.models[call]
        legal = attempt == model.attempt and (
            model.status == "pending" or (model.status == "running" and model.worker == worker))
        report = Outcome(call, "s", Status(outcome), worker=worker, attempt=attempt,
                         started_at=utcnow(), error=ERROR if outcome == "failed" else None)
        assert self.store.finish_reported(call, report) == legal
        if legal:
            model.status, model.worker = outcome, worker

    @rule(call=calls, worker=st.one_of(st.none(), WORKERS), attempt=ATTEMPTS)
    def expire(self, call, worker, attempt):
        model = self.models[call]
        legal = (model.status == "running" and attempt == model.attempt
                 and worker in (None, model.worker))
        record = self.store.end_attempt(call, attempt, worker, ERROR, LOST_ATTEMPTS)
        assert (record is not None) == legal
        if legal:
            if attempt < max(model.max_attempts, LOST_ATTEMPTS):
                model.ended_attempts += 1
                model.status, model.attempt, model.worker = "pending", attempt + 1, None
            else:
                model.status = "failed"

    @rule(call=calls)
    def retry(self, call):
        model = self.models[call]
        legal = model.status in ("failed", "cancelled")
        ended = self.store.get(call)
        fresh = msgspec.structs.replace(ended, status=Status.PENDING, worker=None, run_mode=None,
                                        started_at=None, lease_expires_at=None)
        assert (self.store.rerun(ended, fresh) is not None) == legal
        if legal:
            model.ended_attempts += 1
            model.status, model.attempt, model.worker = "pending", model.attempt + 1, None

    @rule(call=calls)
    def cancel(self, call):
        model = self.models[call]
        legal = model.status in ("pending", "running")
        assert bool(self.store.cancel([call], ERROR)) == legal
        if legal:
            model.status = "cancelled"

    @invariant()
    def rows_say_what_the_model_says(self):
        if not self.models:
            return
        rows = self.store.get_many(self.models)
        for call_id, model in self.models.items():
            row = rows[call_id]
            assert (row.status, row.attempt) == (model.status, model.attempt)
            if model.status == "running":
                assert row.worker == model.worker and row.lease_expires_at is not None
            else:
                assert row.lease_expires_at is None
            assert len(self.store.attempts(call_id)) == model.ended_attempts


def test_the_store_accepts_exactly_the_legal_moves(lifecycle_store):
    Lifecycle.store = lifecycle_store
    machine = Lifecycle.TestCase
    machine.settings = settings(max_examples=100, stateful_step_count=30, deadline=None,
                                suppress_health_check=[HealthCheck.too_slow])
    machine().runTest()
