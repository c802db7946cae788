"""Create bodies checked by msgspec first: the create endpoints' fast path.

The marshmallow schemas (controlplane.schemas) define the API and word every
error, but loading a batch of 500 calls through them was more than half of the
request's CPU. msgspec checks the same rules in a fraction of that, and is as
strict or stricter: a body it takes is one the schemas load to the same record
(tests/unit/test_bodies.py holds the two together on generated bodies), and a
body it does not take goes to the schemas, which load it or say what is wrong.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import flask
import msgspec
from msgspec import UNSET, Meta, UnsetType

from controlplane.api.parsing import JSONBodyParser
from controlplane.schemas import (
    BATCH_LIMIT,
    ID_PATTERN,
    INT_LIMIT,
    MAX_ATTEMPTS,
    MAX_DELAY_SECONDS,
    NAME_LIMIT,
    STAGE_PATTERN,
    VERSION_PATTERN,
    CallBatchCreateSchema,
    CallCreateSchema,
    disagreement,
    in_utc_range,
)
from sdk.options import PRIORITY_BOUND
from sdk.records import Arguments, CallRequest
from sdk.wire import RunMode, json_problem


def _whole(pattern: str) -> str:
    """A schema's ^...$ pattern for msgspec, which searches: `$` would also match
    before a final newline, as in the schemas' own `Whole`."""
    return pattern.removesuffix("$") + r"\Z"


CallId = Annotated[str, Meta(pattern=_whole(ID_PATTERN))]
Version = Annotated[str, Meta(pattern=_whole(VERSION_PATTERN))]
#: Text the database can store (see schemas.Text): no NUL, no unpaired surrogate.
Name = Annotated[str, Meta(min_length=1, max_length=NAME_LIMIT, pattern=r"^[^\x00\ud800-\udfff]*\Z")]
Position = Annotated[int, Meta(ge=0, le=INT_LIMIT)]
Attempt = Annotated[int, Meta(ge=1, le=INT_LIMIT)]


class ArgumentsBody(msgspec.Struct, forbid_unknown_fields=True):
    args: list[Any] = msgspec.field(default_factory=list)
    kwargs: dict[str, Any] = msgspec.field(default_factory=dict)


class CreateBody(msgspec.Struct, forbid_unknown_fields=True):
    """CallCreateSchema's fields and rules; a field that may not be null is UNSET when absent."""

    stage: Annotated[str, Meta(pattern=_whole(STAGE_PATTERN))]
    id: CallId | UnsetType = UNSET
    idempotency_key: Name | UnsetType = UNSET
    arguments: ArgumentsBody | UnsetType = UNSET
    max_attempts: Annotated[int, Meta(ge=1, le=MAX_ATTEMPTS)] | UnsetType = UNSET
    parent_stage_run_id: CallId | None = None
    position: Position | None = None
    parent_attempt: Attempt | None = None
    workflow_run_id: CallId | None = None
    repo_name: Version | None = None
    commit_hash: Version | None = None
    run_mode: RunMode | None = None
    worker: Name | None = None
    not_before: Annotated[datetime, Meta(tz=True)] | None = None
    delay_seconds: Annotated[float, Meta(ge=0, le=MAX_DELAY_SECONDS)] | None = None
    priority: Annotated[int, Meta(ge=-PRIORITY_BOUND, le=PRIORITY_BOUND)] | UnsetType = UNSET

    def _given(self, name: str) -> Any:
        value = getattr(self, name)
        return None if value is UNSET else value

    def request(self) -> CallRequest | None:
        """The request the schema loads this body to; None if the schema should say
        what is wrong with it (fields that disagree, JSON the control plane cannot keep)."""
        if self.run_mode not in (None, RunMode.INLINE, RunMode.LOCAL):
            return None
        if disagreement(self._given) is not None or not in_utc_range(self.not_before):
            return None
        arguments = self.arguments or ArgumentsBody()
        if json_problem([arguments.args, arguments.kwargs]) is not None:
            return None
        fields = {name: getattr(self, name) for name in self.__struct_fields__
                  if getattr(self, name) is not UNSET}
        fields["arguments"] = Arguments(arguments.args, arguments.kwargs)
        return CallRequest(**fields)


class BatchBody(msgspec.Struct, forbid_unknown_fields=True):
    calls: Annotated[list[CreateBody], Meta(min_length=1, max_length=BATCH_LIMIT)]


_CREATE = msgspec.json.Decoder(CreateBody)
_BATCH = msgspec.json.Decoder(BatchBody)


def create_request(body: bytes) -> CallRequest | None:
    """POST /api/call's body as the request CallCreateSchema loads it to, or None."""
    try:
        return _CREATE.decode(body).request()
    except (msgspec.DecodeError, RecursionError):
        return None


def batch_requests(body: bytes) -> dict[str, list[CallRequest]] | None:
    """POST /api/calls's body as CallBatchCreateSchema loads it, or None."""
    try:
        requests = [call.request() for call in _BATCH.decode(body).calls]
    except (msgspec.DecodeError, RecursionError):
        return None
    if any(request is None for request in requests):
        return None
    return {"calls": requests}


#: The schemas whose bodies have a fast path, and that path.
FAST_BODIES = {CallCreateSchema: create_request, CallBatchCreateSchema: batch_requests}


class FastBodyParser(JSONBodyParser):
    """The API's parser, taking a create body through its fast path when it can."""

    def parse(self, argmap, req=None, *, location=None, **kwargs):
        fast = FAST_BODIES.get(type(argmap)) if location == "json" else None
        request = req or flask.request
        if fast is not None and request.is_json:
            parsed = fast(request.get_data(cache=True))
            if parsed is not None:
                return parsed
        return super().parse(argmap, req, location=location, **kwargs)
