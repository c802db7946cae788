"""The tree under a call reads that subtree only, and lists page without counting
every matching row (SQLite, and PostgreSQL with CALLPLANE_TEST_POSTGRES)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

import pytest

from controlplane.api.paging import PageCount, PagedBlueprint
from controlplane.store import utcnow
from controlplane.store.reads import CallQuery
from sdk.records import Arguments, CallRecord, ErrorRecord, Outcome
from sdk.wire import Status


def insert_run(store, shape: dict[str, list[str]]) -> dict[str, str]:
    """A run whose calls are named by `shape` (parent name: its children's names,
    "root" first): their ids by name. Each call starts and finishes 2 ms later."""
    ids = {name: uuid.uuid4().hex for name in shape.keys() | {c for cs in shape.values() for c in cs}}
    root, now = ids["root"], utcnow()
    records = [CallRecord(ids["root"], "root", Status.PENDING, root_stage_run_id=root,
                          queue="any.s", created_at=now, arguments=Arguments([1, "x"], {"k": [2]}))]
    for parent, children in shape.items():
        records += [CallRecord(ids[child], child, Status.PENDING, parent_stage_run_id=ids[parent],
                               root_stage_run_id=root, position=position, queue="any.s",
                               created_at=now) for position, child in enumerate(children)]
    store.insert(records)
    for record in records:
        store.start(record.id, "w", now)
        store.finish(record.id, Outcome(record.id, record.stage, Status.FAILED, worker="w", attempt=1,
                             started_at=now, finished_at=now + timedelta(milliseconds=2),
                             error=ErrorRecord("E", "broke\nsecond line")))
    return ids


SHAPE = {"root": ["a", "b", "c"], "a": ["a0", "a1"], "b": ["b0"], "b0": ["b00"]}


def test_the_tree_under_a_call_is_that_subtree_exactly(store, api):
    ids = insert_run(store, SHAPE)
    insert_run(store, SHAPE)  # another run beside it
    subtree = store.subtree(ids["b"])
    assert sorted(call.id for call in subtree.calls) == sorted(ids[n] for n in ("b", "b0", "b00"))
    tree = api("GET", f"/api/call/{ids['b']}/tree").json()
    assert [(n["id"], n["depth"]) for n in tree["calls"]] == [
        (ids["b"], 0), (ids["b0"], 1), (ids["b00"], 2)]
    whole = api("GET", f"/api/call/{ids['root']}/tree").json()["calls"]
    assert [n["stage"] for n in whole] == ["root", "a", "a0", "a1", "b", "b0", "b00", "c"]
    node = whole[0]
    assert (node["duration_ms"], node["error"], node["arguments"]) == (2.0, "E: broke", '(1, "x", k=[2])')
    assert datetime.fromisoformat(node["finished_at"]) - datetime.fromisoformat(node["started_at"]) \
        == timedelta(milliseconds=2)
    assert node["created_at"].endswith("+00:00")
    assert store.subtree("no-such-call") is None


def test_a_leaf_is_its_own_subtree(store):
    ids = insert_run(store, SHAPE)
    assert [call.id for call in store.subtree(ids["b00"]).calls] == [ids["b00"]]


def children_of(store, parent: str, count: int) -> None:
    now = utcnow()
    store.insert([CallRecord(uuid.uuid4().hex, "s", Status.PENDING, parent_stage_run_id=parent,
                             root_stage_run_id=parent, position=i, queue="any.s",
                             created_at=now + timedelta(milliseconds=i)) for i in range(count)])


def test_a_page_counts_only_up_to_its_limit(store):
    parent = insert_run(store, {"root": []})["root"]
    children_of(store, parent, 5)
    query = CallQuery(parent_stage_run_id=parent)
    calls, total = store.list(query, 0, 2, count_limit=1)
    assert len(calls) == 2 and total is None  # more than counted: a next page exists
    assert store.list(query, 0, 2, count_limit=3)[1] == 5
    assert store.list(query, 4, 2, count_limit=1)[1] == 5  # the last page counts itself
    assert store.list(query, 10, 2, count_limit=1) == ([], 5)
    assert store.list(query)[1] == 5  # no limit: an exact count


def pagination(response) -> dict:
    return json.loads(response.headers["X-Pagination"])


def test_the_api_says_whether_a_next_page_follows(store, api):
    parent = insert_run(store, {"root": []})["root"]
    children_of(store, parent, 5)
    params = {"parent_stage_run_id": parent, "page_size": 2}
    first = pagination(api("GET", "/api/calls", params=params))
    assert (first["total"], first["next_page"]) == (5, 2)
    last = pagination(api("GET", "/api/calls", params={**params, "page": 3}))
    assert last["total"] == 5 and "next_page" not in last


@pytest.mark.unit
def test_an_uncounted_page_has_a_next_page_and_no_total():
    header = PagedBlueprint._make_pagination_metadata(2, 10, PageCount(None))
    assert header == {"page": 2, "first_page": 1, "next_page": 3, "previous_page": 1}
    assert PagedBlueprint._make_pagination_metadata(1, 10, PageCount(3))["total"] == 3
