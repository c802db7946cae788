"""The hot endpoints' answers, encoded straight from the records.

A create, a wait and a batch are answered many thousands of times a second, and
a run page reads trees of 10,000 calls; dumping their records through marshmallow
cost more than encoding them. The API
document still comes from the schemas the views are decorated with, and
tests/unit/test_answers.py holds each encoding here to what its schema dumps.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import flask
import msgspec

from controlplane.trees import TreeNode, tree_json
from sdk.records import CallDetails, CallRecord, json_text, plain
from sdk.wire import RunMode, Status


class CreatedCall(msgspec.Struct, frozen=True):
    """A call just created, without what the request already said (its arguments),
    as CallCreatedSchema documents it."""

    id: str
    stage: str
    status: Status
    queue: str
    parent_stage_run_id: str | None
    root_stage_run_id: str
    position: int | None
    worker: str | None
    run_mode: RunMode | None
    created_at: datetime
    not_before: datetime | None

    @classmethod
    def of(cls, call: CallRecord) -> CreatedCall:
        return cls(**{name: getattr(call, name) for name in cls.__struct_fields__})


def call_answer(call: CallRecord | CallDetails, status: int = 200) -> flask.Response:
    """A call as CallSchema documents it (an earlier attempt without its call's id)."""
    return _response(call_json(call), status)


def call_json(call: CallRecord | CallDetails) -> str:
    return json_text(_call_value(call))


def _call_value(call: CallRecord) -> dict[str, Any]:
    """A call's fields, and how long it waited and ran (CallSchema's timings)."""
    value = plain(call)
    for attempt in value.get("attempts", ()):
        del attempt["call_id"]
    value["waited_seconds"] = call.waited_seconds
    value["ran_seconds"] = call.ran_seconds
    return value


def calls_answer(calls: list[CallRecord], status: int = 200) -> flask.Response:
    """{"calls": [...]}, as CallBatchSchema documents it."""
    return _response(json_text({"calls": [_call_value(call) for call in calls]}), status)


def created_answer(calls: list[CallRecord]) -> flask.Response:
    """{"calls": [...]} of calls just created, as CallCreatedBatchSchema documents it."""
    return _response(created_json(calls), 201)


def created_json(calls: list[CallRecord]) -> str:
    return json_text({"calls": plain([CreatedCall.of(call) for call in calls])})


def tree_answer(call_id: str, nodes: list[TreeNode]) -> flask.Response:
    """{"call_id": ..., "calls": [...]}, as TreeSchema documents it (msgspec: the
    nodes' times are text already, see controlplane.trees)."""
    return _response(tree_json(call_id, nodes), 200)


def _response(text: str | bytes, status: int) -> flask.Response:
    return flask.Response(text, status=status, mimetype="application/json")
