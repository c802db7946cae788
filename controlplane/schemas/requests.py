"""The REST API's request shapes: validation fails before a view runs."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import msgspec
from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from controlplane.store.reads import CallQuery, RunQuery
from sdk.options import MAX_DELAY_SECONDS, PRIORITY_BOUND
from sdk.records import CallRequest, FinishRequest
from sdk.wire import RunMode, Status

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
#: The largest integer the database's INTEGER columns hold (PostgreSQL's are 32-bit).
INT_LIMIT = 2**31 - 1
#: The longest stage name: its queue name, "<repo_name>@<12 of commit_hash>.<stage>",
#: must fit the 200 characters of stage_runs.queue.
STAGE_LIMIT = 200 - len("@.") - 64 - 12
#: A hard bound on `?wait=`; the server also holds no request past its own max_wait.
WAIT_LIMIT_SECONDS = 3600
#: Calls one batch create may hold, and ids one wait may name.
BATCH_LIMIT = 1000
ID_LIMIT = 10000


class Whole(validate.Regexp):
    """A pattern the whole value must match, as the API document says: re.match
    lets `$` match before a final newline, so "abc\\n" passed as an id."""

    def __call__(self, value):
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


#: A stage is a function's name: word characters (any script), '.', '@' and '-'.
#: Nothing a page could take for markup (rq-dashboard shows it unescaped).
STAGE_PATTERN = rf"^[\w.@-]{{1,{STAGE_LIMIT}}}$"
VERSION_PATTERN = r"^[A-Za-z0-9._/-]{1,64}$"
#: The longest name (a worker's, an idempotency key).
NAME_LIMIT = 200
#: Attempts a call may be given.
MAX_ATTEMPTS = 100
#: What a due time without its UTC offset is told.
NEEDS_OFFSET = ("give not_before with its UTC offset, e.g. 2026-12-03T15:00:00+00:00: "
                "a time without one is a different moment in every zone")

VALID_ID = Whole(ID_PATTERN, error="must be 1-64 letters, digits, '_' or '-'")
VALID_NAME = validate.Length(min=1, max=NAME_LIMIT)
VALID_STAGE = Whole(STAGE_PATTERN,
                    error=f"must be 1-{STAGE_LIMIT} letters, digits, '_', '.', '@' or '-'")
VALID_ATTEMPT = validate.Range(min=1, max=INT_LIMIT)
VALID_VERSION = Whole(VERSION_PATTERN, error="must be 1-64 of A-Z a-z 0-9 . _ / -")


class Text(fields.String):
    """A string the database can store: PostgreSQL refuses NUL in text, and a lone
    surrogate (half a UTF-16 pair, which JSON's \\ud800 escape allows) is not UTF-8."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if _UNSTORABLE.search(text):
            raise ValidationError(
                "must not contain NUL (\\u0000) or unpaired surrogates (\\ud800-\\udfff)"
            )
        return text


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def in_utc_range(value: datetime | None) -> bool:
    """Times are kept in UTC: one with an offset must still be a time there."""
    if value is None or value.tzinfo is None:
        return True
    try:
        value.astimezone(timezone.utc)
    except OverflowError:
        return False
    return True


def _in_utc_range(value) -> None:
    if not in_utc_range(value):
        raise ValidationError("must be between 0001-01-01 and 9999-12-31 in UTC")


class TypedSchema(Schema):
    """A schema that loads into a typed record (`RECORD`): the views get records."""

    RECORD: type

    @post_load
    def _typed(self, data, **_kwargs):
        return msgspec.convert(data, self.RECORD)


class ArgumentsSchema(Schema):
    args = fields.List(fields.Raw(allow_none=True), load_default=list)
    kwargs = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True), load_default=dict)


class CallErrorSchema(Schema):
    type = fields.String(required=True, validate=VALID_NAME)
    message = fields.String(required=True)
    traceback = fields.String(load_default="")


class CallCreateSchema(TypedSchema):
    RECORD = CallRequest

    id = fields.String(validate=VALID_ID, metadata={"description": "chosen by the caller so a retry is safe"})
    idempotency_key = Text(
        validate=VALID_NAME,
        metadata={"description": "creating a call with a key that was used before returns that "
                                 "call (also the Idempotency-Key header)"},
    )
    stage = Text(required=True, validate=VALID_STAGE)
    arguments = fields.Nested(ArgumentsSchema, load_default=lambda: {"args": [], "kwargs": {}})
    parent_stage_run_id = fields.String(allow_none=True, validate=VALID_ID)
    position = fields.Integer(allow_none=True, validate=validate.Range(min=0, max=INT_LIMIT))
    max_attempts = fields.Integer(
        validate=validate.Range(min=1, max=MAX_ATTEMPTS),
        metadata={"description": "attempts the call may have when it fails (1 + its retries)"},
    )
    parent_attempt = fields.Integer(
        allow_none=True,
        validate=VALID_ATTEMPT,
        metadata={"description": "the parent's attempt that makes this call: a later attempt "
                                 "of the parent runs a failed child at the same position again"},
    )
    workflow_run_id = fields.String(allow_none=True, validate=VALID_ID)
    repo_name = fields.String(allow_none=True, validate=VALID_VERSION)
    commit_hash = fields.String(allow_none=True, validate=VALID_VERSION)
    run_mode = fields.String(
        allow_none=True,
        validate=validate.OneOf([RunMode.INLINE.value, RunMode.LOCAL.value]),
        metadata={"description": "the caller runs this call itself, now, on `worker`: "
                  "it is recorded as running and never queued"},
    )
    worker = Text(allow_none=True, validate=VALID_NAME)
    not_before = fields.AwareDateTime(
        allow_none=True, error_messages={"invalid_awareness": NEEDS_OFFSET}, validate=_in_utc_range,
        metadata={"description": "no worker starts the call before this time (ISO 8601 with "
                                 "its UTC offset); a time past starts it at once"},
    )
    delay_seconds = fields.Float(
        allow_none=True, allow_nan=False, validate=validate.Range(min=0, max=MAX_DELAY_SECONDS),
        metadata={"description": "no worker starts the call before this many seconds after "
                                 "its creation (instead of not_before)"},
    )
    priority = fields.Integer(
        validate=validate.Range(min=-PRIORITY_BOUND, max=PRIORITY_BOUND),
        metadata={"description": "of the calls a worker may take, those of a higher priority "
                                 "start first (default 0; equal ones in order)"},
    )

    @validates_schema
    def _fields_agree(self, data, **_kwargs):
        broken = disagreement(data.get)
        if broken is not None:
            raise ValidationError(broken[1], broken[0])


def disagreement(given: Callable[[str], Any]) -> tuple[str, str] | None:
    """Which fields of a create contradict each other, if any: (field, what to fix).
    `given(name)` is a field's value, None (or another false value) when absent."""
    if given("id") and given("idempotency_key"):
        return "idempotency_key", "give id or idempotency_key, not both: either names the call"
    if bool(given("repo_name")) != bool(given("commit_hash")):
        return "commit_hash", "give repo_name and commit_hash together (a code version), or neither"
    for name in ("position", "parent_attempt"):
        if given(name) is not None and not given("parent_stage_run_id"):
            return name, f"{name} is only meaningful with parent_stage_run_id"
    if bool(given("run_mode")) != bool(given("worker")):
        return "worker", ("give run_mode and worker together (the caller runs the call itself), "
                          "or neither")
    delayed = [name for name in ("not_before", "delay_seconds") if given(name) is not None]
    if len(delayed) == 2:
        return "delay_seconds", "give not_before or delay_seconds, not both: either says when"
    if delayed and given("run_mode"):
        return delayed[0], ("a call its caller runs itself (run_mode) runs now: leave out "
                            f"{delayed[0]}, or run_mode and worker")
    return None


class CreateHeadersSchema(Schema):
    idempotency_key = Text(
        data_key="Idempotency-Key",
        validate=validate.Length(min=1, max=200),
        metadata={"description": "the body's idempotency_key, as a header"},
    )


class CallBatchCreateSchema(Schema):
    calls = fields.List(
        fields.Nested(CallCreateSchema),
        required=True,
        validate=validate.Length(min=1, max=BATCH_LIMIT),
        metadata={"description": f"1 to {BATCH_LIMIT} calls, created in one transaction"},
    )


class FinishedQuerySchema(Schema):
    ids = fields.List(
        fields.String(validate=VALID_ID), required=True, validate=validate.Length(min=1, max=ID_LIMIT)
    )
    wait = fields.Float(
        load_default=0,
        validate=validate.Range(min=0, max=WAIT_LIMIT_SECONDS),
        metadata={"description": "hold the request up to this many seconds until one has finished"},
    )
    every = fields.Boolean(
        load_default=False, metadata={"description": "hold until all have finished, not just one"}
    )


class WaitSchema(Schema):
    wait = fields.Float(
        validate=validate.Range(min=0, max=WAIT_LIMIT_SECONDS),
        metadata={"description": "hold the request up to this many seconds until the call finishes"},
    )


class CallListQuerySchema(TypedSchema):
    RECORD = CallQuery

    status = fields.String(validate=validate.OneOf([s.value for s in Status]))
    stage = Text(validate=VALID_NAME)
    parent_stage_run_id = fields.String(validate=VALID_ID)


class RunListQuerySchema(TypedSchema):
    RECORD = RunQuery

    status = fields.String(validate=validate.OneOf([s.value for s in Status]))
    stage = Text(validate=VALID_NAME)
    since = fields.DateTime(
        validate=_in_utc_range, metadata={"description": "created at or after (ISO 8601)"}
    )
    until = fields.DateTime(
        validate=_in_utc_range, metadata={"description": "created before (ISO 8601)"}
    )
    repo_name = fields.String(validate=VALID_VERSION)
    commit_hash = fields.String(validate=VALID_VERSION)


class StartSchema(Schema):
    worker = Text(required=True, validate=VALID_NAME)


class FinishSchema(TypedSchema):
    RECORD = FinishRequest

    status = fields.String(
        required=True, validate=validate.OneOf([Status.SUCCEEDED.value, Status.FAILED.value])
    )
    result = fields.Raw(allow_none=True, load_default=None)
    error = fields.Nested(CallErrorSchema, allow_none=True, load_default=None)
    output = Text(load_default="")
    worker = Text(
        validate=VALID_NAME, metadata={"description": "the worker finishing it: refused if not its holder"}
    )
    attempt = fields.Integer(
        validate=VALID_ATTEMPT,
        metadata={"description": "the attempt it finishes: refused (409) if no longer current"},
    )

    @validates_schema
    def _error_matches_status(self, data, **_kwargs):
        if data["status"] == Status.FAILED.value and not data.get("error"):
            raise ValidationError("a failed call needs an error {type, message, traceback}", "error")
        if data["status"] == Status.SUCCEEDED.value and data.get("error"):
            raise ValidationError("a succeeded call has no error", "error")
