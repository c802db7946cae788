"""Every Redis key and command callplane uses, in one package.

The control plane and the workers both use it; nothing else talks to Redis.
`Transport` is one Redis seen through the parts of this package:

- `queues`: enqueue, pop, claim, finish (and claim the next), take back;
- `jobs`: outcomes, mirrors of what the audit table decided, what Redis lost;
- `events`: workers' reports and the recorders' group;
- `broadcasts`: completion and cancellation broadcasts;
- `sessions`: browsers' sessions and sign-in attempts;
- `duties`: which control-plane process does each one-at-a-time duty;
- `gates`: calls of limited stages, let in to their queues as their limits allow;
- `figures`: the metrics' totals, and what the backlog is now;

with every key name in `keys`, every Lua script in `lua/` (loaded by
`scripts`), and RQ's job and worker layout in `rq_compat`.
"""

from __future__ import annotations

import redis

from sdk.signing import JobSigner
from sdk.transport.broadcasts import Broadcasts
from sdk.transport.connection import answers, connect, translating
from sdk.transport.duties import Duties
from sdk.transport.events import Events
from sdk.transport.gates import Gates
from sdk.transport.jobs import Jobs
from sdk.transport.metrics import Figures
from sdk.transport.queues import JOB_GONE, Claimed, FinishReport, Queues
from sdk.transport.rq_compat import RqWorkerRecord, RqWorkers
from sdk.transport.scripts import Scripts
from sdk.transport.sessions import Sessions

__all__ = [
    "JOB_GONE", "Claimed", "FinishReport", "RqWorkerRecord", "RqWorkers", "Transport", "answers",
]


@translating
class Transport:
    """callplane's view of one Redis."""

    def __init__(self, client: redis.Redis, signer: JobSigner | None = None):
        """`signer`: the control plane signs the jobs it queues with it, a worker
        checks those it claims (sdk.signing)."""
        self.redis = client
        scripts = Scripts(client)
        self.queues = Queues(client, scripts, signer)
        self.jobs = Jobs(client, scripts)
        self.events = Events(client, scripts)
        self.broadcasts = Broadcasts(client, scripts)
        self.rq_workers = RqWorkers(client)
        self.sessions = Sessions(client)
        self.duties = Duties(client, scripts)
        self.gates = Gates(client, scripts)
        self.figures = Figures(client)

    @classmethod
    def from_url(cls, url: str, signer: JobSigner | None = None) -> Transport:
        return cls(connect(url), signer)

    def ping(self) -> bool:
        return bool(self.redis.ping())
