"""The limits API's shapes: what a worker registers, and what a limit holds now."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from controlplane.schemas.requests import VALID_STAGE, Text, TypedSchema
from sdk.limits import MAX_CONCURRENCY, StageLimit

#: Limits one registration may hold.
REGISTRATION_LIMIT = 1000


class StageLimitSchema(TypedSchema):
    """A stage's limits as its workflow file declares them (sdk.limits.StageLimit)."""

    RECORD = StageLimit

    stage = Text(required=True, validate=VALID_STAGE)
    concurrency = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=MAX_CONCURRENCY))
    rate_count = fields.Integer(allow_none=True, validate=validate.Range(min=1))
    rate_seconds = fields.Float(allow_none=True, allow_nan=False, validate=validate.Range(min=1))
    key = Text(allow_none=True, validate=validate.Length(min=1, max=200))
    key_position = fields.Integer(allow_none=True, validate=validate.Range(min=0, max=1000))
    key_default = fields.Raw(allow_none=True)

    @validates_schema
    def _makes_sense(self, data, **_kwargs):
        if data.get("concurrency") is None and data.get("rate_count") is None:
            raise ValidationError("a limit gives concurrency, rate_count or both")
        if (data.get("rate_count") is None) != (data.get("rate_seconds") is None):
            raise ValidationError("give rate_count and rate_seconds together", "rate_seconds")
        default = data.get("key_default")
        if default is not None and (not isinstance(default, (str, int)) or isinstance(default, bool)):
            raise ValidationError("a key's default is a string or an integer", "key_default")


class LimitRegistrationSchema(Schema):
    limits = fields.List(fields.Nested(StageLimitSchema()), required=True,
                         validate=validate.Length(max=REGISTRATION_LIMIT))


class LimitsRegisteredSchema(Schema):
    registered = fields.List(fields.String(), metadata={"description": "the limited stages"})


class GateCountSchema(Schema):
    key = fields.String(allow_none=True, metadata={
        "description": "the key argument's value, as JSON (null: the stage's one limit)"})
    running = fields.Integer()
    waiting = fields.Integer(metadata={"description": "queued, or held back by the limit"})


class LimitSchema(Schema):
    stage = fields.String()
    limit = fields.String(metadata={"description": "the limits as a person reads them"})
    concurrency = fields.Integer(allow_none=True)
    rate = fields.String(allow_none=True, metadata={"description": "starts per period, e.g. 5/1s"})
    key = fields.String(allow_none=True, metadata={"description": "the argument counted by"})
    gates = fields.List(fields.Nested(GateCountSchema), metadata={
        "description": "each key value with unfinished calls"})
