"""Settings, read from the environment once, at the edge (the CLI and the app factory).

Nothing else in callplane reads os.environ; every default has a name and a reason.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, TypeVar

#: A number read from the environment.
N = TypeVar("N", int, float)

#: A SQLite file in the working directory makes the first run need no database server.
DEFAULT_DATABASE_URL = "sqlite:///callplane.db"
DEFAULT_REDIS_URL = "redis://localhost:6379/0"
#: The seed's control plane URL is http://localhost:5001.
DEFAULT_PORT = 5001
#: Where clients, workers and the CLI find the control plane unless told.
DEFAULT_SERVER_URL = f"http://localhost:{DEFAULT_PORT}"
#: Loopback only: a control plane reachable from elsewhere is a choice, not a default.
DEFAULT_HOST = "127.0.0.1"
#: The longest a single `?wait=` request may hold; clients loop for longer waits.
MAX_WAIT_SECONDS = 60.0
#: How often a waiter re-reads state in case a completion broadcast was lost
#: (pub/sub is fire-and-forget); the broadcast itself wakes waiters at once.
RECHECK_SECONDS = 2.0
#: How long a started attempt stays its worker's without a heartbeat (the worker
#: renews it every third of this). Past it, the attempt is lost and the call runs
#: again: the bound on recovering from a dead or hung worker.
LEASE_SECONDS = 30.0
#: Request bodies larger than this get a 413 (arguments and results are JSON, not files).
MAX_BODY_BYTES = 16 * 1024 * 1024
#: How long a signed-in browser may stay idle before signing in again.
SESSION_IDLE_SECONDS = 3600
#: The environment variable that holds the control plane's API token.
TOKEN_VARIABLE = "CALLPLANE_TOKEN"
#: A worker's commit unless told: the checkout its workflow file is in.
DEFAULT_COMMIT = "HEAD"
#: Attempts a call gets in all when its worker keeps being lost (killed, hung, or
#: its own process dying): a poison call must not loop forever. A stage's
#: `retries` may grant more.
LOST_ATTEMPTS = 3
#: How long an event sent before any call waits for its key is kept for the
#: first one that does (POST /api/events/<key>).
EVENT_KEEP_SECONDS = 24 * 3600.0
#: Proxies whose X-Forwarded-Proto and X-Forwarded-For the control plane believes
#: (FORWARDED_ALLOW_IPS, as gunicorn reads it; "*" for any, as behind a platform's router).
DEFAULT_FORWARDED_ALLOW_IPS = "127.0.0.1,::1"
#: An age, as CALLPLANE_RETENTION and `callplane db prune --older-than` take it.
AGE = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str = DEFAULT_REDIS_URL
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_wait_seconds: float = MAX_WAIT_SECONDS
    recheck_seconds: float = RECHECK_SECONDS
    lease_seconds: float = LEASE_SECONDS
    lost_attempts: int = LOST_ATTEMPTS
    event_keep_seconds: float = EVENT_KEEP_SECONDS
    max_body_bytes: int = MAX_BODY_BYTES
    #: The key that signs jobs (sdk.signing); by default the one `callplane db
    #: upgrade` made, which workers fetch from their control plane.
    job_key: str | None = None
    #: Calls a worker process runs at once (`--concurrency`).
    worker_concurrency: int = 1
    #: How every process writes its log: "text" or "json" (one object per line).
    log_format: str = "text"
    #: A browser's session ends after this long without a request.
    session_idle_seconds: int = SESSION_IDLE_SECONDS
    #: When set, every request must carry `Authorization: Bearer <token>`.
    token: str | None = None
    #: When set, opens `GET /metrics` (alone) to a scraper that sends it.
    metrics_token: str | None = None
    #: Listen beyond loopback without a token (only when told explicitly).
    allow_no_token: bool = False
    #: The control plane that clients, workers and the CLI talk to.
    server_url: str = DEFAULT_SERVER_URL
    forwarded_allow_ips: str = DEFAULT_FORWARDED_ALLOW_IPS
    #: A worker's code version, when its command line names none.
    repo_name: str | None = None
    commit_hash: str = DEFAULT_COMMIT
    #: Finished runs older than this are deleted (controlplane.retention); None keeps all.
    retention: timedelta | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            database_url=env.get("DATABASE_URL", DEFAULT_DATABASE_URL),
            redis_url=env.get("REDIS_URL", DEFAULT_REDIS_URL),
            host=env.get("HOST", DEFAULT_HOST),
            port=_positive(env, "PORT", DEFAULT_PORT, int),
            recheck_seconds=_positive(env, "CALLPLANE_RECHECK_SECONDS", RECHECK_SECONDS, float),
            lease_seconds=_positive(env, "CALLPLANE_LEASE_SECONDS", LEASE_SECONDS, float),
            lost_attempts=_positive(env, "CALLPLANE_LOST_ATTEMPTS", LOST_ATTEMPTS, int),
            event_keep_seconds=_positive(env, "CALLPLANE_EVENT_KEEP_SECONDS", EVENT_KEEP_SECONDS,
                                         float),
            max_body_bytes=_positive(env, "CALLPLANE_MAX_BODY_BYTES", MAX_BODY_BYTES, int),
            job_key=env.get("CALLPLANE_JOB_KEY") or None,
            worker_concurrency=_positive(env, "CALLPLANE_WORKER_CONCURRENCY", 1, int),
            log_format=_choice(env, "CALLPLANE_LOG_FORMAT", ("text", "json")),
            session_idle_seconds=_positive(env, "CALLPLANE_SESSION_IDLE_SECONDS",
                                           SESSION_IDLE_SECONDS, int),
            token=env.get(TOKEN_VARIABLE) or None,
            metrics_token=env.get("CALLPLANE_METRICS_TOKEN") or None,
            allow_no_token=env.get("CALLPLANE_ALLOW_NO_TOKEN", "").lower() in ("1", "true", "yes"),
            server_url=env.get("CALLPLANE_SERVER_URL") or DEFAULT_SERVER_URL,
            forwarded_allow_ips=env.get("FORWARDED_ALLOW_IPS") or DEFAULT_FORWARDED_ALLOW_IPS,
            repo_name=env.get("CALLPLANE_REPO_NAME") or None,
            commit_hash=env.get("CALLPLANE_COMMIT_HASH") or DEFAULT_COMMIT,
            retention=_age(env, "CALLPLANE_RETENTION"),
        )

    def replace(self, **changes: Any) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def token_from_env() -> str | None:
    """The API token the SDK and workers send when the code gives none, so a
    workflow runs unchanged against a control plane that requires one."""
    return os.environ.get(TOKEN_VARIABLE) or None


def max_body_from_env() -> int:
    """The largest request body the control plane takes (CALLPLANE_MAX_BODY_BYTES,
    read by both), so the SDK refuses a larger one before sending it."""
    return _positive(os.environ, "CALLPLANE_MAX_BODY_BYTES", MAX_BODY_BYTES, int)


def environment_with(changes: Mapping[str, str]) -> dict[str, str]:
    """This process's environment with `changes`: for a child process it starts."""
    return {**os.environ, **changes}


def parse_age(text: str) -> timedelta:
    """"30d" as 30 days (also s, m, h and w); ValueError for anything else."""
    match = AGE.match(text)
    if match is None or int(match.group(1)) < 1:
        raise ValueError(f"an age reads like '30d', '12h', '90m', '3600s' or '2w', not {text!r}")
    return timedelta(seconds=int(match.group(1)) * AGE_UNITS[match.group(2)])


def shown_age(age: timedelta) -> str:
    """An age as parse_age reads it, in its largest whole unit ("30d")."""
    seconds = int(age.total_seconds())
    unit = next(u for u in ("w", "d", "h", "m", "s") if seconds % AGE_UNITS[u] == 0)
    return f"{seconds // AGE_UNITS[unit]}{unit}"


def _age(env: Mapping[str, str], name: str) -> timedelta | None:
    if not env.get(name):
        return None
    try:
        return parse_age(env[name])
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """One of `choices` from the environment (the first by default), or a clear error."""
    value = env.get(name) or choices[0]
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def _positive(env: Mapping[str, str], name: str, default: N, kind: type[N]) -> N:
    """A positive number from the environment, or a clear error naming the variable."""
    if name not in env:
        return default
    value: N | None
    try:
        value = kind(env[name])
    except ValueError:
        value = None
    if value is None or value <= 0:
        raise ValueError(f"{name} must be a positive {kind.__name__}, not {env[name]!r}")
    return value
