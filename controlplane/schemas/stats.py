"""The shape of `GET /api/stats` (controlplane.metrics.Stats)."""

from __future__ import annotations

from marshmallow import Schema, fields


class QueueBacklogSchema(Schema):
    queue = fields.String()
    depth = fields.Integer(metadata={"description": "calls on the queue"})
    oldest_age_seconds = fields.Float(allow_none=True, metadata={
        "description": "how long the call at the queue's head (the next to start) has waited"})


class MinuteSchema(Schema):
    minute = fields.DateTime()
    finished = fields.Integer()
    failed = fields.Integer()
    mean_wait_seconds = fields.Float(allow_none=True)
    mean_run_seconds = fields.Float(allow_none=True)
    p50_seconds = fields.Float(allow_none=True, metadata={
        "description": "creation to finish, the upper bound of the histogram bucket"})
    p95_seconds = fields.Float(allow_none=True)


class StatsSchema(Schema):
    queues = fields.List(fields.Nested(QueueBacklogSchema()))
    backlog = fields.Integer(metadata={"description": "calls on all queues: what to scale "
                                                      "workers by"})
    delayed = fields.Integer(metadata={"description": "calls delayed or asleep, not yet due"})
    held_by_limits = fields.Integer()
    workers_alive = fields.Integer()
    recorder_unread = fields.Integer(metadata={"description": "workers' reports no recorder "
                                                              "has read yet"})
    recorder_unrecorded = fields.Integer()
    last_hour = fields.List(fields.Nested(MinuteSchema()), metadata={
        "description": "one entry per minute, oldest first"})
