"""The hot endpoints encode their answers from the records themselves: each must
say exactly what its schema, the API's definition, dumps."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import flask
import pytest

from controlplane.api.answers import call_answer, calls_answer, created_answer, tree_answer
from controlplane.schemas import CallBatchSchema, CallCreatedBatchSchema, CallSchema, TreeSchema
from controlplane.trees import tree_nodes
from sdk.records import (
    Arguments,
    AttemptRecord,
    CallDetails,
    CallRecord,
    CallSummary,
    ErrorRecord,
)
from sdk.wire import RunMode, Status

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 3, 7, 1, 20, 836185, tzinfo=timezone.utc)


def records() -> list[CallRecord]:
    pending = CallRecord("a1", "noop", Status.PENDING, arguments=Arguments([1, "x"], {"k": None}),
                         root_stage_run_id="a1", queue="app@abc.noop", created_at=NOW)
    child = CallRecord(
        "c2", "work.step", Status.FAILED, arguments=Arguments([{"deep": [1.5, True]}], {}),
        result=None, error=ErrorRecord("ValueError", "no", "Traceback ..."), output="printed\n",
        parent_stage_run_id="a1", root_stage_run_id="a1", workflow_run_id="w", position=3,
        parent_attempt=1, queue="app@abc.work.step", repo_name="app", commit_hash="abc",
        worker="host.1.x", run_mode=RunMode.INLINE, attempt=2, max_attempts=3, created_at=NOW,
        started_at=NOW, finished_at=NOW + timedelta(seconds=1), lease_expires_at=None,
    )
    done = CallRecord("d3", "noop", Status.SUCCEEDED, result={"big": 2**80, "list": [None]},
                      root_stage_run_id="d3", queue="q", created_at=NOW, started_at=NOW,
                      finished_at=NOW, worker="w", run_mode=RunMode.DISPATCHED)
    return [pending, child, done]


def details() -> CallDetails:
    child = records()[1]
    attempt = AttemptRecord("c2", 1, "lost", "host.0.y", RunMode.DISPATCHED,
                            ErrorRecord("callplane.WorkerLost", "gone", ""), NOW, NOW)
    fields = {name: getattr(child, name) for name in CallRecord.__struct_fields__}
    return CallDetails(**fields, attempts=[attempt],
                       waiting_on=[CallSummary("e4", "noop", Status.PENDING, None)])


def body(answer: flask.Response):
    assert answer.mimetype == "application/json"
    return json.loads(answer.get_data())


@pytest.mark.parametrize("call", [*records(), details()], ids=lambda call: call.id)
def test_a_call_answers_as_call_schema_dumps_it(call):
    with flask.Flask(__name__).app_context():
        answer = call_answer(call, 201)
    assert answer.status_code == 201
    assert body(answer) == json.loads(json.dumps(CallSchema().dump(call)))


def test_batches_answer_as_their_schemas_dump_them():
    calls = records()
    with flask.Flask(__name__).app_context():
        finished, created = calls_answer(calls), created_answer(calls)
    assert body(finished) == json.loads(json.dumps(CallBatchSchema().dump({"calls": calls})))
    assert created.status_code == 201
    assert body(created) == json.loads(json.dumps(CallCreatedBatchSchema().dump({"calls": calls})))


def test_a_tree_answers_as_tree_schema_dumps_it():
    calls = records()
    earlier = details().attempts
    nodes = tree_nodes(calls[:2], "a1", earlier)
    assert [node.id for node in nodes] == ["a1", "c2"]
    assert nodes[1].earlier_attempts[0].worker == "host.0.y"
    with flask.Flask(__name__).app_context():
        answer = tree_answer("a1", nodes)
    assert body(answer) == json.loads(json.dumps(TreeSchema().dump({"call_id": "a1",
                                                                    "calls": nodes})))
