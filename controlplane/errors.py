"""The control plane's refusals: each reaches an API client as one status code
(controlplane.api.errors) and a person as its message."""

from __future__ import annotations

from sdk.errors import CallplaneError


class CallNotFound(CallplaneError, LookupError):
    """Raised when a named call does not exist (404)."""


class ScheduleNotFound(CallplaneError, LookupError):
    """Raised when a named schedule was never registered (404)."""


class CallConflict(CallplaneError):
    """Raised when a request is valid but the call's state does not allow it (409)."""


class BadLimitKey(CallplaneError, ValueError):
    """Raised when a call's key argument, which its stage's limit counts by, is not
    a string or an integer (400)."""


class DispatchUnavailable(CallplaneError):
    """Raised when Redis is needed at once and cannot be reached (503)."""


class StoreUnavailable(CallplaneError):
    """Raised when the audit database cannot be reached or stays busy (503): the
    work goes on in Redis and is recorded once it answers again."""
