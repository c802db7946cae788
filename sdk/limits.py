"""A stage's limits (`@runner.stage(concurrency=, rate=, key=)`), checked at
decoration, and the gate each call of the stage goes through.

A gate is what one limit counts: the stage, or the stage and one value of its
`key` argument (`charge:"customer-42"`). Calls of a gate wait in Redis until it
admits them (sdk.transport.gates); the control plane names each call's gate
when it creates the call, from the limits workers registered.
"""

from __future__ import annotations

import inspect
import json
import re
from typing import Any

import msgspec

#: What a rate looks like: "5/s", "100/m", "10/5s" (ten per five seconds).
RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(s|m|h|d)\s*$")
PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: The most calls of one gate that may run at once (a sanity bound, not a tuning knob).
MAX_CONCURRENCY = 100_000
#: The longest key value (as JSON) a limit counts by.
MAX_KEY_LENGTH = 200


class StageLimit(msgspec.Struct, frozen=True, omit_defaults=True):
    """A stage's limits, as workers register them with the control plane."""

    stage: str
    #: At most this many calls of a gate running at once...
    concurrency: int | None = None
    #: ...and at most `rate_count` started in any `rate_seconds`.
    rate_count: int | None = None
    rate_seconds: float | None = None
    #: The argument whose value names the gate (None: one gate for the stage).
    key: str | None = None
    #: Where that argument comes when passed by position (None: keyword only).
    key_position: int | None = None
    #: Its default, when it has a string or integer one.
    key_default: str | int | None = None

    @classmethod
    def declare(cls, stage: str, signature: inspect.Signature, concurrency: Any = None,
                rate: Any = None, key: Any = None) -> StageLimit | None:
        """The limits given to the decorator, or None for none; TypeError or
        ValueError, saying what to fix, for nonsense."""
        if concurrency is None and rate is None:
            if key is not None:
                raise TypeError(f"key={key!r} names what a limit counts by: give concurrency= "
                                "or rate= with it")
            return None
        if concurrency is not None and (
                not isinstance(concurrency, int) or isinstance(concurrency, bool)
                or not 1 <= concurrency <= MAX_CONCURRENCY):
            raise ValueError(f"concurrency must be a whole number from 1 to {MAX_CONCURRENCY} "
                             f"(calls running at once), not {concurrency!r}")
        count, seconds = parse_rate(rate) if rate is not None else (None, None)
        position, default = _key_parameter(stage, signature, key) if key is not None else (None, None)
        return cls(stage, concurrency, count, seconds, key, position, default)

    def key_value(self, args: list[Any] | tuple[Any, ...], kwargs: dict[str, Any]) -> str | int | None:
        """The value of the key argument in a call's arguments; TypeError unless
        it is a string or an integer."""
        if self.key is None:
            return None
        if self.key in kwargs:
            value = kwargs[self.key]
        elif self.key_position is not None and self.key_position < len(args):
            value = args[self.key_position]
        else:
            value = self.key_default
        if value is not None and (not isinstance(value, (str, int)) or isinstance(value, bool)
                                  or len(json.dumps(value)) > MAX_KEY_LENGTH):
            raise TypeError(f"{self.stage}(): argument {self.key!r} is the key of the stage's "
                            f"limit ({self.describe()}): give a string or an integer of at most "
                            f"{MAX_KEY_LENGTH} characters, not {_shown(value)}")
        return value

    def gate(self, args: list[Any] | tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """The gate a call with these arguments goes through (TypeError as key_value)."""
        if self.key is None:
            return self.stage
        return f"{self.stage}:{json.dumps(self.key_value(args, kwargs))}"

    def describe(self) -> str:
        """The limits as a person reads them: "concurrency 2, 5 per 1 s, per customer_id"."""
        parts = []
        if self.concurrency is not None:
            parts.append(f"concurrency {self.concurrency}")
        if self.rate_count is not None:
            parts.append(f"{self.rate_count} per {self.rate_seconds:g} s")
        if self.key is not None:
            parts.append(f"per {self.key}")
        return ", ".join(parts)


def stage_of(gate: str) -> str:
    """The stage a gate belongs to (its name up to the key's value; see StageLimit.gate)."""
    return gate.partition(":")[0]


def key_of(gate: str | None) -> str | None:
    """The key's value in a gate's name, as JSON (None for a stage's one gate)."""
    if gate is None:
        return None
    return gate.partition(":")[2] or None


def parse_rate(rate: Any) -> tuple[int, float]:
    """"5/s" as (5, 1.0); ValueError for anything else."""
    match = RATE.match(rate) if isinstance(rate, str) else None
    if match is None or int(match.group(1)) < 1:
        raise ValueError(f"rate must read like '5/s', '100/m', '1000/h' or '10/5s' (at least "
                         f"1 call per period), not {rate!r}")
    count, multiple, unit = match.groups()
    seconds = (int(multiple) if multiple else 1) * PERIODS[unit]
    if seconds < 1:
        raise ValueError(f"rate {rate!r} has an empty period")
    return int(count), float(seconds)


def _key_parameter(stage: str, signature: inspect.Signature, key: Any
                   ) -> tuple[int | None, str | int | None]:
    """Where the key argument comes by position, and its usable default."""
    parameter = signature.parameters.get(key) if isinstance(key, str) else None
    if parameter is None or parameter.kind in (inspect.Parameter.VAR_POSITIONAL,
                                               inspect.Parameter.VAR_KEYWORD):
        named = [name for name, p in signature.parameters.items()
                 if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        raise TypeError(f"key={key!r} must name a parameter of {stage}(); it has {named}")
    position = None
    if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
        position = list(signature.parameters).index(key)
    default = parameter.default
    usable = isinstance(default, (str, int)) and not isinstance(default, bool)
    return position, default if usable else None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
