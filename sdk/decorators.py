"""`WorkflowRunner` and `@runner.stage`: a function call that becomes a distributed call.

    runner = WorkflowRunner('http://localhost:5001')

    @runner.stage
    def extract_data():
        return [1, 2, 3]

Called outside a worker, a stage creates a root call and waits for it; called
inside a stage running on a worker, it creates a child of that call.
`stage.submit(...)` returns a handle at once, `stage.map(items)` runs calls in
parallel, and `runner.run(main, local=True)` runs everything in this process.
How calls are made and awaited is the attached `Caller`'s business (sdk.caller).
The runner holds no module-level state: two runners with different URLs live
side by side.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, Generic, ParamSpec, TypeVar, cast, overload

import msgspec

from sdk.caller import Caller, RemoteCaller
from sdk.client import OUTAGE_SECONDS, ControlPlaneClient
from sdk.context import CallContext, CallFrame
from sdk.errors import own_class
from sdk.handles import CallHandle, as_completed, gather, unwrap
from sdk.limits import StageLimit
from sdk.local import LocalCaller
from sdk.options import MAX_DELAY_SECONDS, CallOptions, StageOptions
from sdk.records import Arguments, CallRequest
from sdk.schedules import CatchUp, ScheduleDefinition
from sdk.waits import check_event_key
from sdk.wire import (
    HAS_NUL,
    JSON_DEPTH_LIMIT,
    TOO_DEEP,
    child_call_id,
    dumps,
    json_problem,
    new_call_id,
)

P = ParamSpec("P")
R = TypeVar("R")


class Stage(Generic[P, R]):
    """A function registered with a runner; calling it makes a distributed call."""

    def __init__(self, runner: WorkflowRunner, fn: Callable[P, R], options: StageOptions):
        functools.update_wrapper(self, fn)
        self.runner = runner
        self.fn = fn
        self.name = options.name or fn.__name__
        # A call with a timeout runs in a process of its own, which can be stopped.
        self.isolate = options.isolate or options.timeout is not None
        self.retry = options.retry
        self.timeout = options.timeout
        self.signature = inspect.signature(fn)
        self.limit = StageLimit.declare(self.name, self.signature, **options.limits)
        #: Its calls go through its queue, never inline in their caller (a call of a
        #: limited stage must take its slot; an isolated one, its own process).
        self.queued = self.isolate or self.limit is not None
        #: Settings for the calls made through this stage (see `options`).
        self.call_options = CallOptions()

    def options(self, *, delay: float | None = None, at: datetime | None = None,
                priority: int = 0) -> Stage[P, R]:
        """This stage with settings for the calls made through it: no worker starts
        a call before `delay` seconds after it is made, or before the time `at`
        (a datetime with its timezone); of the calls a worker may take, those of
        a higher `priority` start first (default 0; equal ones in order).
        Returns a new Stage to call, `.submit()` or `.map()`; this one is unchanged. TypeError or ValueError at once for
        settings that make no sense."""
        bound = copy.copy(self)
        bound.call_options = CallOptions.parse(delay=delay, at=at, priority=priority)
        return bound

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.runner.call(self, args, kwargs)

    def submit(self, *args: P.args, **kwargs: P.kwargs) -> CallHandle[R]:
        """Start a call and return its handle at once."""
        return self.runner.submit(self, [(args, kwargs)])[0]

    def map(self, *iterables: Iterable[Any]) -> list[R]:
        """Call the stage once per item (like the builtin `map`), all in parallel;
        the results in order. Raises the first failure after all have finished."""
        return gather(self.runner.submit(self, [(args, {}) for args in zip(*iterables)]))

    def __repr__(self) -> str:
        return f"<Stage {self.name} of {self.runner!r}>"


def encode_arguments(stage: Stage[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
                     ) -> Arguments:
    """The wire form of one call's arguments, checked before anything is sent.

    Raises TypeError at the call site when the arguments do not fit the function
    or one of them is not JSON-serialisable, naming that argument.
    """
    try:
        bound = stage.signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{stage.name}(): {exc}") from None
    arguments = Arguments(list(args), kwargs)
    problem = json_problem([arguments.args, arguments.kwargs])  # as the control plane counts
    if problem == TOO_DEEP:
        raise TypeError(f"{stage.name}(): its arguments are {TOO_DEEP}; callplane keeps "
                        f"arguments of up to {JSON_DEPTH_LIMIT} levels")
    if problem == HAS_NUL:
        raise TypeError(f"{stage.name}(): in its arguments, {problem}")
    try:
        dumps([arguments.args, arguments.kwargs])
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


def _named_values(signature: inspect.Signature, bound: Mapping[str, Any]
                  ) -> Iterator[tuple[str, Any]]:
    for name, value in bound.items():
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            yield from ((f"{name}[{i}]", v) for i, v in enumerate(value))
        elif kind is inspect.Parameter.VAR_KEYWORD:
            yield from value.items()
        else:
            yield name, value


def _plain_function(candidate: object) -> bool:
    """inspect.isfunction, behind a plain bool: a type checker would otherwise narrow
    the decorated function to FunctionType and lose its ParamSpec."""
    return inspect.isfunction(candidate)


class WorkflowRunner:
    def __init__(
        self,
        server_url: str,
        *,
        repo_name: str | None = None,
        commit_hash: str | None = None,
        outage_seconds: float = OUTAGE_SECONDS,
        exceptions: Iterable[type[BaseException]] = (),
    ):
        """`outage_seconds`: how long a call keeps retrying while the control plane
        is unreachable (a restart, a deploy) before it raises ControlPlaneUnavailable.
        `exceptions`: exception classes a failed call raises as, when a stage
        raised one of them (still StageFailed too); any other failure raises
        StageFailed."""
        self.server_url = server_url
        self.own_exceptions = {kind.__qualname__: own_class(kind) for kind in exceptions}
        self.repo_name = repo_name
        self.commit_hash = commit_hash
        self.stages: dict[str, Stage[Any, Any]] = {}
        self.schedules: dict[str, ScheduleDefinition] = {}
        client = ControlPlaneClient(server_url, outage_seconds=outage_seconds)
        self.attach(client, RemoteCaller(client), CallContext())

    def attach(self, client: ControlPlaneClient, caller: Caller, context: CallContext) -> None:
        """Route this runner's calls through `caller` (a worker attaches its own)."""
        self.client = client
        self._caller = caller
        self.context = context

    @overload
    def stage(self, fn: Callable[P, R], /) -> Stage[P, R]: ...

    @overload
    def stage(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        isolate: bool = False,
        retries: int = 0,
        backoff: float = 1.0,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
        timeout: float | None = None,
        concurrency: int | None = None,
        rate: str | None = None,
        key: str | None = None,
    ) -> Callable[[Callable[P, R]], Stage[P, R]]: ...

    def stage(self, fn: Callable[P, R] | None = None, /, **options: Any) -> Any:
        """Register a function as a stage: `@runner.stage` or `@runner.stage(name=..., isolate=...)`.

        Typed: a stage keeps its function's parameters and return type, so a
        checker sees `add(1, 2)` as an int and `add.submit(1, 2)` as a CallHandle[int]."""
        parsed = StageOptions.parse(options)

        def register(function: Callable[P, R]) -> Stage[P, R]:
            if not _plain_function(function):
                raise TypeError(f"@runner.stage decorates plain functions, not {function!r}")
            if inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function):
                raise TypeError(
                    f"{function.__qualname__} is an async def: stages are plain functions for "
                    "now. Write `def` and run the coroutine inside it with asyncio.run(...); "
                    "the stage's calls of other stages stay plain calls."
                )
            stage = Stage(self, function, parsed)
            if stage.name in self.stages:
                raise ValueError(
                    f"a stage named {stage.name!r} is already registered with this runner; "
                    "rename the function or pass @runner.stage(name=...)"
                )
            self.stages[stage.name] = stage
            return stage

        return register(fn) if fn is not None else register

    def schedule(
        self,
        stage: Stage[Any, Any],
        *,
        cron: str | None = None,
        every: float | None = None,
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        timezone: str = "UTC",
        name: str | None = None,
        catch_up: CatchUp = "once",
    ) -> ScheduleDefinition:
        """Call `stage(*args, **kwargs)` as a root call on a schedule: `cron` (five
        fields, in `timezone`) or `every` seconds. Workers that load this file
        register it with the control plane, which makes one call per fire time; a
        fire missed while no control plane ran is made once when one is back
        (`catch_up="skip"`: not at all). Checked here: TypeError or ValueError."""
        if not isinstance(stage, Stage) or stage.runner is not self:
            raise TypeError(f"runner.schedule() takes a stage of this runner, not {stage!r}")
        definition = ScheduleDefinition(
            name=stage.name if name is None else name, stage=stage.name,
            arguments=encode_arguments(stage, tuple(args), dict(kwargs or {})), cron=cron,
            every_seconds=every, timezone=timezone, catch_up=catch_up,
            max_attempts=stage.retry.max_attempts,
        ).check()
        if definition.name in self.schedules:
            raise ValueError(f"a schedule named {definition.name!r} is already registered with "
                             "this runner; give it another name=")
        self.schedules[definition.name] = definition
        return definition

    def run(self, main: Stage[P, R], *args: Any, local: bool = False, **kwargs: Any) -> R:
        """Run a workflow's entry point as a distributed call and return its result.

        With `local=True` every stage runs in this process, one after another,
        without Redis or workers: for unit tests and debugging. The calls are
        still recorded in the control plane's audit table when it answers.
        """
        if not isinstance(main, Stage) or main.runner is not self:
            raise TypeError(f"runner.run() takes a stage of this runner, not {main!r}")
        if local:
            return cast(R, LocalCaller(self).run(main, args, kwargs))
        return self.call(main, args, kwargs)

    def call(self, stage: Stage[Any, R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        """Create a call of `stage`, wait for it, and return its result or raise its error."""
        caller, parent = self._route()
        outcome = caller.call(self.request(stage, args, kwargs, parent), stage.queued)
        if outcome.output:
            self._replayer(parent)(outcome.output)
        return cast(R, unwrap(outcome, self.own_exceptions))

    def submit(
        self, stage: Stage[Any, R], arguments: list[tuple[tuple[Any, ...], dict[str, Any]]]
    ) -> list[CallHandle[R]]:
        """Create calls of `stage` without waiting; one handle per (args, kwargs)."""
        caller, parent = self._route()
        requests = [self.request(stage, args, kwargs, parent) for args, kwargs in arguments]
        replay = self._replayer(parent)
        return [CallHandle(caller, stage.name, call, replay, self.own_exceptions)
                for call in caller.submit(requests)]

    def sleep(self, seconds: float) -> None:
        """Wait `seconds` without holding a worker: in a stage on a worker, the
        calls running in its slot end their run and give the slot back; after
        the time they run again from the top, each call they made before returning
        its recorded result and this sleep returning at once. So a stage that
        sleeps must make the same calls in the same order each run (side effects
        belong in child stages); one that does not gets callplane.DeterminismError
        naming the position. Elsewhere (a script, local mode, a thread a stage
        started, an isolated call) it is time.sleep."""
        seconds = _seconds("runner.sleep()", seconds)
        caller, _parent = self._route()
        caller.sleep(seconds)

    def wait_for_event(self, key: str, timeout: float | None = None) -> Any:
        """The JSON payload of the event sent to `key` (POST /api/events/<key>, or
        `callplane events send`), waiting without holding a worker, as `sleep`
        does (the same rule applies); an event sent before is kept for the first
        wait. callplane.EventTimeout after `timeout` seconds without one. Only in
        a stage running on a worker (RuntimeError elsewhere)."""
        check_event_key(key)
        if timeout is not None:
            timeout = _seconds("runner.wait_for_event()'s timeout (or None)", timeout)
        caller, _parent = self._route()
        return caller.wait_for_event(key, timeout)

    @staticmethod
    def gather(*handles: CallHandle[Any], return_exceptions: bool = False) -> list[Any]:
        """The results of `handles`, in order, once all have finished (see sdk.handles.gather)."""
        return gather(handles, return_exceptions)

    @staticmethod
    def as_completed(
        handles: Iterable[CallHandle[Any]], timeout: float | None = None
    ) -> Iterator[CallHandle[Any]]:
        """Yield each handle as its call finishes."""
        return as_completed(handles, timeout)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Submits this thread makes in the block return at once and are created
        together, a batch per request: every one exists once the block ends (or
        before any wait inside it). In a stage it changes nothing: its calls are
        its worker's to make."""
        caller, parent = self._route()
        if parent is not None or not isinstance(caller, RemoteCaller):
            yield
            return
        with caller.deferring():
            yield

    def _route(self) -> tuple[Caller, CallFrame | None]:
        """The caller for a call made here, and the call it is made from (None at the top)."""
        parent = self.context.current()
        if parent is not None and parent.caller is not None:
            return parent.caller, parent
        return self._caller, parent

    def request(
        self, stage: Stage[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any],
        parent: CallFrame | None,
    ) -> CallRequest:
        """The request that creates a call of `stage` from `parent` (None: a root call)."""
        when = stage.call_options
        request = CallRequest(
            stage=stage.name,
            arguments=encode_arguments(stage, args, kwargs),
            id=new_call_id(),
            max_attempts=stage.retry.max_attempts,
            not_before=when.at,
            delay_seconds=when.delay,
            priority=when.priority,
        )
        if stage.limit is not None:
            stage.limit.key_value(args, kwargs)  # TypeError here, at the call site
        if parent is not None:
            position = parent.next_position()
            request = msgspec.structs.replace(
                request,
                id=child_call_id(parent.id, position),
                parent_stage_run_id=parent.id,
                position=position,
                parent_attempt=parent.attempt,
            )
            version = (parent.repo_name, parent.commit_hash)
        else:
            version = (self.repo_name, self.commit_hash)
        if all(version):
            request = msgspec.structs.replace(request, repo_name=version[0], commit_hash=version[1])
        return request

    @staticmethod
    def _replayer(parent: CallFrame | None) -> Callable[[str], Any]:
        """Where a finished call's printed output goes: its caller's own output if
        the caller is a call too, this process's stdout otherwise."""
        return parent.output.write if parent is not None else sys.stdout.write

    def __repr__(self) -> str:
        return f"WorkflowRunner({self.server_url!r})"


def _seconds(what: str, seconds: Any) -> float:
    """A length of time a runner's method takes, as a float; ValueError for nonsense."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not (
            0 <= seconds <= MAX_DELAY_SECONDS):
        raise ValueError(f"{what} takes 0 to {MAX_DELAY_SECONDS} seconds, not {seconds!r}")
    return float(seconds)
