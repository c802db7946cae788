"""A tree read again (controlplane.store.tree_reads): the nodes of calls whose rows
have not changed come from the last read, only the changed calls are made again,
and the answer is what a whole read gives. PostgreSQL only: SQLite's rows carry
no versions, and its trees are always read whole."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from controlplane.store import Store, tree_reads, utcnow
from controlplane.store.tree_reads import NodeCache
from controlplane.tables import stage_runs
from controlplane.trees import earlier_of, tree_json, tree_of
from tests.test_store import finish, new_call


@pytest.fixture()
def made(store, monkeypatch):
    """The ids of the calls whose nodes were made from their rows, read by read."""
    if store.nodes is None:
        pytest.skip("SQLite has no row versions: its trees are always read whole")
    made: list[str] = []
    nodes_of = tree_reads.nodes_of

    def counted(rows, steps):
        made.extend(row[0] for row in rows)
        return nodes_of(rows, steps)

    monkeypatch.setattr(tree_reads, "nodes_of", counted)
    return made


def answer(store: Store, call_id: str) -> bytes:
    """The tree endpoint's answer, as `store` reads it."""
    subtree = store.subtree(call_id)
    return tree_json(call_id, tree_of(subtree.calls, call_id, earlier_of(subtree.attempts),
                                      subtree.steps))


def whole(store: Store, call_id: str) -> bytes:
    """The same, read whole by a store that kept nothing."""
    return answer(Store(store.engine), call_id)


def run_of(store: Store, calls: int) -> tuple[str, list[str]]:
    root = new_call(store)
    return root, [new_call(store, root_stage_run_id=root, parent_stage_run_id=root, position=i)
                  for i in range(calls)]


def test_a_tree_read_again_makes_only_the_calls_that_changed(store, made):
    root, children = run_of(store, 6)
    first = answer(store, root)
    assert sorted(made) == sorted([root, *children])
    made.clear()
    assert answer(store, root) == first and made == []

    store.start(children[0], "w1", utcnow())
    assert store.start(children[1], "w1", utcnow())
    assert store.finish(children[1], finish(children[1], worker="w1"))
    added = new_call(store, root_stage_run_id=root, parent_stage_run_id=root, position=6)
    with store.engine.begin() as conn:
        conn.execute(sa.delete(stage_runs).where(stage_runs.c.id == children[2]))
    third = answer(store, root)
    assert sorted(made) == sorted([children[0], children[1], added])
    assert third == whole(store, root) != first

    # The tree under one of its calls, from what the run's read kept.
    expected = whole(store, children[1])
    made.clear()
    assert answer(store, children[1]) == expected and made == []


def test_a_tree_larger_than_what_is_kept_reads_right(store, made):
    root, children = run_of(store, 9)
    small = Store(store.engine)
    small.nodes = NodeCache(capacity=4)
    for _ in range(3):
        assert answer(small, root) == whole(store, root)
        assert len(small.nodes) <= 4
    store.start(children[3], "w1", utcnow())
    assert answer(small, root) == whole(store, root)
