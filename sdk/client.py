"""The control plane's REST API as Python calls, over keep-alive `http.client`.

One connection per thread. `http.client` rather than `requests`: on the per-call
hot path `requests` costs about a millisecond more per request here.
Requests are safe to repeat (a call's id is chosen by the caller, so a repeated
create returns the same call). So a request that met a closed keep-alive
connection is sent again at once on a fresh one, and while the control plane is
unreachable or answers 502-504 (a restart, a deploy), it is sent again with
backoff for up to a minute before the caller hears of it.
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
import uuid
from typing import Any, TypeVar

import msgspec

from sdk.backoff import retry_until
from sdk.errors import ControlPlaneRefused, ControlPlaneUnavailable, DecodeError
from sdk.limits import StageLimit
from sdk.records import (
    CallRecord,
    CallRequest,
    Outcome,
    convert,
    plain,
)
from sdk.schedules import ScheduleDefinition
from sdk.settings import max_body_from_env, token_from_env
from sdk.waits import EventSent, EventWaitRequest, SleepRequest, WaitAnswer, check_event_key
from sdk.wire import dumps

T = TypeVar("T")

#: Seconds to wait for the control plane beyond any `?wait=` the request asks for.
REQUEST_TIMEOUT_SECONDS = 30.0
#: Calls created per request when many are submitted at once (the server takes up to 1,000).
CREATE_BATCH = 500
#: How long a request keeps being retried while the control plane is away.
OUTAGE_SECONDS = 60.0
#: How long a request the server stopped reading waits for the answer it may have sent.
EARLY_ANSWER_SECONDS = 1.0
#: Statuses of a proxy or server that is restarting: worth another try.
TRANSIENT_STATUSES = frozenset({502, 503, 504})


class ControlPlaneClient:
    def __init__(
        self,
        server_url: str,
        timeout: float = REQUEST_TIMEOUT_SECONDS,
        outage_seconds: float = OUTAGE_SECONDS,
        token: str | None = None,
        max_body_bytes: int | None = None,
    ):
        """`token`: the control plane's API token (default: CALLPLANE_TOKEN, if set);
        `max_body_bytes`: the largest body it takes (default: CALLPLANE_MAX_BODY_BYTES,
        else the control plane's default)."""
        parsed = urllib.parse.urlsplit(server_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(
                f"server URL {server_url!r} must look like http://HOST:PORT (e.g. http://localhost:5001)"
            )
        self.server_url = server_url
        self._https = parsed.scheme == "https"
        self._host = parsed.hostname
        self._port = parsed.port
        self._base = parsed.path.rstrip("/")
        self._timeout = timeout
        self._outage_seconds = outage_seconds
        token = token if token is not None else token_from_env()
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}
        self._max_body = max_body_bytes or max_body_from_env()
        self._local = threading.local()
        #: Whether the control plane has answered this client at all: until it
        #: has, an outage is more likely a wrong URL than a restart.
        self.has_answered = False

    # -- the API -----------------------------------------------------------------

    def create_call(self, request: CallRequest, wait: float | None = None) -> CallRecord:
        return self._call_record(self.request("POST", "/api/call", _body(request), wait=wait))

    def create_attempt(self, request: CallRequest) -> tuple[CallRecord, bool]:
        """Create a call; (the call, whether this request started an attempt of it:
        False when the call existed and was returned as it is)."""
        status, call = self.request_with_status("POST", "/api/call", _body(request))
        return self._call_record(call), status == 201

    def create_calls(self, requests: list[CallRequest]) -> list[CallRecord]:
        """Create many calls, a batch per request (one transaction, one Redis round trip)."""
        calls = []
        for start in range(0, len(requests), CREATE_BATCH):
            batch = [_body(request) for request in requests[start:start + CREATE_BATCH]]
            calls += self.request("POST", "/api/calls", {"calls": batch})["calls"]
        return self._answer(calls, list[CallRecord])

    def finished_calls(self, ids: list[str], wait: float, every: bool = False) -> list[CallRecord]:
        """Those of `ids` that have finished, once at least one (with `every`: all) has,
        or after `wait` seconds."""
        body = {"ids": ids, "wait": wait, "every": every}
        answer = self.request("POST", "/api/calls/finished", body, timeout_extra=wait)
        return self._answer(answer["calls"], list[CallRecord])

    def register_schedules(self, schedules: list[ScheduleDefinition], repo_name: str | None,
                           commit_hash: str | None) -> None:
        """Register a workflow file's schedules (a worker does, every lease)."""
        self.request("POST", "/api/schedules", {"schedules": plain(schedules),
                                                "repo_name": repo_name, "commit_hash": commit_hash})

    def register_limits(self, limits: list[StageLimit]) -> None:
        """Register a workflow file's stages' limits (a worker does, every lease)."""
        self.request("POST", "/api/limits", {"limits": plain(limits)})

    def sleep(self, call_id: str, request: SleepRequest) -> WaitAnswer:
        """Sleep in a running call (see workers.children.ChildCaller.sleep)."""
        return self._answer(self.request("POST", f"/api/call/{call_id}/sleep", plain(request)),
                            WaitAnswer)

    def wait_for_event(self, call_id: str, request: EventWaitRequest) -> WaitAnswer:
        """Wait for an event in a running call (see workers.children.ChildCaller.wait_for_event)."""
        return self._answer(self.request("POST", f"/api/call/{call_id}/event", plain(request)),
                            WaitAnswer)

    def send_event(self, key: str, payload: Any) -> EventSent:
        """Send an event to `key`: the call waiting longest for it gets `payload`,
        or the first one that waits for it later. Sent again while the control
        plane is away, it is still one event (its idempotency key)."""
        check_event_key(key)
        once = {"Idempotency-Key": uuid.uuid4().hex}
        return self._answer(self.request("POST", f"/api/events/{key}", payload, headers=once),
                            EventSent)

    def job_key(self) -> str:
        """The key the control plane signs jobs with, for a worker to check them."""
        return self._answer(self.request("GET", "/api/jobs/key"), JobKey).key

    def get_call(self, call_id: str, wait: float | None = None) -> CallRecord:
        return self._call_record(self.request("GET", f"/api/call/{call_id}", wait=wait))

    def finish_call(self, call_id: str, outcome: Outcome) -> CallRecord:
        """Record how a running call ended (status, result, error)."""
        body = {"status": outcome.status.value, "result": outcome.result,
                "error": plain(outcome.error)}
        return self._call_record(self.request("POST", f"/api/call/{call_id}/finish", body))

    def _call_record(self, answer: Any) -> CallRecord:
        return self._answer(answer, CallRecord)

    def _answer(self, answer: Any, kind: type[T]) -> T:
        """An answer as the record it should be; one that is not is the control
        plane's fault (a proxy's page, another version), reported as unavailable."""
        try:
            return convert(answer, kind, "the control plane's answer")
        except DecodeError as exc:
            raise ControlPlaneUnavailable(f"control plane at {self.server_url}: {exc}") from None

    # -- transport ---------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        wait: float | None = None,
        timeout_extra: float = 0.0,
        headers: dict[str, str] | None = None,
    ) -> Any:
        return self.request_with_status(method, path, body, wait, timeout_extra, headers)[1]

    def request_with_status(
        self,
        method: str,
        path: str,
        body: Any = None,
        wait: float | None = None,
        timeout_extra: float = 0.0,
        extra_headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        url = self._base + path
        timeout = self._timeout + timeout_extra
        if wait:
            url += f"?wait={wait:g}"
            timeout += wait
        payload = None if body is None else dumps(body).encode()
        if payload is not None and len(payload) > self._max_body:
            raise ControlPlaneRefused(413, (
                f"the request is {_mib(len(payload))}, and the control plane takes up to "
                f"{_mib(self._max_body)} (CALLPLANE_MAX_BODY_BYTES): pass large data by "
                "reference (a path, a URL, a key), not as arguments"
            ))
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        headers.update(self._auth)
        headers.update(extra_headers or {})

        def attempt() -> tuple[int, Any]:
            status, raw = self._send(method, url, payload, headers, timeout)
            if status in TRANSIENT_STATUSES:
                raise ControlPlaneUnavailable(f"answered {status}: {raw[:300]!r}")
            answer = status, self._decode(status, raw)
            self.has_answered = True
            return answer

        try:
            return retry_until(attempt, ControlPlaneUnavailable, self._outage_seconds)
        except ControlPlaneUnavailable as exc:
            raise ControlPlaneUnavailable(
                f"control plane at {self.server_url} {exc} "
                f"(still, after retrying for {self._outage_seconds:g} s)"
            ) from None

    def _send(
        self, method: str, url: str, payload: bytes | None, headers: dict[str, str],
        timeout: float
    ) -> tuple[int, bytes]:
        """One request; once more at once if the kept-alive connection was stale."""
        for attempt in (1, 2):
            connection = self._connection(timeout)
            try:
                connection.request(method, url, body=payload, headers=headers)
                response = connection.getresponse()
                return response.status, response.read()
            except (OSError, http.client.HTTPException) as exc:
                early = _answer_before_the_body(connection) if isinstance(exc, OSError) else None
                self._drop()
                if early is not None:
                    return early
                if attempt == 2:
                    raise ControlPlaneUnavailable(f"is unreachable: {exc!r}") from None
        raise AssertionError("unreachable")

    def _decode(self, status: int, raw: bytes) -> Any:
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = None
        if status >= 500 or (data is None and status >= 400):
            raise ControlPlaneUnavailable(f"answered {status}: {raw[:300]!r}")
        if status >= 400:
            refusal: dict[str, Any] = data if isinstance(data, dict) else {"message": str(data)}
            raise ControlPlaneRefused(status, refusal.get("message", ""), refusal.get("errors"))
        return data

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            factory = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            connection = factory(self._host, self._port, timeout=timeout)
            self._local.connection = connection
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        return connection

    def _drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None


class JobKey(msgspec.Struct, frozen=True):
    key: str


def _answer_before_the_body(connection: http.client.HTTPConnection) -> tuple[int, bytes] | None:
    """The answer a server sent before it stopped reading the request (a 413 for
    a body past its limit, then it closes), if there is one to read at once."""
    if connection.sock is None:
        return None
    try:
        connection.sock.settimeout(EARLY_ANSWER_SECONDS)
        response = connection.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):
        return None


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def _body(request: CallRequest) -> Any:
    body = plain(request)
    if request.not_before is not None:
        body["not_before"] = request.not_before.isoformat()
    return body
