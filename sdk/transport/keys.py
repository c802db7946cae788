"""Every Redis key, channel and stream name callplane uses, and how long each lives.

Queues, job hashes and registries follow RQ's layout (so `rq info` and
rq-dashboard see callplane's work); callplane's own keys start with `callplane:`.
"""

from __future__ import annotations

RQ_PREFIX = "rq"
#: RQ's set of every queue's key.
QUEUES_SET = f"{RQ_PREFIX}:queues"
#: The prefix of a job's hash key; its id follows.
JOB_PREFIX = f"{RQ_PREFIX}:job:"
QUEUE_PREFIX = f"{RQ_PREFIX}:queue:"
WORKER_PREFIX = f"{RQ_PREFIX}:worker:"
#: RQ's set of every worker's key (a key whose worker stopped expires; its member stays a while).
WORKERS_SET = f"{RQ_PREFIX}:workers"

#: Workers' reports to the recorder (sdk.reports).
EVENTS_STREAM = "callplane:events"
#: The consumer group of the control planes' recorders on EVENTS_STREAM.
RECORDERS_GROUP = "recorders"
#: Reports the recorder could not apply, set aside with the reason for an
#: operator (`callplane recorder dead-letters`); the newest DEAD_LETTERS_KEPT stay.
DEAD_LETTERS_STREAM = "callplane:dead-letters"
DEAD_LETTERS_KEPT = 10_000
#: Set, for a lease, whenever a control plane could not reach the database or
#: Redis: while it exists no control plane gives up an attempt for its lease
#: (its worker's heartbeats may not have been heard or recorded meanwhile).
PART_AWAY_KEY = "callplane:part-away"
#: How many jobs workers refused to run (not written, or not signed, by the control plane).
REJECTED_JOBS_KEY = "callplane:rejected-jobs"
#: Browser sessions, by the SHA-256 of their id (sdk.transport.sessions).
SESSION_PREFIX = "callplane:session:"
#: Sign-in attempts per client address, counted over a window.
LOGIN_ATTEMPTS_PREFIX = "callplane:login-attempts:"
#: Set once the control plane has checked that Redis holds every pending call.
EPOCH_KEY = "callplane:epoch"
#: Completions the audit table has recorded (control planes' waiters listen here,
#: so whatever they answer is already in the table).
DONE_CHANNEL = "callplane:done"
#: Delayed calls by due time (epoch seconds): the clock duty moves each to its
#: queue when due (see sdk.transport.queues.Queues.due).
DELAYED_KEY = "callplane:delayed"
#: Who holds each duty (sdk.transport.duties), under a lease.
DUTY_PREFIX = "callplane:duty:"
#: Children's completions as soon as their worker finished them (workers waiting
#: on children listen here; a call without a parent is not announced, so workers
#: do not hear every root call of the system).
FINISHED_CHANNEL = "callplane:finished"
#: Where workers hear that calls they may be running were cancelled.
CANCEL_CHANNEL = "callplane:cancel"

#: How long a finished job's hash stays in Redis after its completion was recorded
#: (RQ's own default result_ttl); the audit table keeps it for good.
RESULT_TTL_SECONDS = 500
#: How long a failed job stays in RQ's failed registry (RQ's default failure_ttl).
FAILURE_TTL_SECONDS = 365 * 24 * 3600
#: A started call's score in RQ's started registry: when RQ would consider it
#: abandoned. Never: RQ's clean-up (`rq info` runs it) would mark a call that runs
#: longer failed in Redis alone; callplane's recovery judges a call by its lease,
#: and takes it out of the registry when it gives the attempt up.
STARTED_SCORE = "+inf"
#: How long what a call waits on stays readable without being renewed.
WAITING_TTL_SECONDS = 24 * 3600


def job_key(call_id: str) -> str:
    return JOB_PREFIX + call_id


def queue_key(queue: str) -> str:
    return QUEUE_PREFIX + queue


def queue_of_key(key: str) -> str:
    """The queue's name in a queue key."""
    return key[len(QUEUE_PREFIX):]


def worker_key(name: str) -> str:
    return WORKER_PREFIX + name


def started_registry(queue: str) -> str:
    return f"{RQ_PREFIX}:wip:{queue}"


def finished_registry(queue: str) -> str:
    return f"{RQ_PREFIX}:finished:{queue}"


def failed_registry(queue: str) -> str:
    return f"{RQ_PREFIX}:failed:{queue}"


def scheduled_registry(queue: str) -> str:
    """RQ's registry of jobs that wait for their time (rq-dashboard counts them)."""
    return f"{RQ_PREFIX}:scheduled:{queue}"


def canceled_registry(queue: str) -> str:
    return f"{RQ_PREFIX}:canceled:{queue}"


def waiting_key(call_id: str) -> str:
    return f"callplane:waiting:{call_id}"


#: Gates (sdk.limits) that hold calls, by when each is next looked at: the clock
#: duty lets their calls in then (sdk.transport.gates).
GATES_KEY = "callplane:gates"
#: A counter that orders the calls held at gates by arrival.
GATE_SEQUENCE_KEY = "callplane:gate-sequence"


def gate_held(gate: str) -> str:
    """A gate's held calls: a sorted set by priority, then arrival."""
    return f"callplane:gate:{gate}:held"


def gate_slots(gate: str) -> str:
    """The calls holding a gate's slots (queued or running)."""
    return f"callplane:gate:{gate}:slots"


def gate_starts(gate: str) -> str:
    """A gate's starts within its rate's period, by time."""
    return f"callplane:gate:{gate}:starts"


def gate_pace(gate: str) -> str:
    """When a gate's rate lets its next call in (epoch seconds)."""
    return f"callplane:gate:{gate}:pace"


def queue_tails(queue: str) -> str:
    """The last call of each priority on a queue (see push_function.lua)."""
    return f"callplane:tails:{queue}"
