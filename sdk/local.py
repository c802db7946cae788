"""Local mode: `runner.run(main, local=True)` runs every stage in this process.

No Redis, no worker: each call runs at once, in order, on the calling thread, so
a workflow's unit test needs nothing started and a debugger steps straight into
stages. When the control plane answers, each call is still recorded there (as a
running row that this process then finishes), so the audit table shows the same
tree as a distributed run; otherwise the run is purely in memory.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sdk.client import ControlPlaneClient
from sdk.context import CallFrame
from sdk.errors import ControlPlaneUnavailable, describe
from sdk.handles import unwrap
from sdk.wire import Status, check_result

if TYPE_CHECKING:
    from sdk.decorators import Stage, WorkflowRunner

log = logging.getLogger(__name__)


class LocalCaller:
    def __init__(self, runner: WorkflowRunner):
        self._runner = runner
        # Recording is best effort: an unreachable control plane is not waited for.
        self._client = ControlPlaneClient(runner.client.server_url, outage_seconds=0)
        self._recording = True
        self.worker = f"local:{socket.gethostname()}:{os.getpid()}"

    def run(self, main: Stage, args: tuple, kwargs: dict) -> Any:
        body = self._runner._body(main, args, kwargs, None)
        return unwrap(self.call(body, main.isolate))

    # -- the Caller protocol -------------------------------------------------------

    def call(self, body: dict[str, Any], isolate: bool) -> dict[str, Any]:
        """Run the call here and now; its final record. (`isolate` has no meaning here.)"""
        stage = self._runner.stages[body["stage"]]
        parent = self._runner.context.current()
        record = self._record_start(body)
        frame = CallFrame(
            id=body["id"],
            stage=stage.name,
            root_id=parent.root_id if parent else body["id"],
            repo_name=body.get("repo_name"),
            commit_hash=body.get("commit_hash"),
            caller=self,
        )
        outcome: dict[str, Any] = {"id": body["id"], "stage": stage.name, "output": ""}
        with self._runner.context.entered(frame):
            try:
                result = stage.fn(*body["arguments"]["args"], **body["arguments"]["kwargs"])
                check_result(stage.name, result)
                outcome.update(status=Status.SUCCEEDED.value, result=result, error=None)
            except Exception as exc:  # noqa: BLE001 - the call's failure is its outcome
                outcome.update(status=Status.FAILED.value, result=None, error=describe(exc))
                outcome["_exception"] = exc
        self._record_finish(record, outcome)
        return outcome

    def submit(self, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Local calls run as they are submitted, one after another."""
        return [self.call(body, False) for body in bodies]

    def finished(
        self, calls: list[dict[str, Any]], timeout: float | None, every: bool = False
    ) -> Iterator[dict[str, Any]]:
        yield from calls  # submit() returned them finished

    # -- the audit record, when the control plane answers --------------------------

    def _record_start(self, body: dict[str, Any]) -> dict[str, Any] | None:
        if not self._recording:
            return None
        try:
            return self._client.create_call({**body, "run_mode": "local", "worker": self.worker})
        except ControlPlaneUnavailable as exc:
            self._stop_recording(exc)
            return None

    def _record_finish(self, record: dict[str, Any] | None, outcome: dict[str, Any]) -> None:
        if record is None or not self._recording:
            return
        report = {key: outcome[key] for key in ("status", "result", "error")}
        try:
            self._client.finish_call(record["id"], report)
        except ControlPlaneUnavailable as exc:
            self._stop_recording(exc)

    def _stop_recording(self, exc: ControlPlaneUnavailable) -> None:
        self._recording = False
        log.warning("local run: not recorded in the audit table from here on (%s)", exc)
