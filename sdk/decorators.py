"""`WorkflowRunner` and `@runner.stage`: a function call that becomes a distributed call.

    runner = WorkflowRunner('http://localhost:5001')

    @runner.stage
    def extract_data():
        return [1, 2, 3]

Called outside a worker, a stage creates a root call and waits for it; called
inside a stage running on a worker, it creates a child of that call. The runner
holds no module-level state: two runners with different URLs live side by side.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable, Mapping
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

from sdk.client import ControlPlaneClient
from sdk.context import CallContext
from sdk.errors import CallCancelled, StageFailed
from sdk.settings import MAX_WAIT_SECONDS
from sdk.wire import Status, dumps, new_call_id

P = ParamSpec("P")
R = TypeVar("R")

STAGE_OPTIONS = ("name",)


class Waiting(Protocol):
    """How a caller waits for a call it created; a worker brings its own."""

    #: `?wait=` seconds to ask for when creating a call (None: return at once).
    create_wait: float | None

    def outcome(self, call: dict[str, Any]) -> dict[str, Any]:
        """Block until `call` finished; return its final record (status, result, error, output)."""


class LongPolling:
    """A caller outside any worker waits through the control plane's `?wait=`."""

    def __init__(self, client: ControlPlaneClient, wait_seconds: float = MAX_WAIT_SECONDS):
        self._client = client
        self.create_wait = wait_seconds

    def outcome(self, call: dict[str, Any]) -> dict[str, Any]:
        while not Status(call["status"]).is_terminal:
            call = self._client.get_call(call["id"], wait=self.create_wait)
        return call


class Stage(Generic[P, R]):
    """A function registered with a runner; calling it makes a distributed call."""

    def __init__(self, runner: WorkflowRunner, fn: Callable[P, R], name: str):
        functools.update_wrapper(self, fn)
        self.runner = runner
        self.fn = fn
        self.name = name
        self.signature = inspect.signature(fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.runner.call(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<Stage {self.name} of {self.runner!r}>"


def encode_arguments(stage: Stage, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The wire form of one call's arguments, checked before anything is sent.

    Raises TypeError at the call site when the arguments do not fit the function
    or one of them is not JSON-serialisable, naming that argument.
    """
    try:
        bound = stage.signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{stage.name}(): {exc}") from None
    arguments = {"args": list(args), "kwargs": kwargs}
    try:
        dumps(arguments)
    except (TypeError, ValueError):
        for name, value in _named_values(stage.signature, bound.arguments):
            try:
                dumps(value)
            except (TypeError, ValueError) as exc:
                raise TypeError(
                    f"{stage.name}(): argument {name!r} is not JSON-serialisable ({exc}); "
                    "pass lists, dicts, strings, numbers, booleans or None"
                ) from None
        raise
    return arguments


def _named_values(signature: inspect.Signature, bound: Mapping[str, Any]):
    for name, value in bound.items():
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            yield from ((f"{name}[{i}]", v) for i, v in enumerate(value))
        elif kind is inspect.Parameter.VAR_KEYWORD:
            yield from value.items()
        else:
            yield name, value


class WorkflowRunner:
    def __init__(
        self,
        server_url: str,
        *,
        repo_name: str | None = None,
        commit_hash: str | None = None,
    ):
        self.server_url = server_url
        self.repo_name = repo_name
        self.commit_hash = commit_hash
        self.stages: dict[str, Stage] = {}
        self.attach(ControlPlaneClient(server_url), None, CallContext())

    def attach(
        self, client: ControlPlaneClient, waiting: Waiting | None, context: CallContext
    ) -> None:
        """Route this runner's calls through `client` and `waiting` (a worker does this)."""
        self._client = client
        self._waiting = waiting or LongPolling(client)
        self.context = context

    def stage(self, fn: Callable[P, R] | None = None, **options: Any):
        """Register a function as a stage: `@runner.stage` or `@runner.stage(name=...)`."""
        unknown = set(options) - set(STAGE_OPTIONS)
        if unknown:
            raise TypeError(
                f"unknown stage option(s) {sorted(unknown)}; known options: {list(STAGE_OPTIONS)}"
            )

        def register(function: Callable[P, R]) -> Stage[P, R]:
            if not inspect.isfunction(function):
                raise TypeError(f"@runner.stage decorates plain functions, not {function!r}")
            name = options.get("name") or function.__name__
            if name in self.stages:
                raise ValueError(
                    f"a stage named {name!r} is already registered with this runner; "
                    "rename the function or pass @runner.stage(name=...)"
                )
            stage = Stage(self, function, name)
            self.stages[name] = stage
            return stage

        return register(fn) if fn is not None else register

    def run(self, main: Stage[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run a workflow's entry point as a distributed call and return its result."""
        if not isinstance(main, Stage) or main.runner is not self:
            raise TypeError(f"runner.run() takes a stage of this runner, not {main!r}")
        return main(*args, **kwargs)

    def call(self, stage: Stage, args: tuple, kwargs: dict) -> Any:
        """Create a call of `stage`, wait for it, and return its result or raise its error."""
        body: dict[str, Any] = {
            "id": new_call_id(),
            "stage": stage.name,
            "arguments": encode_arguments(stage, args, kwargs),
        }
        parent = self.context.current()
        if parent is not None:
            body["parent_stage_run_id"] = parent.id
            body["position"] = parent.next_position()
            version = (parent.repo_name, parent.commit_hash)
        else:
            version = (self.repo_name, self.commit_hash)
        if all(version):
            body["repo_name"], body["commit_hash"] = version
        call = self._client.create_call(body, wait=self._waiting.create_wait)
        record = self._waiting.outcome(call)
        if record.get("output"):
            # Replay what the call printed, into the caller's own output if it is a call too.
            (parent.output.write if parent is not None else sys.stdout.write)(record["output"])
        return unwrap(stage.name, record)

    def __repr__(self) -> str:
        return f"WorkflowRunner({self.server_url!r})"


def unwrap(stage: str, record: dict[str, Any]) -> Any:
    """A finished call's result, or its failure raised as an exception."""
    status = Status(record["status"])
    if status is Status.SUCCEEDED:
        return record.get("result")
    if status is Status.CANCELLED:
        raise CallCancelled(f"stage {stage!r} (call {record['id']}) was cancelled")
    raise StageFailed(stage, record["id"], record.get("error") or {})
