"""Which call is running here, so that a stage called inside it becomes its child.

The current call lives in a ContextVar (right for threads and asyncio alike).
A thread that a stage starts itself begins with an empty context; when exactly
one call stack is running in this process, such a thread takes that stack's
innermost call as its parent, which is the call that started the thread.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


@dataclass
class CallFrame:
    """One executing call, as its children need to see it."""

    id: str
    stage: str
    root_id: str
    repo_name: str | None = None
    commit_hash: str | None = None
    #: Which attempt of the call this is: a re-run finds the children of earlier ones.
    attempt: int = 1
    #: This attempt ran before (it slept): its children made then are found again.
    resumed: bool = False
    #: How this call's own calls are made, when not the runner's way (local mode).
    caller: Any = None
    #: What the call printed; it travels with the result to the caller.
    output: io.StringIO = field(default_factory=io.StringIO)
    _positions: Iterator[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next_position(self) -> int:
        """The position of the next child among this call's children (0, 1, 2, ...)."""
        with self._lock:
            return next(self._positions)


class CallContext:
    def __init__(self) -> None:
        self._current: ContextVar[CallFrame | None] = ContextVar("callplane_call", default=None)
        self._stacks: dict[int, list[CallFrame]] = {}
        self._lock = threading.Lock()

    def current(self) -> CallFrame | None:
        frame = self._current.get()
        if frame is not None:
            return frame
        with self._lock:
            if len(self._stacks) == 1:
                (stack,) = self._stacks.values()
                return stack[-1]
        return None

    def chain(self) -> list[CallFrame]:
        """The calls running in this thread, outermost first: a worker slot's
        dispatched call and the calls it runs in place."""
        with self._lock:
            return list(self._stacks.get(threading.get_ident(), ()))

    @contextlib.contextmanager
    def entered(self, frame: CallFrame) -> Iterator[CallFrame]:
        thread = threading.get_ident()
        token = self._current.set(frame)
        with self._lock:
            self._stacks.setdefault(thread, []).append(frame)
        try:
            yield frame
        finally:
            self._current.reset(token)
            with self._lock:
                stack = self._stacks[thread]
                stack.pop()
                if not stack:
                    del self._stacks[thread]
