"""The create endpoints' fast path never takes a body the schemas refuse, and takes
each body it does take to the very request the schemas load: on generated bodies
that are valid, nearly valid and wrong in every field."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from controlplane.api.bodies import batch_requests, create_request
from controlplane.schemas import (
    INT_LIMIT,
    MAX_DELAY_SECONDS,
    NEEDS_OFFSET,
    STAGE_LIMIT,
    CallBatchCreateSchema,
    CallCreateSchema,
)

pytestmark = pytest.mark.unit

REFUSED = "refused"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)
ids = st.sampled_from(["a1", "A-b_9", "x" * 64])
bad_ids = st.sampled_from(["x" * 65, "", "bad id", "ok\n", "é", "a\x00"])
texts = st.sampled_from(["w", "worker.1", "x" * 200, "名前"])
bad_texts = st.sampled_from(["x" * 201, "", "a\x00b"])
versions = st.sampled_from(["repo", "v1.2/x_y-z", "x" * 64])
bad_versions = st.sampled_from(["x" * 65, "", "bad version", "v\n"])
stages = st.sampled_from(["noop", "étape.un@x-1", "s" * STAGE_LIMIT])
bad_stages = st.sampled_from(["s" * (STAGE_LIMIT + 1), "", "a b", "<b>", "end\n", "a\x00"])
wrong = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=3)
         | st.lists(st.integers(), max_size=2) | st.just({"x": 1}) | st.sampled_from(["3", 2.0, 2.5]))
arguments = st.fixed_dictionaries({}, optional={
    "args": st.lists(json_values, max_size=3),
    "kwargs": st.dictionaries(st.text(max_size=4), json_values, max_size=3),
})
#: Each field's valid values, and values that are wrong for it or at its edges.
FIELDS = {
    "stage": (stages, bad_stages),
    "id": (ids, bad_ids),
    "idempotency_key": (texts, bad_texts),
    "arguments": (arguments, st.fixed_dictionaries({"extra": st.integers()})
                  | st.fixed_dictionaries({"args": wrong}) | st.fixed_dictionaries({"kwargs": wrong})),
    "parent_stage_run_id": (ids | st.none(), bad_ids),
    "position": (st.sampled_from([0, 1, INT_LIMIT]) | st.none(), st.sampled_from([-1, INT_LIMIT + 1])),
    "parent_attempt": (st.sampled_from([1, 2, INT_LIMIT]) | st.none(),
                       st.sampled_from([0, INT_LIMIT + 1])),
    "max_attempts": (st.sampled_from([1, 2, 100]), st.sampled_from([0, 101])),
    "workflow_run_id": (ids | st.none(), bad_ids),
    "repo_name": (versions | st.none(), bad_versions),
    "commit_hash": (versions | st.none(), bad_versions),
    "run_mode": (st.sampled_from(["inline", "local"]) | st.none(),
                 st.sampled_from(["dispatched", "isolated", "x"])),
    "worker": (texts | st.none(), bad_texts),
    "not_before": (st.sampled_from(["2026-12-03T12:00:00+00:00", "2030-01-01T00:00:00.5-05:00",
                                    "2026-12-03T12:00:00Z"]) | st.none(),
                   st.sampled_from(["2026-12-03T12:00:00", "tomorrow", "2026-13-03T12:00:00Z",
                                    "0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00"])),
    "delay_seconds": (st.sampled_from([0, 0.5, 10, MAX_DELAY_SECONDS]) | st.none(),
                      st.sampled_from([-1, -0.1, MAX_DELAY_SECONDS + 1])),
}


@st.composite
def bodies(draw):
    """A valid body, then, mostly, one thing made wrong: a field's value (wrong
    for it, at its edges, or null), a field dropped, or an unknown one added."""
    body = {"stage": draw(stages)}
    names = draw(st.sampled_from([(), ("id",), ("idempotency_key",)]))
    names += draw(st.sampled_from([(), ("repo_name", "commit_hash")]))
    names += draw(st.sampled_from([(), ("run_mode", "worker")]))
    names += draw(st.sampled_from([(), ("not_before",), ("delay_seconds",),
                                   ("not_before", "delay_seconds")]))
    names += draw(st.sampled_from([(), ("parent_stage_run_id",),
                                   ("parent_stage_run_id", "position", "parent_attempt")]))
    names += tuple(draw(st.lists(st.sampled_from(["arguments", "max_attempts", "workflow_run_id"]),
                                 unique=True)))
    for name in names:
        body[name] = draw(FIELDS[name][0].filter(lambda value: value is not None))
    spoil = draw(st.sampled_from([None, "unknown", *sorted(FIELDS)]))
    if spoil == "unknown":
        body["unknown"] = 1
    elif spoil is not None:
        how = draw(st.sampled_from(["bad", "wrong", "null", "drop"]))
        if how == "drop":
            body.pop(spoil, None)
        else:
            body[spoil] = draw({"bad": FIELDS[spoil][1], "wrong": wrong, "null": st.none()}[how])
    return body


def loaded(schema, body):
    try:
        return schema.load(body)
    except ValidationError:
        return REFUSED


@settings(max_examples=800, deadline=None)
@given(bodies())
def test_a_create_body_the_fast_path_takes_loads_the_same_through_the_schema(body):
    """(And the schemas load what the fast path takes: the opposite is slower, not wrong.)"""
    fast = create_request(json.dumps(body).encode())
    if fast is not None:
        assert loaded(CallCreateSchema(), body) == fast


@settings(max_examples=150, deadline=None)
@given(st.lists(bodies(), max_size=4))
def test_a_batch_the_fast_path_takes_loads_the_same_through_the_schema(calls):
    fast = batch_requests(json.dumps({"calls": calls}).encode())
    if fast is not None:
        assert loaded(CallBatchCreateSchema(), {"calls": calls}) == fast


def test_the_fast_path_takes_the_bodies_clients_send():
    assert create_request(b'{"stage": "noop", "id": "a1", "arguments": {"args": [1, {"k": [2.5]}]}, '
                          b'"repo_name": "r", "commit_hash": "c", "max_attempts": 3}') is not None
    big = create_request(b'{"stage": "noop", "arguments": {"args": [' + b"9" * 4300 + b"]}}")
    assert big is not None and big.arguments.args == [int("9" * 4300)]
    assert batch_requests(b'{"calls": [{"stage": "noop"}, {"stage": "b", "position": 0, '
                          b'"parent_stage_run_id": "p", "parent_attempt": 1}]}') is not None


def test_a_delayed_body_takes_the_fast_path_and_a_time_without_offset_is_worded():
    due = create_request(b'{"stage": "noop", "not_before": "2026-12-03T15:00:00+01:00"}')
    assert due.not_before == datetime(2026, 12, 3, 14, tzinfo=timezone.utc)
    assert create_request(b'{"stage": "noop", "delay_seconds": 2.5}').delay_seconds == 2.5
    naive = {"stage": "noop", "not_before": "2026-12-03T15:00:00"}
    assert create_request(json.dumps(naive).encode()) is None
    with pytest.raises(ValidationError) as refused:
        CallCreateSchema().load(naive)
    assert refused.value.messages == {"not_before": [NEEDS_OFFSET]}
    with pytest.raises(ValidationError) as both:
        CallCreateSchema().load({"stage": "noop", "not_before": "2026-12-03T15:00:00Z",
                                 "delay_seconds": 1})
    assert "not both" in str(both.value.messages["delay_seconds"])


@pytest.mark.parametrize("body", [
    b'{"stage": "noop", "arguments": {"args": [NaN]}}',
    b'{"stage": "noop", "arguments": {"args": [' + b"[" * 150 + b"]" * 150 + b"]}}",
    b'{"stage": "noop", "arguments": {"args": [' + b"9" * 4301 + b"]}}",
    b'{"stage": "noop", "idempotency_key": "\\ud800"}',
    b'{"stage": "noop", "position": 0}',
    b'{"stage": "noop"',
    b'[]',
])
def test_what_the_schemas_must_word_goes_to_them(body):
    """Bodies the control plane refuses: the parser and the schemas say what is wrong."""
    assert create_request(body) is None
