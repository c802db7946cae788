"""The worker process: one slot that takes calls off its queues and runs them.

`run_once(timeout)` is one blocking pop and one call, so tests can drive a worker
step by step; `run()` loops until SIGTERM or SIGINT, always finishing the call it
has started before it exits.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Callable

from sdk.client import ControlPlaneClient
from sdk.context import CallContext
from sdk.errors import CallCancelled, RedisUnavailable
from sdk.settings import Settings
from sdk.signing import JobSigner
from sdk.transport import Claimed, RqWorkerRecord, Transport
from sdk.transport.keys import CANCEL_CHANNEL, FINISHED_CHANNEL
from sdk.waiters import Waiters
from sdk.wire import queue_name
from workers.children import ChildCaller, Suspended
from workers.executor import CodeVersion, Executor
from workers.leases import LeaseKeeper
from workers.loader import Workflow
from workers.output import RoutedStdout
from workers.registrar import Registrar

log = logging.getLogger(__name__)

#: Longest blocking pop; bounds how long a stop request waits while the worker is idle.
POP_TIMEOUT_SECONDS = 1.0
#: How often the worker tells RQ (and callplane) it is alive.
HEARTBEAT_SECONDS = 10
#: How the cancellation listener interrupts a stage running on the main thread.
INTERRUPT_SIGNAL = signal.SIGUSR1
#: Pause before trying Redis again after it became unreachable.
REDIS_RETRY_SECONDS = 1.0


def default_worker_name() -> str:
    return f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}"


class Worker:
    def __init__(
        self,
        settings: Settings,
        workflow: Workflow,
        version: CodeVersion,
        name: str | None = None,
        *,
        isolate: bool = False,
        inline: bool = True,
        concurrency: int = 1,
    ):
        """`settings`: Redis, the control plane, leases and re-checks. `isolate`:
        run every call in a fresh process. `inline`: a stage's child call that it
        only waits on runs in this slot at once, instead of being queued for any
        worker (queued children a parent waits on are taken back either way, so
        nesting never deadlocks). `concurrency`: slots, each a thread running
        calls one at a time (1: the main thread alone, as before)."""
        if concurrency < 1:
            raise ValueError(f"concurrency must be 1 or more, not {concurrency}")
        self.concurrency = concurrency
        self.name = name or default_worker_name()
        self.workflow = workflow
        self._settings = settings
        self._version = version
        self._isolate = isolate
        self._inline = inline
        self._real_stdout = sys.stdout
        self.context = CallContext()
        # Jobs are checked against the control plane's key, asked for when first needed.
        self._signer = JobSigner(lambda: settings.job_key or ControlPlaneClient(
            settings.server_url, token=settings.token).job_key())
        self.transport, self.waiters, self.executor = self._wire(self.context, self._fresh)
        # Its own version's queues first: children of running calls go before new roots.
        self.queues = [
            queue_name(stage, version.repo_name, version.commit_hash) for stage in workflow.stages
        ] + [queue_name(stage, None, None) for stage in workflow.stages]
        self.rq_record = RqWorkerRecord(settings.redis_url, self.name, self.queues)
        #: Per slot (thread): the call that finishing its last one claimed, to run next.
        self._slot = threading.local()
        self._stopping = threading.Event()
        #: Whether a cancelled call on the main thread can be interrupted (a signal
        #: handler is installed only when the worker runs on the main thread).
        self._interruptible = False

    def _wire(
        self, context: CallContext, fresh: Callable[[], Executor] | None
    ) -> tuple[Transport, Waiters, Executor]:
        """Connections, waiters and executor, and the workflow's runners attached to them."""
        transport = Transport.from_url(self._settings.redis_url, self._signer)
        waiters = Waiters(transport, FINISHED_CHANNEL, self._settings.recheck_seconds)
        executor = Executor(
            transport, self.workflow.stages, context, self.name, self._version, self._isolate, fresh
        )
        client = ControlPlaneClient(self._settings.server_url, token=self._settings.token)
        caller = ChildCaller(transport, waiters, client, executor, context, self._inline,
                             self._settings.lease_seconds, suspendable=fresh is not None)
        for runner in self.workflow.runners:
            runner.attach(client, caller, context)
        return transport, waiters, executor

    def _fresh(self) -> Executor:
        """In a forked process: everything anew (the parent's threads did not come
        along, and its connections are not this process's to use)."""
        context = CallContext()
        sys.stdout = RoutedStdout(self._real_stdout, context)
        transport, waiters, executor = self._wire(context, None)
        waiters.start()
        self._lease_keeper(transport, executor).start()
        return executor

    def _lease_keeper(self, transport: Transport, executor: Executor) -> LeaseKeeper:
        return LeaseKeeper(transport, executor.running, self.name, self._settings.lease_seconds)

    def run_once(self, timeout: float = POP_TIMEOUT_SECONDS) -> bool:
        """Take one call and run it; False if none came within `timeout` seconds.

        While calls keep coming, finishing one also claims the next (one round
        trip); the blocking pop is for when the queues ran dry."""
        claimed, self._slot.next = self._next, None
        if claimed is None:
            popped = self.transport.queues.pop(self.queues, timeout)
            if popped is None:
                return False
            claimed = self.executor.claim(*popped)
            if claimed is None:
                return True
        chain = None if self._stopping.is_set() else self.queues
        try:
            _outcome, self._slot.next = self.executor.run(claimed, chain)
        except Suspended as suspended:  # the call waits: the slot is free for others
            log.info("%s; its slot takes other calls meanwhile", suspended)
        return True

    @property
    def _next(self) -> Claimed | None:
        """The call this slot claimed with its last finish, to run next."""
        return getattr(self._slot, "next", None)

    def run(self, burst: bool = False) -> None:
        """Run calls until stopped (or, with `burst`, until the queues are empty)."""
        self._signer.load()  # before claiming anything: every job is checked with it
        self.waiters.start()
        leases = self._lease_keeper(self.transport, self.executor).start()
        self.transport.broadcasts.listener(CANCEL_CHANNEL, self._cancel, self._stopping).start()
        self.rq_record.birth(self._rq_ttl)
        heartbeat = threading.Thread(target=self._heartbeat, name="callplane-heartbeat", daemon=True)
        heartbeat.start()
        lease = self._settings.lease_seconds
        Registrar(
            ControlPlaneClient(self._settings.server_url, token=self._settings.token,
                               outage_seconds=lease),
            self.workflow.schedules, self.workflow.limits, self._version, lease,
        ).start(self._stopping)
        self._install_signal_handlers()
        self._real_stdout, sys.stdout = sys.stdout, RoutedStdout(sys.stdout, self.context)
        log.info("worker %s listening on %s (%d slot(s))", self.name, ", ".join(self.queues),
                 self.concurrency)
        try:
            if self.concurrency == 1:
                self._run_slot(burst)
            else:
                self._run_slots(burst)
        finally:
            sys.stdout = self._real_stdout
            self._stopping.set()
            try:
                self.rq_record.death()
            except RedisUnavailable:
                pass
            leases.stop()
            self.waiters.stop()
            log.info("worker %s stopped", self.name)

    def _run_slot(self, burst: bool) -> None:
        """One slot: calls one at a time until stopped (with `burst`, until the
        queues are empty), the call claimed by its last finish included."""
        while not self._stopping.is_set() or self._next is not None:
            try:
                if not self.run_once() and burst:
                    break
            except RedisUnavailable as exc:
                log.warning("%s; retrying", exc)
                self._stopping.wait(REDIS_RETRY_SECONDS)
            except Exception:  # e.g. Redis refusing writes: the worker goes on
                log.exception("worker %s: the loop failed; going on", self.name)
                self._stopping.wait(REDIS_RETRY_SECONDS)

    def _run_slots(self, burst: bool) -> None:
        """`concurrency` slots, each a thread; the main thread waits for them (and
        takes the signals: on SIGTERM every slot finishes its call, then stops)."""
        slots = [threading.Thread(target=self._run_slot, args=(burst,), name=f"callplane-slot-{i}")
                 for i in range(self.concurrency)]
        for slot in slots:
            slot.start()
        while any(slot.is_alive() for slot in slots):
            for slot in slots:
                slot.join(timeout=0.5)

    def stop(self) -> None:
        """Finish the current call, then leave the loop."""
        self._stopping.set()

    def _cancel(self, call_ids: list[str]) -> None:
        """Cancelled calls: stop those running here (a stage on the main thread is
        interrupted with CallCancelled; one in a thread of its own runs on, and
        its report is refused)."""
        if self.executor.running.cancel(call_ids) and self._interruptible:
            signal.pthread_kill(threading.main_thread().ident, INTERRUPT_SIGNAL)

    @property
    def _rq_ttl(self) -> int:
        """How long RQ keeps this worker listed without a heartbeat: a lease, so a
        dead worker leaves `rq info` and the dashboard when its calls' leases end."""
        return max(1, round(self._settings.lease_seconds))

    def _heartbeat(self) -> None:
        every = min(HEARTBEAT_SECONDS, self._settings.lease_seconds / 3)
        while not self._stopping.wait(every):
            try:
                self.rq_record.heartbeat(self._rq_ttl)
            except RedisUnavailable as exc:
                log.warning("heartbeat: %s", exc)

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def request_stop(signum, _frame):
            log.info("worker %s: %s received; finishing the current call, then stopping",
                     self.name, signal.Signals(signum).name)
            self.stop()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)

        def interrupt(_signum, _frame):
            reason = self.executor.running.interruption()
            if reason is not None:
                raise CallCancelled(reason)

        signal.signal(INTERRUPT_SIGNAL, interrupt)
        self._interruptible = True
