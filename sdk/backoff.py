"""Exponential backoff with full jitter: how long to pause before each retry.

Full jitter (a random pause between zero and the exponential bound) keeps many
clients that failed at the same moment from retrying at the same moment.
"""

from __future__ import annotations

import random
from collections.abc import Iterator


def delays(base: float, cap: float, rng: random.Random | None = None) -> Iterator[float]:
    """Pauses for retry 1, 2, 3, ...: uniform in [0, min(cap, base * 2**n)]."""
    rng = rng or random.Random()
    bound = base
    while True:
        yield rng.uniform(0, min(cap, bound))
        bound *= 2
