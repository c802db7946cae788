"""The REST API's answer shapes, as the API document shows them (the hot answers
are encoded from the records themselves: see controlplane.api.answers)."""

from __future__ import annotations

from marshmallow import Schema, fields

from controlplane.schemas.requests import ArgumentsSchema, CallErrorSchema


class IsoTime(fields.DateTime):
    """A time as ISO 8601 text: a datetime, or text the database rendered so
    already (a tree's times: see controlplane.store.sqltime)."""

    def _serialize(self, value, attr, obj, **kwargs):
        return value if isinstance(value, str) else super()._serialize(value, attr, obj, **kwargs)


class WaitingForSchema(Schema):
    kind = fields.String(metadata={"description": "delay (a delayed call), sleep, or event"})
    until = IsoTime(allow_none=True, metadata={
        "description": "when it ends at the latest (an event's timeout; null: none)"})
    key = fields.String(allow_none=True, metadata={"description": "an event's key"})


def _waiting_for():
    return fields.Nested(WaitingForSchema, allow_none=True, metadata={
        "description": "while a pending call waits: what for (a time, an event), until when"})


def _not_before():
    return IsoTime(
        allow_none=True, metadata={"description": "a delayed call: no worker starts it before then"}
    )


class CallSummarySchema(Schema):
    id = fields.String()
    stage = fields.String()
    status = fields.String()
    worker = fields.String(allow_none=True)


class AttemptSchema(Schema):
    attempt = fields.Integer()
    status = fields.String(metadata={"description": "lost (its worker or process was gone) or failed"})
    worker = fields.String(allow_none=True)
    run_mode = fields.String(allow_none=True)
    error = fields.Nested(CallErrorSchema, allow_none=True)
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime()


class CallSchema(Schema):
    id = fields.String()
    stage = fields.String()
    status = fields.String()
    arguments = fields.Nested(ArgumentsSchema)
    result = fields.Raw(allow_none=True)
    error = fields.Nested(CallErrorSchema, allow_none=True)
    output = fields.String(allow_none=True)
    parent_stage_run_id = fields.String(allow_none=True)
    root_stage_run_id = fields.String()
    workflow_run_id = fields.String(allow_none=True)
    position = fields.Integer(allow_none=True)
    parent_attempt = fields.Integer(allow_none=True)
    queue = fields.String()
    repo_name = fields.String(allow_none=True)
    commit_hash = fields.String(allow_none=True)
    worker = fields.String(allow_none=True)
    run_mode = fields.String(
        allow_none=True, metadata={"description": "dispatched, inline, isolated or local"}
    )
    waiting_on = fields.List(
        fields.Nested(CallSummarySchema),
        metadata={"description": "while the call is running: the unfinished calls it waits on"},
    )
    waiting_for = _waiting_for()
    attempt = fields.Integer()
    max_attempts = fields.Integer()
    attempts = fields.List(
        fields.Nested(AttemptSchema),
        metadata={"description": "the earlier attempts, each with its worker and error"},
    )
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    lease_expires_at = fields.DateTime(
        allow_none=True, metadata={"description": "while running: when its worker's lease ends"}
    )
    not_before = _not_before()
    priority = fields.Integer(metadata={"description": "higher starts first (default 0)"})
    gate = fields.String(allow_none=True, metadata={
        "description": "the limit the call goes through: its stage, and its key's value as JSON "
                       "(null: its stage has no limit)"})
    waited_seconds = fields.Float(
        allow_none=True, dump_only=True,
        metadata={"description": "from its creation to the start of its latest attempt"},
    )
    ran_seconds = fields.Float(
        allow_none=True, dump_only=True,
        metadata={"description": "how long its latest attempt ran, once it finished"},
    )


class AttemptBarSchema(Schema):
    attempt = fields.Integer()
    status = fields.String(metadata={"description": "lost or failed"})
    worker = fields.String(allow_none=True)
    started_at = IsoTime(allow_none=True)
    finished_at = IsoTime(allow_none=True)


class TreeNodeSchema(Schema):
    id = fields.String()
    parent_stage_run_id = fields.String(allow_none=True)
    position = fields.Integer(allow_none=True)
    depth = fields.Integer(metadata={"description": "0 for the call the tree was asked for"})
    stage = fields.String()
    status = fields.String()
    attempt = fields.Integer()
    worker = fields.String(allow_none=True)
    run_mode = fields.String(allow_none=True)
    created_at = IsoTime()
    started_at = IsoTime(allow_none=True)
    finished_at = IsoTime(allow_none=True)
    duration_ms = fields.Float(allow_none=True)
    error = fields.String(allow_none=True, metadata={"description": "type: first line of message"})
    arguments = fields.String(allow_none=True, metadata={
        "description": 'the arguments as a call writes them, "(1, \"x\", key=2)", shortened'})
    earlier_attempts = fields.List(fields.Nested(AttemptBarSchema), metadata={
        "description": "the attempts before this one, first first (each its own timeline bar)"})
    not_before = _not_before()
    waiting_for = _waiting_for()


class TreeSchema(Schema):
    call_id = fields.String()
    calls = fields.List(
        fields.Nested(TreeNodeSchema),
        metadata={"description": "the call and every call under it, depth-first, parents first"},
    )


class CancelledSchema(Schema):
    call = fields.Nested(CallSchema)
    cancelled = fields.List(
        fields.String(), metadata={"description": "the calls this request cancelled: the call and "
                                                  "every unfinished call under it"}
    )


class CallBatchSchema(Schema):
    calls = fields.List(fields.Nested(CallSchema))


class CallCreatedSchema(Schema):
    """A call just created, without what the request already said (its arguments):
    a batch of them is answered at a fraction of the cost of full records."""

    id = fields.String()
    stage = fields.String()
    status = fields.String()
    queue = fields.String()
    parent_stage_run_id = fields.String(allow_none=True)
    root_stage_run_id = fields.String()
    position = fields.Integer(allow_none=True)
    worker = fields.String(allow_none=True)
    run_mode = fields.String(allow_none=True)
    created_at = fields.DateTime()
    not_before = _not_before()


class CallCreatedBatchSchema(Schema):
    calls = fields.List(fields.Nested(CallCreatedSchema))
