"""The schedules API's shapes: what a worker registers, and what a schedule says."""

from __future__ import annotations

import msgspec
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from controlplane.schemas.requests import (
    MAX_ATTEMPTS,
    VALID_STAGE,
    VALID_VERSION,
    ArgumentsSchema,
    Text,
    TypedSchema,
)
from sdk.schedules import ScheduleDefinition

#: Schedules one registration may hold.
REGISTRATION_LIMIT = 1000


class ScheduleDefinitionSchema(TypedSchema):
    """A schedule as a workflow file says it (sdk.schedules.ScheduleDefinition)."""

    RECORD = ScheduleDefinition

    name = Text(required=True, validate=validate.Length(min=1, max=200))
    stage = Text(required=True, validate=VALID_STAGE)
    arguments = fields.Nested(ArgumentsSchema, load_default=lambda: {"args": [], "kwargs": {}})
    cron = Text(allow_none=True, validate=validate.Length(max=200),
                metadata={"description": "five fields, in `timezone` (or `every_seconds`)"})
    every_seconds = fields.Float(allow_none=True, allow_nan=False)
    timezone = Text(load_default="UTC", validate=validate.Length(max=64),
                    metadata={"description": "an IANA name, e.g. Europe/Paris"})
    catch_up = fields.String(load_default="once", validate=validate.OneOf(["once", "skip"]),
                             metadata={"description": "fires missed while no control plane ran: "
                                                      "make one of them, or skip them"})
    max_attempts = fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_ATTEMPTS))

    @validates_schema
    def _makes_sense(self, data, **_kwargs):
        try:
            msgspec.convert(data, ScheduleDefinition).check()
        except (TypeError, ValueError) as exc:
            raise ValidationError(str(exc)) from None


class ScheduleRegistrationSchema(Schema):
    schedules = fields.List(fields.Nested(ScheduleDefinitionSchema()), required=True,
                            validate=validate.Length(max=REGISTRATION_LIMIT))
    repo_name = fields.String(allow_none=True, load_default=None, validate=VALID_VERSION)
    commit_hash = fields.String(allow_none=True, load_default=None, validate=VALID_VERSION)

    @validates_schema
    def _one_version(self, data, **_kwargs):
        if bool(data.get("repo_name")) != bool(data.get("commit_hash")):
            raise ValidationError("give repo_name and commit_hash together (the code version "
                                  "the schedules' calls run on), or neither", "commit_hash")


class RegisteredSchema(Schema):
    registered = fields.List(fields.String(), metadata={"description": "the schedules' names"})


class ScheduleSchema(Schema):
    name = fields.String()
    stage = fields.String()
    arguments = fields.Nested(ArgumentsSchema)
    cron = fields.String(allow_none=True)
    every_seconds = fields.Float(allow_none=True)
    timezone = fields.String()
    catch_up = fields.String()
    max_attempts = fields.Integer()
    repo_name = fields.String(allow_none=True)
    commit_hash = fields.String(allow_none=True)
    paused = fields.Boolean()
    active = fields.Boolean(metadata={"description": "a worker registered it within the last "
                                                     "few leases; one removed from its file lapses"})
    next_fire_at = fields.DateTime(allow_none=True)
    last_fire_at = fields.DateTime(allow_none=True)
    last_call_id = fields.String(allow_none=True)
    last_status = fields.String(allow_none=True, metadata={"description": "of its last call"})
    last_late_seconds = fields.Float(allow_none=True, metadata={
        "description": "how late its last fire was made, when it was late"})
    registered_until = fields.DateTime(allow_none=True)
