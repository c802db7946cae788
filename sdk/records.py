"""The typed records that cross process boundaries: a call's request, the job a worker
runs, an attempt's outcome, an error, and a call as the audit table holds it.

They are msgspec Structs: built about ten times faster than dataclasses, and
converted from parsed JSON with errors that name the field. JSON itself is read
and written with the standard library (`sdk.wire.dumps`), as everywhere else in
callplane, so a value means the same in every process.
"""

from __future__ import annotations

import builtins
import json
import traceback
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import msgspec

from sdk.errors import CallplaneError, DecodeError, StageFailed
from sdk.waits import WaitingFor
from sdk.wire import RunMode, Status, dumps, queue_name

#: The dotted name stored as an RQ job's function. A stock RQ worker would import
#: and call it; callplane's worker refuses any job whose function is not this one.
ENTRY_POINT = "workers.executor.run_call"

T = TypeVar("T")


def plain(record: Any) -> Any:
    """A record as plain Python values for JSON. What a stage returned or was given
    was checked with `json.dumps`, which takes subclasses of int, float and str
    (numpy's float64 is a float); msgspec does not, so they become their base type.
    Datetimes stay datetimes (see to_json)."""
    return msgspec.to_builtins(record, builtin_types=(datetime,), enc_hook=_base_value)


def _base_value(value: Any) -> Any:
    for base in (int, float, str):
        if isinstance(value, base):
            return base(value)
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def to_json(record: Any) -> str:
    """A record as callplane's JSON; times as ISO 8601 with their offset (+00:00),
    which `datetime.fromisoformat` reads on every Python callplane supports."""
    return json_text(plain(record))


def json_text(value: Any) -> str:
    """Plain values (see plain) as callplane's JSON."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False, default=_time_text)


def _time_text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def convert(value: Any, kind: type[T], what: str) -> T:
    """Parsed JSON as a record; DecodeError naming `what` and the field that is wrong."""
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        raise DecodeError(f"{what} is not valid: {exc}") from None


def from_json(raw: str | bytes, kind: type[T], what: str) -> T:
    try:
        value = json.loads(raw)
    except (TypeError, ValueError, RecursionError) as exc:
        raise DecodeError(f"{what} is not JSON: {exc}") from None
    return convert(value, kind, what)


def type_name(kind: type[BaseException]) -> str:
    """The name an exception class is recorded under: a builtin's own name, else
    module.qualname."""
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


class ErrorRecord(msgspec.Struct, frozen=True, gc=False):
    """An error as the audit record keeps it (an older or hand-written record that
    lacks a part reads as it always did: an Exception with no message)."""

    type: str = "Exception"
    message: str = ""
    traceback: str = ""

    @classmethod
    def of(cls, exc: BaseException) -> ErrorRecord:
        """A raised exception; callplane's own under their recorded names. The
        failure of a call it made and let through is that failure, as it was
        recorded, with one line more for the call it came through: at the top the
        root cause's traceback shows once, then a line per call, as Python prints
        a chained exception."""
        if isinstance(exc, StageFailed):
            return exc.error.through(exc.stage, exc.call_id, exc.worker)
        name = exc.recorded_name() if isinstance(exc, CallplaneError) else type_name(exc.__class__)
        return cls(name, str(exc), "".join(traceback.format_exception(exc)))

    def through(self, stage: str, call_id: str, worker: str | None) -> ErrorRecord:
        """This error, passed up through a call of `stage`."""
        on = f", worker {worker}" if worker else ""
        line = f"  via stage {stage!r} (call {call_id}{on})"
        return msgspec.structs.replace(self, traceback=f"{self.traceback.rstrip()}\n{line}")

    @classmethod
    def system(cls, kind: builtins.type[CallplaneError], message: str) -> ErrorRecord:
        """An error callplane itself declares (a lost worker, a timeout), with no traceback."""
        return cls(kind.recorded_name(), message)


class Arguments(msgspec.Struct, frozen=True, gc=False):
    """A call's arguments, as `{"args": [...], "kwargs": {...}}` in the table and the API."""

    args: list[Any] = msgspec.field(default_factory=list)
    kwargs: dict[str, Any] = msgspec.field(default_factory=dict)


class CallRequest(msgspec.Struct, frozen=True, omit_defaults=True):
    """What creating a call says (the body of POST /api/call); absent fields are left out."""

    stage: str
    arguments: Arguments = msgspec.field(default_factory=Arguments)
    id: str | None = None
    idempotency_key: str | None = None
    parent_stage_run_id: str | None = None
    position: int | None = None
    parent_attempt: int | None = None
    workflow_run_id: str | None = None
    repo_name: str | None = None
    commit_hash: str | None = None
    max_attempts: int = 1
    #: With `worker`: the caller runs the call itself, now (recorded as running, never queued).
    run_mode: RunMode | None = None
    worker: str | None = None
    #: No worker starts the call before this time (with its UTC offset)...
    not_before: datetime | None = None
    #: ...or before this many seconds after the control plane creates it.
    delay_seconds: float | None = None
    #: Of the calls a worker may take, higher priorities start first.
    priority: int = 0

    @property
    def delayed(self) -> bool:
        return self.not_before is not None or self.delay_seconds is not None

    def due(self, now: datetime) -> datetime | None:
        """When the call may start, if the request delays it, in UTC (as callplane keeps times)."""
        if self.delay_seconds is not None:
            return now + timedelta(seconds=self.delay_seconds)
        return self.not_before.astimezone(timezone.utc) if self.not_before else None

    @property
    def call_id(self) -> str:
        """Its id: every request the SDK makes names one (only an API client may
        leave it to the control plane)."""
        if self.id is None:
            raise ValueError(f"this request of {self.stage!r} names no call id")
        return self.id


class FinishRequest(msgspec.Struct, frozen=True, omit_defaults=True):
    """How a running call ended, as a finish over HTTP says (POST /api/call/<id>/finish).
    Naming the worker and attempt fences it: refused unless that attempt is current."""

    status: Status
    result: Any = None
    error: ErrorRecord | None = None
    output: str = ""
    worker: str | None = None
    attempt: int | None = None


class CallMessage(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """What a worker needs to run one attempt of a call; the argument of the RQ job
    (fields at their defaults are left out: a worker of an earlier version reads it)."""

    id: str
    stage: str
    args: list[Any] = msgspec.field(default_factory=list)
    kwargs: dict[str, Any] = msgspec.field(default_factory=dict)
    parent_id: str | None = None
    root_id: str | None = None
    repo_name: str | None = None
    commit_hash: str | None = None
    attempt: int = 1
    #: This attempt ran before and gave its slot back (a durable sleep): it runs
    #: again from the top, and its children made before are found, never made anew.
    resumed: bool = False
    #: The limit it went through (sdk.limits): its worker lets the next call in.
    gate: str | None = None

    @property
    def queue(self) -> str:
        return queue_name(self.stage, self.repo_name, self.commit_hash)

    def encode(self) -> str:
        """The RQ job's `data` field: RQ's JSON serializer layout (func, instance, args, kwargs)."""
        return dumps([ENTRY_POINT, None, [plain(self)], {}])

    @classmethod
    def decode(cls, data: str | bytes) -> CallMessage:
        """A job's data as a message; DecodeError, saying why, for anything else."""
        try:
            func, _instance, args, _kwargs = json.loads(data)
        except (TypeError, ValueError, RecursionError) as exc:
            raise DecodeError(f"job data is not callplane's JSON job layout: {exc}") from None
        if func != ENTRY_POINT:
            raise DecodeError(f"job function {func!r} is not {ENTRY_POINT!r}; refusing to run it")
        if not (isinstance(args, list) and len(args) == 1 and isinstance(args[0], dict)):
            raise DecodeError("job arguments must be one call message object")
        return convert(args[0], cls, "call message")


class Outcome(msgspec.Struct, frozen=True, omit_defaults=True):
    """How an attempt of a call ended, as its worker reports it and a waiter reads it
    (fields at their defaults are left out of its JSON)."""

    id: str
    stage: str
    status: Status
    result: Any = None
    error: ErrorRecord | None = None
    output: str = ""
    worker: str | None = None
    run_mode: RunMode | None = None
    attempt: int = 1
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def succeeded(self) -> bool:
        return self.status is Status.SUCCEEDED


class LocalOutcome(Outcome, frozen=True):
    """An outcome of a local run (`local=True`), which never leaves its process: it
    keeps the exception itself, so a debugger reaches the stage's frame."""

    exception: Any = None


class CallRecord(msgspec.Struct, frozen=True):
    """A call as `stage_runs` holds it and the API answers it. An answer may leave
    fields out (a batch create omits the arguments): they take these defaults."""

    id: str
    stage: str
    status: Status
    arguments: Arguments = msgspec.field(default_factory=Arguments)
    result: Any = None
    error: ErrorRecord | None = None
    output: str | None = None
    parent_stage_run_id: str | None = None
    root_stage_run_id: str | None = None
    workflow_run_id: str | None = None
    position: int | None = None
    parent_attempt: int | None = None
    queue: str = ""
    repo_name: str | None = None
    commit_hash: str | None = None
    worker: str | None = None
    run_mode: RunMode | None = None
    attempt: int = 1
    max_attempts: int = 1
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    lease_expires_at: datetime | None = None
    #: No worker starts it before then (a delayed call).
    not_before: datetime | None = None
    #: The limit it goes through (sdk.limits), if any; higher priorities start first.
    gate: str | None = None
    priority: int = 0

    @property
    def waited_seconds(self) -> float | None:
        """How long it waited, from its creation (or its due time, if later) to the
        start of its latest attempt (None until that starts)."""
        ready = self.created_at
        if self.not_before is not None and ready is not None and self.not_before > ready:
            ready = self.not_before
        return _seconds_between(ready, self.started_at)

    @property
    def ran_seconds(self) -> float | None:
        """How long its latest attempt ran (None until it finished)."""
        return _seconds_between(self.started_at, self.finished_at)

    @classmethod
    def new(
        cls,
        request: CallRequest,
        call_id: str,
        root_id: str,
        version: tuple[str | None, str | None],
        now: datetime,
        lease_until: datetime | None = None,
        gate: str | None = None,
    ) -> CallRecord:
        """A new call's row, as `request` makes it (its parent, root and code version
        resolved): pending, or running already when its caller runs it in place."""
        runs_in_place = request.run_mode is not None
        parent_id = request.parent_stage_run_id or None
        return cls(
            id=call_id,
            stage=request.stage,
            status=Status.RUNNING if runs_in_place else Status.PENDING,
            arguments=request.arguments,
            parent_stage_run_id=parent_id,
            root_stage_run_id=root_id,
            workflow_run_id=request.workflow_run_id,
            position=request.position,
            parent_attempt=request.parent_attempt if parent_id else None,
            queue=queue_name(request.stage, *version),
            repo_name=version[0],
            commit_hash=version[1],
            worker=request.worker,
            run_mode=request.run_mode,
            attempt=1,
            max_attempts=request.max_attempts,
            created_at=now,
            started_at=now if runs_in_place else None,
            lease_expires_at=lease_until,
            not_before=request.due(now),
            gate=gate,
            priority=request.priority,
        )

    @property
    def finished(self) -> bool:
        return self.status.is_terminal

    def message(self) -> CallMessage:
        """The job that runs this call's current attempt."""
        return CallMessage(
            id=self.id,
            stage=self.stage,
            args=self.arguments.args,
            kwargs=self.arguments.kwargs,
            parent_id=self.parent_stage_run_id,
            root_id=self.root_stage_run_id,
            repo_name=self.repo_name,
            commit_hash=self.commit_hash,
            attempt=self.attempt,
            resumed=self.status is Status.PENDING and self.started_at is not None,
            gate=self.gate,
        )

    def outcome(self) -> Outcome:
        """How the call ended (for a finished call)."""
        return Outcome(
            id=self.id, stage=self.stage, status=self.status, result=self.result,
            error=self.error, output=self.output or "", worker=self.worker,
            run_mode=self.run_mode, attempt=self.attempt, started_at=self.started_at,
            finished_at=self.finished_at,
        )


class AttemptRecord(msgspec.Struct, frozen=True):
    """An earlier attempt of a call: lost (its worker or process was gone) or failed."""

    call_id: str
    attempt: int
    status: str
    worker: str | None = None
    run_mode: RunMode | None = None
    error: ErrorRecord | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class CallSummary(msgspec.Struct, frozen=True):
    """A call in a list of what another call waits on."""

    id: str
    stage: str
    status: Status
    worker: str | None = None


def _seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else round((end - start).total_seconds(), 3)


class CallDetails(CallRecord, frozen=True):
    """A call with what only a read of one call shows: its earlier attempts, while
    it runs the unfinished calls it waits on, and while it waits for a time what
    for and until when."""

    attempts: list[AttemptRecord] = msgspec.field(default_factory=list)
    waiting_on: list[CallSummary] = msgspec.field(default_factory=list)
    waiting_for: WaitingFor | None = None
