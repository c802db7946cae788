"""Why a call has not finished (GET /api/call/<id>/waits, `callplane calls why`):
the chain from a call down to what holds it up, on the cluster of
tests/cluster.py: queued behind others, delayed, waiting for an event, running on
its worker, waiting on its calls grouped by stage and status."""

from __future__ import annotations

import uuid

import requests
from click.testing import CliRunner

from controlplane.cli import main
from controlplane.local_cluster import wait_until
from tests.workflows import recovery


def waits(server_url: str, call_id: str) -> dict:
    answer = requests.get(f"{server_url}/api/call/{call_id}/waits", timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def why(server_url: str, call_id: str) -> list[str]:
    shown = CliRunner().invoke(main, ["calls", "--server-url", server_url, "why", call_id])
    assert shown.exit_code == 0, shown.output
    return shown.output.splitlines()


def test_queued_calls_say_how_many_are_ahead_and_delayed_ones_until_when(run):
    first, second, third = (recovery.echo.submit(i) for i in range(3))  # no worker yet
    ahead = [waits(run.server_url, handle.id)["reason"] for handle in (first, third)]
    assert [reason["kind"] for reason in ahead] == ["queued", "queued"]
    assert ahead[1]["ahead"] - ahead[0]["ahead"] == 2
    line = f"echo [pending] queued on {ahead[1]['queue']}, {ahead[1]['ahead']} call(s) ahead"
    assert why(run.server_url, third.id) == [f"{line} ({third.id})"]
    later = recovery.echo.options(delay=600).submit("later")
    reason = waits(run.server_url, later.id)["reason"]
    assert reason["kind"] == "delay" and reason["text"].startswith("is delayed until ")
    run.worker()
    assert [handle.result(timeout=30) for handle in (first, second, third)] == [0, 1, 2]
    assert waits(run.server_url, third.id)["reason"]["kind"] == "finished"
    requests.post(f"{run.server_url}/api/call/{later.id}/cancel", timeout=10).raise_for_status()


def test_a_running_call_names_the_calls_it_waits_on_by_stage_and_status(run, tmp_path):
    run.worker()  # one slot: the queued children wait while one naps in the parent's slot
    parent = recovery.tree_of_naps.submit(str(tmp_path / "naps"), 3, 3)
    wait_until(lambda: len(waits(run.server_url, parent.id).get("below", [])) == 2,
               "the parent waiting on its calls")
    chain = waits(run.server_url, parent.id)
    assert chain["reason"]["kind"] == "calls" and chain["reason"]["worker"]
    groups = {(group["stage"], group["status"]): group for group in chain["below"]}
    napping, queued = groups["logged_nap", "running"], groups["logged_nap", "pending"]
    assert napping["count"] == 1 and napping["reason"]["kind"] == "running"
    assert queued["count"] == 3 and len(queued["ids"]) == 3 and queued["id"] == queued["ids"][0]
    assert queued["reason"]["kind"] == "queued" and queued["reason"]["ahead"] == 0
    lines = why(run.server_url, parent.id)
    assert lines[0].startswith("tree_of_naps [running] running on ")
    assert lines[0].endswith(f"waits on 4 call(s) ({parent.id})")
    assert any(line.startswith("  logged_nap ×3 [pending] queued on ") for line in lines[1:])
    assert parent.result(timeout=30) == -1 + 0 + 1 + 2


def test_a_call_waiting_for_an_event_says_for_which(run, tmp_path):
    run.worker()
    key = f"approval:{uuid.uuid4().hex[:8]}"
    waiter = recovery.calls_an_approver.submit(str(tmp_path / "tokens"), key)
    wait_until(lambda: waits(run.server_url, waiter.id)["reason"]["kind"] == "event",
               "the call waiting for its event")
    assert waits(run.server_url, waiter.id)["reason"]["key"] == key
    assert why(run.server_url, waiter.id)[0].startswith(
        f"calls_an_approver [pending] waits for event {key} (")
    requests.post(f"{run.server_url}/api/events/{key}", json="yes", timeout=10).raise_for_status()
    assert waiter.result(timeout=30)[1] == "yes"


def test_no_such_call(run):
    assert requests.get(f"{run.server_url}/api/call/nosuchcall/waits", timeout=10).status_code == 404
