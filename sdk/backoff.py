"""Exponential backoff with full jitter, and the loop that retries until a deadline.

Full jitter (a random pause between zero and the exponential bound) keeps many
clients that failed at the same moment from retrying at the same moment.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

#: The first pause of a retry loop, and the longest one, in seconds.
FIRST_PAUSE_SECONDS = 0.05
LONGEST_PAUSE_SECONDS = 2.0


def full_jitter(base: float, cap: float, retry: int, rng: random.Random) -> float:
    """The pause before retry number `retry` (1, 2, ...): uniform in [0, min(cap, base * 2**(retry-1))]."""
    return rng.uniform(0, min(cap, base * 2 ** (retry - 1)))


def delays(base: float, cap: float, rng: random.Random | None = None) -> Iterator[float]:
    """The pauses before retry 1, 2, 3, ..."""
    rng = rng or random.Random()
    retry = 1
    while True:
        yield full_jitter(base, cap, retry, rng)
        retry += 1


def retry_until(
    attempt: Callable[[], T],
    retry_on: type[BaseException] | tuple[type[BaseException], ...],
    seconds: float,
    on_retry: Callable[[BaseException], None] | None = None,
) -> T:
    """`attempt()`, again after a pause each time it raises `retry_on`, for up to
    `seconds`; then its last error is raised. `on_retry` hears each error retried."""
    deadline = time.monotonic() + seconds
    pauses = delays(FIRST_PAUSE_SECONDS, LONGEST_PAUSE_SECONDS)
    while True:
        try:
            return attempt()
        except retry_on as exc:
            if time.monotonic() >= deadline:
                raise
            if on_retry is not None:
                on_retry(exc)
            time.sleep(next(pauses))
