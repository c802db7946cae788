"""What `@runner.stage(...)` accepts, checked once at decoration into a StageOptions."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sdk.backoff import full_jitter

#: What @runner.stage(...) accepts, and what each option means.
STAGE_OPTIONS = {
    "name": "the stage's name (default: the function's name)",
    "isolate": "run each call of this stage in a fresh process of its own (default: False)",
    "retries": "how many times a call that raised runs again (default: 0)",
    "backoff": "seconds before the first retry, doubling for each next one, with jitter "
               "(default: 1.0)",
    "retry_on": "the exception class(es) that retry (default: Exception: all)",
    "timeout": "seconds a call may run; past them it is stopped and fails with "
               "callplane.StageTimeout (runs the call in a process of its own; default: none)",
    "concurrency": "at most this many calls of the stage running at once, on all workers "
                   "(with key=: per value of that argument; default: no limit)",
    "rate": "at most this many calls started per period, as '5/s', '100/m' or '10/5s' "
            "(with key=: per value of that argument; default: no limit)",
    "key": "the argument (a string or an integer) whose value the limits count by, each "
           "value taking fair turns with the others",
}
#: The longest delay a call may be given (ten years; `at=` names any time).
MAX_DELAY_SECONDS = 10 * 365 * 24 * 3600
#: The longest pause between two attempts, however many retries came before.
BACKOFF_CAP_SECONDS = 60.0
#: Attempts a stage may ask for (its first run and its retries).
MAX_ATTEMPTS = 100
#: Priorities run from -PRIORITY_BOUND to PRIORITY_BOUND.
PRIORITY_BOUND = 1_000_000


def check_priority(priority: object) -> None:
    """TypeError or ValueError, saying what to fix, unless `priority` is one."""
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise TypeError(f"priority must be a whole number (higher starts first), not {priority!r}")
    if not -PRIORITY_BOUND <= priority <= PRIORITY_BOUND:
        raise ValueError(f"priority must be from {-PRIORITY_BOUND} to {PRIORITY_BOUND}, "
                         f"not {priority}")


@dataclass(frozen=True)
class RetryPolicy:
    """When a call that raised runs again, and after how long."""

    retries: int = 0
    backoff: float = 1.0
    retry_on: tuple[type[BaseException], ...] = (Exception,)

    @property
    def max_attempts(self) -> int:
        return 1 + self.retries

    def retries_after(self, exc: BaseException, attempt: int) -> bool:
        """Whether attempt number `attempt`, which raised `exc`, is followed by another."""
        return attempt < self.max_attempts and isinstance(exc, self.retry_on)

    def pause(self, attempt: int, rng: random.Random) -> float:
        """Seconds before the attempt after `attempt`: full jitter over an exponential bound."""
        return full_jitter(self.backoff, BACKOFF_CAP_SECONDS, attempt, rng)


@dataclass(frozen=True)
class StageOptions:
    """A stage's options, valid by construction (see `parse`)."""

    name: str | None = None
    isolate: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float | None = None
    #: The limits as given: checked against the function by sdk.limits.StageLimit.declare.
    limits: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, options: dict[str, Any]) -> StageOptions:
        """The options as given to the decorator; TypeError or ValueError (saying
        what to fix) at decoration, not at the first failure."""
        unknown = set(options) - set(STAGE_OPTIONS)
        if unknown:
            known = "; ".join(f"{name}: {meaning}" for name, meaning in STAGE_OPTIONS.items())
            raise TypeError(f"unknown stage option(s) {sorted(unknown)}; known options are {known}")
        timeout = options.get("timeout")
        if timeout is not None and (
            not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0
        ):
            raise ValueError(f"timeout must be a number of seconds > 0, or None, not {timeout!r}")
        return cls(
            name=options.get("name"),
            isolate=bool(options.get("isolate", False)),
            retry=_retry_policy(options),
            timeout=timeout,
            limits={name: options[name] for name in ("concurrency", "rate", "key") if name in options},
        )


def _retry_policy(options: dict[str, Any]) -> RetryPolicy:
    retries = options.get("retries", 0)
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries < MAX_ATTEMPTS:
        raise ValueError(f"retries must be a whole number from 0 to {MAX_ATTEMPTS - 1}, not {retries!r}")
    backoff = options.get("backoff", 1.0)
    if not isinstance(backoff, (int, float)) or isinstance(backoff, bool) or backoff < 0:
        raise ValueError(f"backoff must be a number of seconds >= 0, not {backoff!r}")
    retry_on = options.get("retry_on", Exception)
    retry_on = retry_on if isinstance(retry_on, tuple) else (retry_on,)
    if not retry_on or not all(isinstance(k, type) and issubclass(k, BaseException) for k in retry_on):
        raise TypeError(f"retry_on takes an exception class or a tuple of them, not {retry_on!r}")
    return RetryPolicy(retries, float(backoff), retry_on)


@dataclass(frozen=True)
class CallOptions:
    """Settings for the calls made through `stage.options(...)`, valid by
    construction (see `parse`): when they may start."""

    #: Seconds after each call is made before a worker may start it...
    delay: float | None = None
    #: ...or the time before which none may (with its timezone).
    at: datetime | None = None
    #: Of the calls a worker may take, higher priorities start first.
    priority: int = 0

    @classmethod
    def parse(cls, delay: float | None = None, at: datetime | None = None,
              priority: int = 0) -> CallOptions:
        """TypeError or ValueError, saying what to fix, when the options are given."""
        check_priority(priority)
        if delay is not None and at is not None:
            raise TypeError("give delay or at, not both: either says when the call may start")
        if delay is not None:
            if not isinstance(delay, (int, float)) or isinstance(delay, bool):
                raise TypeError(f"delay must be a number of seconds, not {delay!r}")
            if not math.isfinite(delay) or not 0 <= delay <= MAX_DELAY_SECONDS:
                raise ValueError(f"delay must be between 0 and {MAX_DELAY_SECONDS} seconds "
                                 f"(ten years), not {delay!r}")
        if at is not None:
            if not isinstance(at, datetime):
                raise TypeError(f"at must be a datetime, not {at!r}")
            if at.utcoffset() is None:
                raise ValueError(
                    f"at={at.isoformat()} has no timezone, so it is a different moment on every "
                    "machine: give one, e.g. datetime(2026, 12, 3, 15, 0, tzinfo=timezone.utc)"
                )
        return cls(delay=delay, at=at, priority=priority)
