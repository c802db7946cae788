"""Run one call: claim it, execute its stage with the call as context, report the outcome.

Calls popped from a queue and calls a waiting parent takes off the queue to run
itself (so nesting never deadlocks, even on a single worker) go through the same
`process`, and so get the same claim, audit record and report.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sdk.context import CallContext, CallFrame
from sdk.decorators import Stage
from sdk.errors import DecodeError
from sdk.transport import Transport
from sdk.wire import CallMessage, Status, dumps
from workers.output import captured

log = logging.getLogger(__name__)


def run_call(*_args, **_kwargs):
    """The function an RQ job of callplane's names. Only callplane's worker runs
    these jobs (it checks the name and runs the stage itself); a stock RQ worker
    that picks one up fails it here instead of running anything."""
    raise RuntimeError("callplane calls run only on callplane workers (callplane worker ...)")


@dataclass(frozen=True)
class CodeVersion:
    repo_name: str | None
    commit_hash: str | None


def _now() -> datetime:
    return datetime.now(timezone.utc)


def describe(exc: BaseException) -> dict[str, str]:
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    return {
        "type": name,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
    }


class Executor:
    def __init__(
        self,
        transport: Transport,
        stages: dict[str, Stage],
        context: CallContext,
        worker_name: str,
        version: CodeVersion,
    ):
        self._transport = transport
        self._stages = stages
        self._context = context
        self.worker_name = worker_name
        self._version = version

    def process(self, queue: str, call_id: str) -> bool:
        """Claim and run one call; False if someone else had already claimed it."""
        started_at = _now()
        body = dumps({"worker": self.worker_name, "started_at": started_at.isoformat()})
        data = self._transport.claim(queue, call_id, self.worker_name, started_at, body)
        if data is None:
            log.info("call %s was claimed elsewhere; skipping it", call_id)
            return False
        try:
            message = CallMessage.decode(data)
        except DecodeError as exc:
            log.error("call %s: refusing its job: %s", call_id, exc)
            message = CallMessage(id=call_id, stage="?")
            self._report(message, queue, started_at, None, describe(exc), "")
            return True
        result, error, output = self._execute(message)
        self._report(message, queue, started_at, result, error, output)
        return True

    def _execute(self, message: CallMessage) -> tuple[Any, dict | None, str]:
        frame = CallFrame(
            id=message.id,
            stage=message.stage,
            root_id=message.root_id or message.id,
            repo_name=self._version.repo_name,
            commit_hash=self._version.commit_hash,
        )
        with self._context.entered(frame):
            try:
                stage = self._stages.get(message.stage)
                if stage is None:
                    raise LookupError(
                        f"this worker's workflow file registers no stage {message.stage!r}; "
                        f"it has {sorted(self._stages)}"
                    )
                result = stage.fn(*message.args, **message.kwargs)
                try:
                    dumps(result)
                except (TypeError, ValueError) as exc:
                    raise TypeError(
                        f"stage {message.stage!r} returned a value that is not JSON-serialisable "
                        f"({exc}); return lists, dicts, strings, numbers, booleans or None"
                    ) from None
                error = None
            except Exception as exc:  # noqa: BLE001 - any stage error is the call's outcome
                result, error = None, describe(exc)
        return result, error, captured(frame.output)

    def _report(
        self,
        message: CallMessage,
        queue: str,
        started_at: datetime,
        result: Any,
        error: dict | None,
        output: str,
    ) -> None:
        finished_at = _now()
        status = Status.FAILED if error else Status.SUCCEEDED
        outcome = {
            "id": message.id,
            "status": status.value,
            "result": result,
            "error": error,
            "output": output,
            "worker": self.worker_name,
            "attempt": message.attempt,
            "started_at": started_at.isoformat(),
            "finished_at": finished_at.isoformat(),
        }
        exc_info = error["traceback"] or error["message"] if error else ""
        accepted = self._transport.finish(
            queue, message.id, self.worker_name, dumps(outcome), not error, finished_at, exc_info
        )
        if not accepted:
            log.warning("call %s: finished, but this worker no longer holds it", message.id)
