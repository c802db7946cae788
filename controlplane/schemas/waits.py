"""The shapes of waiting without a worker: a running call's sleep or wait for an
event (a worker asks), its answer, and an event sent to a key."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from controlplane.schemas.requests import (
    ID_LIMIT,
    INT_LIMIT,
    MAX_DELAY_SECONDS,
    VALID_ATTEMPT,
    VALID_ID,
    VALID_NAME,
    Text,
    TypedSchema,
    Whole,
)
from sdk.waits import EVENT_KEY, EVENT_KEY_RULE, EventWaitRequest, SleepRequest

VALID_EVENT_KEY = Whole(f"^{EVENT_KEY.pattern}$", error=f"must be {EVENT_KEY_RULE}")


def _seconds(**kwargs) -> fields.Float:
    return fields.Float(allow_nan=False, validate=validate.Range(min=0, max=MAX_DELAY_SECONDS),
                        **kwargs)


class _StepSchema(TypedSchema):
    worker = Text(required=True, validate=VALID_NAME)
    attempt = fields.Integer(required=True, validate=VALID_ATTEMPT)
    position = fields.Integer(required=True, validate=validate.Range(min=0, max=INT_LIMIT))
    chain = fields.List(
        fields.Tuple((fields.String(validate=VALID_ID), fields.Integer(validate=VALID_ATTEMPT))),
        required=True, validate=validate.Length(min=1, max=ID_LIMIT),
        metadata={"description": "[id, attempt] of the calls running in the slot, outermost "
                                 "first, the waiting call last"},
    )


class SleepSchema(_StepSchema):
    RECORD = SleepRequest

    seconds = _seconds(required=True)


class EventWaitSchema(_StepSchema):
    RECORD = EventWaitRequest

    key = fields.String(required=True, validate=VALID_EVENT_KEY)
    timeout = _seconds(allow_none=True, load_default=None,
                       metadata={"description": "seconds at most; null: no limit"})


class WaitAnswerSchema(Schema):
    done = fields.Boolean(metadata={"description": "the wait is over: this run goes on"})
    wake_at = fields.String(allow_none=True, metadata={
        "description": "when not done: when the wait ends at the latest (ISO 8601)"})
    payload = fields.Raw(allow_none=True, metadata={"description": "the event's payload"})
    timed_out = fields.Boolean(metadata={"description": "no event came within the timeout"})
    cancelled = fields.Boolean(metadata={"description": "the wait was cancelled"})


class EventSentSchema(Schema):
    key = fields.String()
    delivered_to = fields.String(allow_none=True, metadata={
        "description": "the wait (a callplane.event call) the event was delivered to"})
    kept_until = fields.DateTime(allow_none=True, metadata={
        "description": "nobody waited: kept for the first call that waits, until then"})


class ReasonSchema(Schema):
    kind = fields.String(metadata={"description": (
        "finished, queued, limit (held back by its stage's concurrency limit), rate (held "
        "back by its stage's rate), unqueued (Redis lost it; recovery queues it again), "
        "delay, sleep, "
        "event, retrying (a backoff before its next attempt), running, lost (its worker "
        "stopped renewing its lease) or calls (running, and waiting on calls)")})
    text = fields.String(metadata={"description": "the reason, in a line"})
    until = fields.DateTime(metadata={"description": "when the wait ends at the latest"})
    since = fields.DateTime(metadata={"description": "running: since when"})
    worker = fields.String()
    queue = fields.String()
    ahead = fields.Integer(metadata={"description": "queued: calls ahead of it on its queue"})
    key = fields.String(metadata={"description": "an event's key"})
    holders = fields.List(fields.String(), metadata={
        "description": "limit: the calls holding the limit's slots"})


class WaitNodeSchema(Schema):
    id = fields.String(metadata={"description": "the call (of a group: its first)"})
    stage = fields.String()
    status = fields.String()
    reason = fields.Nested(ReasonSchema)
    count = fields.Integer(metadata={"description": "how many calls of this stage and status"})
    ids = fields.List(fields.String(), metadata={"description": "a group's first ids"})
    below = fields.List(fields.Nested(lambda: WaitNodeSchema()), metadata={
        "description": "what it waits on: its unfinished calls, by stage and status"})
