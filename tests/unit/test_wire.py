"""sdk.wire: the status table, queue names, JSON as callplane writes it."""

from __future__ import annotations

import pytest

from sdk.wire import (
    JSON_DEPTH_LIMIT,
    RERUNNABLE_STATUSES,
    TRANSITIONS,
    RunMode,
    Status,
    check_result,
    child_call_id,
    queue_name,
    sources_of,
)

pytestmark = pytest.mark.unit


def test_transitions_allow_only_forward_moves():
    assert set(sources_of(Status.RUNNING)) == {"pending"}
    assert set(sources_of(Status.SUCCEEDED)) == {"running"}
    for terminal in (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED):
        assert TRANSITIONS[terminal] == frozenset() and terminal.is_terminal


def test_only_failed_and_cancelled_calls_run_again():
    assert RERUNNABLE_STATUSES == {Status.FAILED, Status.CANCELLED}
    assert [s for s in Status if s.is_rerunnable] == [Status.FAILED, Status.CANCELLED]
    assert all(s.is_terminal for s in RERUNNABLE_STATUSES)


def test_statuses_read_as_their_values():
    assert f"{Status.PENDING}" == "pending" and str(RunMode.INLINE) == "inline"
    assert Status("failed") is Status.FAILED


def test_queue_names_keep_versions_apart():
    assert queue_name("main", "repo", "a" * 40) == "repo@aaaaaaaaaaaa.main"
    assert queue_name("main", None, None) == "any.main"
    assert queue_name("main", "my repo!", "abc") == "my_repo_@abc.main"


def test_a_child_is_its_parents_call_at_a_position():
    assert child_call_id("p", 0) == child_call_id("p", 0) != child_call_id("p", 1)


def test_a_result_that_is_not_json_says_what_to_return():
    check_result("s", {"a": [1, None, "x"]})
    with pytest.raises(TypeError, match="stage 's' returned a value that is not JSON"):
        check_result("s", {1, 2})
    with pytest.raises(TypeError, match="not JSON"):
        check_result("s", float("nan"))


def test_a_result_deeper_than_the_limit_is_refused_without_recursing():
    value: object = "x"
    for level in range(JSON_DEPTH_LIMIT):
        value = {"k": value} if level % 2 else [value]
    check_result("s", value)  # at the limit: kept
    with pytest.raises(ValueError, match=f"stage 's' returned a value nested more than {JSON_DEPTH_LIMIT}"):
        check_result("s", {"k": value})
    for _ in range(100_000):  # far past the stack: the check itself must not recurse
        value = [value]
    with pytest.raises(ValueError, match="nested more than"):
        check_result("s", value)
