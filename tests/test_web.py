"""The web view in a real headless browser (Debian's chromium, driven by Playwright),
against a control plane that requires a token: sign in, open a failed run, see its
tree and timeline, retry it from the page and watch it succeed.

The run page's screenshots are kept in the test's output folder (its path is
printed) and, with CALLPLANE_SCREENSHOTS=DIR, copied to DIR.
"""

from __future__ import annotations

import os
import re
import shutil
from datetime import datetime
from pathlib import Path

import pytest
import requests

from controlplane.local_cluster import start_worker, stop, wait_until
from tests.conftest import ROOT, TEST_COMMIT, control_plane_with_token

TOKEN = "web-view-token"
WEB = ROOT / "tests" / "workflows" / "web.py"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: CI sets this, so a missing browser fails the run instead of skipping the test.
REQUIRED = os.environ.get("CALLPLANE_REQUIRE_BROWSER") == "1"
#: Chromium on a machine without a display, a GPU or an open network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def guarded_cluster(env, redis_url, tmp_path_factory):
    """A control plane with a token, and a worker of the report workflow that sends it."""
    with control_plane_with_token(env, TOKEN, tmp_path_factory.mktemp("web")) as server_url:
        worker = start_worker(server_url, redis_url, WEB, "tests", TEST_COMMIT,
                              {**env, "CALLPLANE_TOKEN": TOKEN})
        try:
            yield server_url
        finally:
            stop(worker)


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        message = "chromium is not installed (Debian: apt-get install chromium)"
        if REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    try:
        from playwright import sync_api
    except ImportError:
        if REQUIRED:
            raise
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser, tmp_path):
    context = browser.new_context(viewport={"width": 1500, "height": 760})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def failed_report_run(server_url: str, flag: Path) -> str:
    """Run the report workflow while its downstream is down: the run fails."""
    from sdk.caller import RemoteCaller
    from sdk.client import ControlPlaneClient
    from sdk.context import CallContext
    from sdk.errors import StageFailed
    from tests.workflows import web

    client = ControlPlaneClient(server_url, token=TOKEN)
    web.runner.attach(client, RemoteCaller(client), CallContext())
    handle = web.report.submit(str(flag))
    with pytest.raises(StageFailed, match="refused the upload"):
        handle.result(timeout=60)
    return handle.id


def settled_run(server_url: str) -> str:
    """A run of 10,054 calls: 100 customers, 101 charges each, two cards declined."""
    from sdk.caller import RemoteCaller
    from sdk.client import ControlPlaneClient
    from sdk.context import CallContext
    from sdk.errors import StageFailed
    from tests.workflows import web

    client = ControlPlaneClient(server_url, token=TOKEN)
    web.runner.attach(client, RemoteCaller(client), CallContext())
    handle = web.settle.submit(100, 101, [[70, 50], [88, 3]])
    with pytest.raises(StageFailed, match=r"customers \[70, 88\] could not be settled"):
        handle.result(timeout=300)
    return handle.id


def keep_screenshot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("CALLPLANE_SCREENSHOTS"):
        target = Path(os.environ["CALLPLANE_SCREENSHOTS"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / name)
    print(f"screenshot: {path}")
    return path


def sign_in(page, server_url: str, next_path: str) -> None:
    page.goto(server_url + next_path)
    assert "/login" in page.url  # no session yet: the page asks for the token
    page.fill("input[name=token]", "not-the-token")
    page.click("form.login button")
    assert "not this control plane's token" in page.text_content("main")
    page.fill("input[name=token]", TOKEN)
    page.click("form.login button")
    page.wait_for_url(server_url + next_path)


def test_a_failed_run_is_retried_from_its_page_and_succeeds(guarded_cluster, page, tmp_path):
    flag = tmp_path / "downstream-is-up"
    run_id = failed_report_run(guarded_cluster, flag)
    sign_in(page, guarded_cluster, "/")

    # The runs list shows the failed run; its row opens the run page.
    row = page.locator(f"#runs tr[data-call-id='{run_id}']")
    assert "failed" in row.text_content()
    cells = row.locator("td").all_text_contents()
    assert cells[3].endswith(("ms", " s")) and cells[4].endswith(("ms", " s"))  # waited, ran
    row.locator("a").click()
    page.wait_for_url(f"{guarded_cluster}/calls/{run_id}")

    # The tree: report, extract, four squares, publish; the failure is shown where it happened.
    page.wait_for_selector(f"#tree .row[data-call-id='{run_id}']")
    rows = page.locator("#tree .row")
    assert rows.count() == 7
    stages = rows.locator(".stage-name").all_text_contents()
    assert stages == ["report", "extract", "square", "square", "square", "square", "publish"]
    statuses = [row.get_attribute("data-status") for row in rows.all()]
    assert statuses == ["failed", "succeeded", "succeeded", "succeeded", "succeeded", "succeeded",
                        "failed"]
    assert rows.locator(".bar").count() >= 7  # every call that ran has its bar on the timeline
    publish = rows.nth(6)
    publish.click()
    page.wait_for_selector(f"#details[data-call-id='{publish.get_attribute('data-call-id')}']")
    error = page.text_content("#detail-error")
    assert "ConnectionError: the report store refused the upload" in error
    assert "Traceback" in error and "web.py" in error
    assert "30" in page.text_content("#detail-arguments")  # the sum of the squares it was given
    assert page.is_enabled("#retry") and page.is_disabled("#cancel")
    keep_screenshot(page, tmp_path, "run-failed.png")

    # Someone fixes the downstream, then retries the run from its page: the run goes
    # again as attempt 2; what succeeded returns its recorded result, publish runs again.
    flag.touch()
    rows.first.click()
    page.wait_for_selector(f"#details[data-call-id='{run_id}']")
    page.click("#retry")
    page.wait_for_selector(f"#tree .row[data-call-id='{run_id}'][data-status='succeeded']",
                           timeout=60_000)
    page.wait_for_selector(f"#details[data-call-id='{run_id}'][data-status='succeeded']")
    assert '"published": 30' in page.text_content("#detail-result")
    assert "attempt 1 failed" in page.text_content("#detail-attempts")
    assert page.is_disabled("#retry")
    keep_screenshot(page, tmp_path, "run-retried.png")

    # The same run in rq-dashboard: its job is the call, under the same id.
    page.goto(f"{guarded_cluster}/rq/0/view/job/{run_id}")
    page.get_by_text("callplane stage report").first.wait_for()
    assert run_id in page.text_content("body")

    answer = requests.get(f"{guarded_cluster}/api/call/{run_id}/tree", timeout=10,
                          headers={"Authorization": f"Bearer {TOKEN}"}).json()["calls"]
    by_stage = {node["stage"]: node for node in answer}
    assert by_stage["report"]["attempt"] == 2
    assert by_stage["publish"]["status"] == "succeeded"
    assert by_stage["extract"]["attempt"] == 1  # not run again


#: Times one interaction in the page: from the event to the frame that shows it.
TIMED = """async ([selector, action]) => {
  const target = document.querySelector(selector);
  const began = performance.now();
  if (action === "click") target.click();
  else if (action === "bottom") target.scrollTop = target.scrollHeight;
  else { const [value, kind] = action; target.value = value; target.dispatchEvent(new Event(kind)); }
  await new Promise((done) => requestAnimationFrame(() => setTimeout(done)));
  return performance.now() - began;
}"""


def test_a_run_of_10000_calls_opens_on_its_first_failure_and_answers_at_once(
    guarded_cluster, page, tmp_path
):
    run_id = settled_run(guarded_cluster)
    sign_in(page, guarded_cluster, "/")
    page.goto(f"{guarded_cluster}/calls/{run_id}")

    # Usable within 2 s: the first failure's root cause selected, in view, its details open.
    failed = page.locator("#tree .row.selected[data-status='failed']")
    failed.wait_for()
    shown_ms = page.evaluate("performance.getEntriesByName('callplane:run-shown')[0].startTime")
    assert shown_ms < 2000, f"the run page showed its first failure after {shown_ms:.0f} ms"
    assert failed.locator(".stage-name").text_content() == "charge_card"
    assert failed.locator(".args").text_content() == "(70, 50, true)"
    row, pane = failed.bounding_box(), page.locator("#tree-rows").bounding_box()
    assert pane["y"] <= row["y"] and row["y"] + row["height"] <= pane["y"] + pane["height"]
    page.wait_for_selector(f"#details[data-call-id='{failed.get_attribute('data-call-id')}']")
    assert "card of customer 70 declined charge 50" in page.text_content("#detail-error")
    assert "10,054 calls: 5 failed, 10,049 succeeded" in page.text_content("#summary")

    # Many siblings of a stage read as one row until opened; only rows on screen exist.
    groups = page.locator("#tree .row.group")
    assert "101 × charge_card: 101 succeeded" in groups.first.text_content()
    assert page.locator("#tree .row").count() < 100
    keep_screenshot(page, tmp_path, "run-10054-calls.png")

    def rows_now() -> int:  # how many rows the tree has, drawn or not (28 px each)
        return page.evaluate("parseInt(document.getElementById('tree-canvas').style.height) / 28")

    # Each interaction is answered (drawn) within 200 ms.
    timings = {}
    before = rows_now()
    timings["open a group"] = page.evaluate(TIMED, ["#tree .row.group .toggle", "click"])
    assert rows_now() == before + 101
    timings["scroll to the end"] = page.evaluate(TIMED, ["#tree-rows", "bottom"])
    drawn = page.locator("#tree .row")
    assert "101 × charge_card" in drawn.last.text_content()  # the last customer's charges
    assert drawn.nth(drawn.count() - 2).locator(".args").text_content() == "(99, 101, [])"
    timings["filter by status"] = page.evaluate(TIMED, ["#status-filter", ["failed", "change"]])
    assert page.text_content("#matching") == "5 matching"
    calls = page.locator("#tree .row[data-call-id]").all()
    assert {row.get_attribute("data-status") for row in calls} == {"failed"} and len(calls) == 5
    timings["search"] = page.evaluate(TIMED, ["#search", ["charge_card", "input"]])
    assert page.text_content("#matching") == "2 matching"
    timings["search by id"] = page.evaluate(TIMED, ["#search", [run_id[:10], "input"]])
    assert page.text_content("#matching") == "1 matching"
    page.select_option("#status-filter", "")
    timings["clear the search"] = page.evaluate(TIMED, ["#search", ["", "input"]])
    assert page.text_content("#matching") == ""
    timings["fold the run"] = page.evaluate(TIMED, [f"#tree .row[data-call-id='{run_id}'] .toggle", "click"])
    assert rows_now() == 1
    assert max(timings.values()) < 200, timings
    print(f"run page: first failure shown at {shown_ms:.0f} ms; interactions (ms):",
          {name: round(ms, 1) for name, ms in timings.items()})


def test_the_api_page_and_rq_dashboard_open_after_signing_in(guarded_cluster, page):
    sign_in(page, guarded_cluster, "/api/docs")
    page.get_by_text("/api/call/{call_id}/tree", exact=True).wait_for()
    assert page.locator("button.authorize").count() == 1
    page.goto(guarded_cluster + "/rq/")
    page.locator("a.navbar-brand", has_text="RQ-dashboard").wait_for()  # its page, not the sign-in
    assert page.url == guarded_cluster + "/rq/"
    page.goto(guarded_cluster + "/rq/0/view/workers")
    page.wait_for_selector("td:has-text('worker-')")


def test_the_runs_page_says_what_was_set_aside_and_lists_schedules_and_limits(
        guarded_cluster, page, redis_url):
    from sdk.caller import RemoteCaller
    from sdk.client import ControlPlaneClient
    from sdk.context import CallContext
    from sdk.transport import Transport
    from sdk.transport.keys import EVENTS_STREAM
    from tests.workflows import web

    # A report no recorder can read: it is set aside, and the runs page says so.
    Transport.from_url(redis_url).redis.xadd(EVENTS_STREAM,
                                            {"kind": "finish", "id": "nobody", "body": "{not json"})
    sign_in(page, guarded_cluster, "/")
    page.wait_for_selector("#set-aside:not([hidden])")
    assert "could not be recorded (callplane recorder dead-letters)" in page.text_content("#set-aside")

    # The schedule the worker registered from its workflow file, with its next fire.
    row = page.locator("#schedules tr[data-schedule='hourly-extract']")
    row.wait_for()
    cells = row.locator("td").all_text_contents()
    assert cells[:4] == ["hourly-extract", "extract", "every 3600 s", "active"]
    assert cells[4]  # its next fire, an hour after the worker registered it

    # A limited stage, with its calls per key value: one running, one held back.
    client = ControlPlaneClient(guarded_cluster, token=TOKEN)
    web.runner.attach(client, RemoteCaller(client), CallContext())
    handles = [web.per_tenant.submit("acme", 30) for _ in range(2)]
    row = page.locator("#limits tr[data-limit='per_tenant'][data-key='\"acme\"']")
    row.wait_for(timeout=15_000)
    assert row.locator("td").all_text_contents() == [
        "per_tenant", "concurrency 1, per tenant", 'tenant = "acme"', "1", "1"]
    for handle in handles:
        client.request("POST", f"/api/call/{handle.id}/cancel")


def test_a_run_waiting_for_an_event_says_so_and_why_on_the_runs_and_run_pages(guarded_cluster, page):
    from sdk.caller import RemoteCaller
    from sdk.client import ControlPlaneClient
    from sdk.context import CallContext
    from tests.workflows import web

    client = ControlPlaneClient(guarded_cluster, token=TOKEN)
    web.runner.attach(client, RemoteCaller(client), CallContext())
    handle = web.awaits_approval.submit("approval:web")
    wait_until(lambda: client.request("GET", f"/api/call/{handle.id}").get("waiting_for"),
               "the run waiting for its event")
    sign_in(page, guarded_cluster, "/")
    row = page.locator(f"#runs tr[data-call-id='{handle.id}']")
    row.wait_for()
    assert row.locator("td").nth(3).text_content() == "waiting for event approval:web"
    page.goto(f"{guarded_cluster}/calls/{handle.id}")
    page.wait_for_selector("#tree .row")
    assert "waiting for event approval:web" in page.text_content("#tree")
    page.wait_for_selector("#why:not([hidden])")  # why the run is not finished
    assert page.text_content("#why-chain") == "awaits_approval pending waits for event approval:web"
    client.send_event("approval:web", {"approved": True})
    assert handle.result(timeout=30) == {"approved": True}


def test_the_runs_page_shows_the_last_hour_of_throughput_and_latency(guarded_cluster, page):
    from sdk.caller import RemoteCaller
    from sdk.client import ControlPlaneClient
    from sdk.context import CallContext
    from tests.workflows import web

    client = ControlPlaneClient(guarded_cluster, token=TOKEN)
    web.runner.attach(client, RemoteCaller(client), CallContext())
    assert [web.square.submit(i).result(timeout=30) for i in range(5)] == [0, 1, 4, 9, 16]
    sign_in(page, guarded_cluster, "/")
    page.wait_for_function(
        "document.querySelectorAll('#finished-chart rect.finished').length === 60 && "
        "[...document.querySelectorAll('#finished-chart rect.finished')]"
        ".some(bar => Number(bar.getAttribute('height')) > 0)", timeout=15_000)
    summary = page.text_content("#throughput-summary")
    assert re.fullmatch(r"Backlog \d+ on \d+ queue\(s\), \d+ delayed, \d+ held by limits; "
                        r"\d+ worker\(s\) alive; last hour: \d+ call\(s\) finished; latest minute "
                        r"p50 [\d.]+ (ms|s), p95 [\d.]+ (ms|s)", summary), summary
    assert page.locator("#latency-chart polyline.p95").get_attribute("points")


def test_a_delayed_call_and_a_sleeping_run_say_when_they_are_due(guarded_cluster, page):
    from sdk.caller import RemoteCaller
    from sdk.client import ControlPlaneClient
    from sdk.context import CallContext
    from tests.workflows import web

    client = ControlPlaneClient(guarded_cluster, token=TOKEN)
    web.runner.attach(client, RemoteCaller(client), CallContext())
    delayed, sleeper = web.square.options(delay=600).submit(7), web.naps.submit(600)
    try:
        wait_until(lambda: (client.request("GET", f"/api/call/{sleeper.id}").get("waiting_for")
                            or {}).get("kind") == "sleep", "the run asleep")
        due = client.request("GET", f"/api/call/{delayed.id}")["not_before"]
        until = client.request("GET", f"/api/call/{sleeper.id}")["waiting_for"]["until"]
        (node,) = client.request("GET", f"/api/call/{delayed.id}/tree")["calls"]
        assert node["waiting_for"]["kind"] == "delay"
        assert datetime.fromisoformat(node["waiting_for"]["until"]) == datetime.fromisoformat(due)
        sign_in(page, guarded_cluster, "/")
        shown = {handle.id: f"{words} {page.evaluate('iso => new Date(iso).toLocaleString()', iso)}"
                 for handle, words, iso in ((delayed, "due", due), (sleeper, "sleeping until", until))}
        for call_id, text in shown.items():  # on the runs page, then on the run's own
            page.goto(f"{guarded_cluster}/")
            row = page.locator(f"#runs tr[data-call-id='{call_id}']")
            row.wait_for()
            assert row.locator("td").nth(3).text_content() == text
            page.goto(f"{guarded_cluster}/calls/{call_id}")
            page.wait_for_selector(f"#tree .row[data-call-id='{call_id}']")
            assert text in page.text_content("#tree")
    finally:
        for handle in (delayed, sleeper):
            client.request("POST", f"/api/call/{handle.id}/cancel")
