"""The web view in a real headless browser (Debian's chromium, driven by Playwright),
against a control plane that requires a token: sign in, open a failed run, see its
tree and timeline, retry it from the page and watch it succeed.

The run page's screenshots are kept in the test's output folder (its path is
printed) and, with CALLPLANE_SCREENSHOTS=DIR, copied to DIR.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import requests

from controlplane.local_cluster import start_worker, stop
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
    page.wait_for_selector(f"#tree tr[data-call-id='{run_id}']")
    rows = page.locator("#tree tbody tr")
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
    page.wait_for_selector(f"#tree tr[data-call-id='{run_id}'][data-status='succeeded']",
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


def test_the_api_page_and_rq_dashboard_open_after_signing_in(guarded_cluster, page):
    sign_in(page, guarded_cluster, "/api/docs")
    page.get_by_text("/api/call/{call_id}/tree", exact=True).wait_for()
    assert page.locator("button.authorize").count() == 1
    page.goto(guarded_cluster + "/rq/")
    page.locator("a.navbar-brand", has_text="RQ-dashboard").wait_for()  # its page, not the sign-in
    assert page.url == guarded_cluster + "/rq/"
    page.goto(guarded_cluster + "/rq/0/view/workers")
    page.wait_for_selector("td:has-text('worker-')")


def test_the_runs_page_says_what_was_set_aside(guarded_cluster, page, redis_url):
    from sdk.transport import Transport
    from sdk.transport.keys import EVENTS_STREAM

    # A report no recorder can read: it is set aside, and the runs page says so.
    Transport.from_url(redis_url).redis.xadd(EVENTS_STREAM,
                                            {"kind": "finish", "id": "nobody", "body": "{not json"})
    sign_in(page, guarded_cluster, "/")
    page.wait_for_selector("#set-aside:not([hidden])")
    assert "could not be recorded (callplane recorder dead-letters)" in page.text_content("#set-aside")
