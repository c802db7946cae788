"""The API token: with CALLPLANE_TOKEN set, every request needs it (compared in
constant time, never echoed); the SDK and workers send it from the environment,
so a workflow runs unchanged; an open API beyond loopback is refused."""

from __future__ import annotations

import time
import uuid

import pytest
import requests
from click.testing import CliRunner

from controlplane.auth import LOGIN_ATTEMPTS, LOGIN_WINDOW_SECONDS, SESSION_COOKIE, check_exposure
from controlplane.local_cluster import stop
from sdk.transport import Transport
from tests.conftest import control_plane_with_token, redis_database, start_parallel_workers
from tests.test_events import kept_events
from tests.workflows import parallel

TOKEN = "s3cret-token-for-tests"


@pytest.fixture()
def guarded(env, tmp_path):
    with control_plane_with_token(env, TOKEN, tmp_path) as url:
        yield url


def test_every_route_needs_the_token(guarded):
    body = {"stage": "square", "arguments": {"args": [3], "kwargs": {}}}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        for method, path in (("POST", "/api/call"), ("GET", "/api/runs"),
                             ("GET", "/api/openapi.json")):
            answer = requests.request(method, guarded + path, json=body, headers=headers, timeout=10)
            assert answer.status_code == 401, (method, path, headers)
            assert "Authorization: Bearer" in answer.json()["message"]
            assert TOKEN not in answer.text
    good = {"Authorization": f"Bearer {TOKEN}"}
    assert requests.get(guarded + "/api/runs", headers=good, timeout=10).status_code == 200


def test_sending_an_event_needs_the_token_and_a_refused_one_delivers_nothing(guarded, store):
    key = f"approval:{uuid.uuid4().hex[:12]}"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        answer = requests.post(f"{guarded}/api/events/{key}", json={"approved": True},
                               headers=headers, timeout=10)
        assert answer.status_code == 401, headers
        assert "Authorization: Bearer" in answer.json()["message"] and TOKEN not in answer.text
    assert kept_events(store, key) == []  # neither delivered nor kept
    sent = requests.post(f"{guarded}/api/events/{key}", json={"approved": True}, timeout=10,
                         headers={"Authorization": f"Bearer {TOKEN}"})
    assert sent.status_code == 200 and sent.json()["delivered_to"] is None
    assert kept_events(store, key) == [{"approved": True}]


def test_the_sdk_and_workers_send_the_token_from_the_environment(
    guarded, redis_url, env, monkeypatch
):
    from sdk.caller import RemoteCaller
    from sdk.client import ControlPlaneClient
    from sdk.context import CallContext

    # Workers create children through the guarded control plane, with the token.
    workers = start_parallel_workers(guarded, redis_url, {**env, "CALLPLANE_TOKEN": TOKEN}, 1)
    try:
        monkeypatch.setenv("CALLPLANE_TOKEN", TOKEN)
        client = ControlPlaneClient(guarded)
        parallel.runner.attach(client, RemoteCaller(client), CallContext())
        assert parallel.map_squares(5) == 30
    finally:
        for worker in workers:
            stop(worker)
    monkeypatch.delenv("CALLPLANE_TOKEN")
    from controlplane.cli import main

    refused = CliRunner().invoke(main, ["calls", "--server-url", guarded, "list"])
    assert refused.exit_code != 0 and "401" in refused.output


def test_an_open_api_beyond_loopback_is_refused_unless_asked_for():
    check_exposure(["127.0.0.1", "localhost", "::1"], None, False)
    check_exposure(["0.0.0.0"], "token", False)
    check_exposure(["0.0.0.0"], None, True)
    with pytest.raises(SystemExit, match="without a token"):
        check_exposure(["0.0.0.0"], None, False)


def test_the_server_command_refuses_an_open_api_beyond_loopback():
    from controlplane.cli import main

    refused = CliRunner().invoke(main, ["server", "--host", "0.0.0.0", "--no-migrate"],
                                 env={"CALLPLANE_TOKEN": "", "CALLPLANE_ALLOW_NO_TOKEN": ""})
    assert refused.exit_code != 0 and "CALLPLANE_TOKEN" in refused.output


def test_the_web_view_api_page_and_rq_dashboard_need_the_token_too(guarded):
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    for path in ("/", "/calls/abc", "/api/docs", "/rq/", "/rq/0/view/workers"):
        answer = requests.get(guarded + path, headers=browser, allow_redirects=False, timeout=10)
        assert answer.status_code == 302, path
        assert answer.headers["Location"].startswith("/login?next=")
    for path in ("/rq/0/data/queues.json", "/api/docs/assets/swagger-ui-bundle.js"):
        assert requests.get(guarded + path, timeout=10).status_code == 401, path
    # The sign-in page and its stylesheet are all that is open.
    assert requests.get(guarded + "/static/callplane.css", timeout=10).status_code == 200


def test_signing_in_sets_a_session_cookie_that_is_not_the_token(guarded):
    session = requests.Session()
    wrong = session.post(guarded + "/login", data={"token": "wrong", "next": "/rq/"},
                         allow_redirects=False, timeout=10)
    assert wrong.status_code == 401 and not session.cookies and TOKEN not in wrong.text
    right = session.post(guarded + "/login", data={"token": TOKEN, "next": "/rq/"},
                         allow_redirects=False, timeout=10)
    assert (right.status_code, right.headers["Location"]) == (302, "/rq/")
    cookie = right.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    for path in ("/rq/0/data/queues.json", "/api/runs", "/"):
        assert session.get(guarded + path, timeout=10).status_code == 200, path
    for away in ("//evil.example/", "/\\evil.example", "https://evil.example/", "/\t/evil.example",
                 "/runs\r\nSet-Cookie: x=1"):
        elsewhere = session.post(guarded + "/login", data={"token": TOKEN, "next": away},
                                 allow_redirects=False, timeout=10)
        assert (elsewhere.status_code, elsewhere.headers["Location"]) == (302, "/"), away
    session.post(guarded + "/logout", timeout=10)
    assert session.get(guarded + "/api/runs", timeout=10).status_code == 401


def test_a_signed_in_browser_changes_things_only_from_the_control_planes_pages(guarded):
    session = requests.Session()
    session.post(guarded + "/login", data={"token": TOKEN}, allow_redirects=False, timeout=10)
    retry = guarded + "/api/call/no-such-call/retry"
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                    {"Origin": "http://evil.example"}):
        refused = session.post(retry, headers=headers, timeout=10)
        assert refused.status_code == 403, headers
        assert "own pages" in refused.json()["message"]
    # From its own page the request goes through (to the 404 of a call that does not exist).
    assert session.post(retry, headers={"Sec-Fetch-Site": "same-origin"}, timeout=10).status_code == 404
    assert session.post(retry, headers={"Origin": guarded}, timeout=10).status_code == 404
    # Programs are not browsers: the bearer header needs no origin.
    bearer = {"Authorization": f"Bearer {TOKEN}", "Sec-Fetch-Site": "cross-site"}
    assert requests.post(retry, headers=bearer, timeout=10).status_code == 404


def sign_in(url: str) -> str:
    """A browser's sign-in: its session cookie's value."""
    answer = requests.post(url + "/login", data={"token": TOKEN}, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    return answer.cookies[SESSION_COOKIE]


def test_a_session_ends_when_its_browser_signs_out_and_cannot_be_forged(guarded):
    cookie = sign_in(guarded)
    assert requests.get(guarded + "/api/runs", cookies={SESSION_COOKIE: cookie},
                        timeout=10).status_code == 200
    for forged in ("garbage", "", cookie[:-1], cookie + "x", sign_in(guarded)[:20]):
        answer = requests.get(guarded + "/api/runs", cookies={SESSION_COOKIE: forged}, timeout=10)
        assert answer.status_code == 401, forged
    out = requests.post(guarded + "/logout", cookies={SESSION_COOKIE: cookie},
                        headers={"Sec-Fetch-Site": "same-origin"}, allow_redirects=False, timeout=10)
    assert out.status_code == 302
    # The same cookie, kept by someone after the sign-out: the server has ended it.
    assert requests.get(guarded + "/api/runs", cookies={SESSION_COOKIE: cookie},
                        timeout=10).status_code == 401


def test_an_idle_session_ends_and_one_in_use_goes_on(env, tmp_path):
    with control_plane_with_token({**env, "CALLPLANE_SESSION_IDLE_SECONDS": "2"}, TOKEN,
                                  tmp_path) as url:
        cookie = sign_in(url)
        for _ in range(3):  # in use: each request starts its idle time again
            time.sleep(1)
            assert requests.get(url + "/api/runs", cookies={SESSION_COOKIE: cookie},
                                timeout=10).status_code == 200
        time.sleep(3)
        assert requests.get(url + "/api/runs", cookies={SESSION_COOKIE: cookie},
                            timeout=10).status_code == 401


def test_ten_wrong_sign_ins_from_an_address_hold_it_off(env, redis_url, tmp_path):
    # A Redis database of its own: the hold-off must not reach the other tests' servers.
    own = {**env, "REDIS_URL": redis_database(redis_url, 11)}
    Transport.from_url(own["REDIS_URL"]).redis.flushdb()
    with control_plane_with_token(own, TOKEN, tmp_path) as url:
        for _ in range(LOGIN_ATTEMPTS):
            wrong = requests.post(url + "/login", data={"token": "guess"}, timeout=10)
            assert wrong.status_code == 401
        held = requests.post(url + "/login", data={"token": TOKEN}, allow_redirects=False,
                             timeout=10)
        assert held.status_code == 429 and "Too many sign-in attempts" in held.text
        assert 0 < int(held.headers["Retry-After"]) <= LOGIN_WINDOW_SECONDS
        assert SESSION_COOKIE not in held.cookies
        bearer = {"Authorization": f"Bearer {TOKEN}"}  # programs are not held off
        assert requests.get(url + "/api/runs", headers=bearer, timeout=10).status_code == 200
