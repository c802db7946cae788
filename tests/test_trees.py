"""Call trees and runs over REST and in the CLI: one query for a whole run, a
subtree under any call, runs filtered and paged."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta, timezone

import msgspec
import pytest
from click.testing import CliRunner

from controlplane.cli import main
from controlplane.trees import ARGUMENTS_PREVIEW_CHARS, tree_nodes
from sdk.records import Arguments, CallRecord, ErrorRecord
from sdk.wire import RunMode, Status
from tests.workflows import sample


def test_the_tree_of_a_run_lists_every_call_depth_first(runner, api):
    handle = sample.nested.submit(3)
    assert handle.result(timeout=30) == 3
    tree = api("GET", f"/api/call/{handle.id}/tree").json()
    assert [(n["stage"], n["depth"], n["status"]) for n in tree["calls"]] == [
        ("nested", depth, "succeeded") for depth in range(4)]
    assert all(n["duration_ms"] is not None and n["worker"] for n in tree["calls"])
    below = api("GET", f"/api/call/{tree['calls'][2]['id']}/tree").json()["calls"]
    assert [n["depth"] for n in below] == [0, 1]  # the subtree under a call
    assert api("GET", "/api/call/nosuchcall/tree").status_code == 404


def test_a_tree_node_summarises_its_error(runner, api):
    handle = sample.survives_child_failure.submit()
    handle.result(timeout=30)
    nodes = api("GET", f"/api/call/{handle.id}/tree").json()["calls"]
    assert nodes[1]["error"] == "ValueError: child broke"


@pytest.mark.unit
def test_tree_nodes_keep_children_in_call_order():
    now = datetime.now(timezone.utc)

    def call(call_id, stage, parent=None, position=None):
        return CallRecord(call_id, stage, Status.SUCCEEDED, parent_stage_run_id=parent,
                          position=position, worker="w", run_mode=RunMode.INLINE, created_at=now,
                          started_at=now, finished_at=now + timedelta(milliseconds=2),
                          error=ErrorRecord("E", "first line\nsecond"))

    calls = [call("r", "root"), *(call(f"c{p}", "c", "r", p) for p in (2, 0, 1)),
             call("g", "g", "c0", 0)]
    nodes = tree_nodes(calls, "r")
    assert [(n.id, n.depth) for n in nodes] == [("r", 0), ("c0", 1), ("g", 2), ("c1", 1), ("c2", 1)]
    assert (nodes[0].duration_ms, nodes[0].error) == (2.0, "E: first line")


@pytest.mark.unit
def test_a_tree_node_shows_its_arguments_as_a_call_writes_them_shortened():
    short = CallRecord("a", "s", Status.PENDING, arguments=Arguments([1, "x", None], {"key": [2]}))
    assert tree_nodes([short], "a")[0].arguments == '(1, "x", null, key=[2])'
    long = CallRecord("b", "s", Status.PENDING, arguments=Arguments(["y" * 500], {}))
    shown = tree_nodes([long], "b")[0].arguments
    assert len(shown) == ARGUMENTS_PREVIEW_CHARS and shown.startswith('("yyy') and shown[-1] == "…"


def test_runs_are_listed_newest_first_filtered_and_paged(runner, api):
    since = (datetime.now(timezone.utc) - timedelta(seconds=1)).isoformat()
    first = sample.add.submit(1, 2)
    time.sleep(0.01)
    second = sample.add.submit(3, 4)
    runner.gather(first, second)
    sample.fan_in(2)  # a run whose children are not runs
    page = api("GET", "/api/runs", params={"stage": "add", "since": since, "page_size": 1})
    assert [run["id"] for run in page.json()] == [second.id]
    assert '"total": 2' in page.headers["X-Pagination"]
    fan_ins = api("GET", "/api/runs", params={"stage": "fan_in", "since": since}).json()
    assert len(fan_ins) == 1 and fan_ins[0]["parent_stage_run_id"] is None
    failed = api("GET", "/api/runs", params={"status": "failed", "stage": "add", "since": since})
    assert failed.json() == []
    assert api("GET", "/api/runs", params={"since": "yesterday"}).status_code == 422


def test_the_cli_lists_runs_and_shows_a_call_and_its_tree(runner, server_url):
    handle = sample.nested.submit(1)
    handle.result(timeout=30)
    cli = CliRunner()
    listed = cli.invoke(main, ["calls", "--server-url", server_url, "list", "--stage", "nested"])
    assert listed.exit_code == 0 and f"id={handle.id}" in listed.output
    line = next(line for line in listed.output.splitlines() if handle.id in line)
    assert re.search(r"waited +\d+\.\d{3}s  ran +\d+\.\d{3}s  nested", line), line
    as_json = cli.invoke(main, ["calls", "--server-url", server_url, "list", "--json"])
    runs = [json.loads(line) for line in as_json.output.splitlines()]
    mine = next(run for run in runs if run["id"] == handle.id)
    assert mine["ran_seconds"] >= 0 and mine["waited_seconds"] >= 0
    tree = cli.invoke(main, ["calls", "--server-url", server_url, "tree", handle.id])
    assert tree.exit_code == 0
    lines = tree.output.splitlines()
    assert lines[0].startswith("nested  [succeeded]") and lines[1].startswith("  nested  [succeeded]")
    shown = cli.invoke(main, ["calls", "--server-url", server_url, "show", handle.id])
    assert shown.exit_code == 0 and '"result": 1' in shown.output
    missing = cli.invoke(main, ["calls", "--server-url", server_url, "show", "nosuchcall"])
    assert missing.exit_code != 0 and "no call with id" in missing.output


def test_a_tree_of_thousands_of_calls_costs_the_same_few_queries_as_a_small_one(
    database_url, redis_url
):
    """The tree endpoint reads a run in one indexed query (and its earlier attempts in
    one more), whatever its size."""
    import uuid

    from sqlalchemy import event

    from controlplane.app import create_app, services_of
    from controlplane.store import utcnow
    from sdk.settings import Settings

    app = create_app(Settings(database_url=database_url, redis_url=redis_url))
    store = services_of(app).store

    def run_of(size: int) -> str:
        root = uuid.uuid4().hex
        first = CallRecord(root, "main", Status.RUNNING, root_stage_run_id=root, queue="any.main",
                           created_at=utcnow())
        store.insert([first] + [
            msgspec.structs.replace(first, id=uuid.uuid4().hex, stage="child",
                                    status=Status.SUCCEEDED, parent_stage_run_id=root, position=i)
            for i in range(size)
        ])
        return root

    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute",
                 lambda _conn, _cursor, sql, *_rest: statements.append(sql))
    client = app.test_client()
    counts = {}
    for size in (3, 3000):
        root = run_of(size)
        statements.clear()
        answer = client.get(f"/api/call/{root}/tree")
        assert answer.status_code == 200 and len(answer.json["calls"]) == size + 1
        counts[size] = len(statements)
    assert counts[3000] == counts[3] <= 3  # the call asked for, its run, their earlier attempts
    if store.engine.dialect.name == "sqlite":
        with store.engine.connect() as conn:
            plan = conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT * FROM stage_runs WHERE root_stage_run_id = 'x'"
            ).fetchall()
            attempts = conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT * FROM call_attempts JOIN stage_runs"
                " ON stage_runs.id = call_attempts.call_id WHERE root_stage_run_id = 'x'"
            ).fetchall()
        assert "INDEX" in str(plan)
        assert "SCAN" not in str(attempts)
    services_of(app).stop()
