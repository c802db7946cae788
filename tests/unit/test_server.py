"""Under granian, X-Forwarded-Proto is believed only from the proxies
FORWARDED_ALLOW_IPS names, as gunicorn does: it decides the cookie's Secure flag."""

from __future__ import annotations

import flask
import pytest

from controlplane.server import SERVERS, ProxyFixFrom, serve
from sdk.settings import Settings

pytestmark = pytest.mark.unit


def scheme_seen(allowed: str, peer: str) -> str:
    app = flask.Flask(__name__)
    app.add_url_rule("/", "scheme", lambda: flask.request.scheme)
    app.wsgi_app = ProxyFixFrom(app.wsgi_app, allowed)  # type: ignore[method-assign]
    client = app.test_client()
    answer = client.get("/", headers={"X-Forwarded-Proto": "https"},
                        environ_overrides={"REMOTE_ADDR": peer})
    return answer.get_data(as_text=True)


def test_a_trusted_proxy_says_the_scheme():
    assert scheme_seen("127.0.0.1,::1", "127.0.0.1") == "https"
    assert scheme_seen("*", "203.0.113.9") == "https"
    assert scheme_seen("10.0.0.2, 10.0.0.3", "10.0.0.3") == "https"


def test_anyone_else_cannot():
    assert scheme_seen("127.0.0.1,::1", "203.0.113.9") == "http"


def test_an_unknown_server_is_refused_before_anything_starts():
    with pytest.raises(ValueError, match="granian, gunicorn"):
        serve(Settings(), server="uwsgi")
    assert SERVERS[0] == "granian"
