"""One log format for every callplane process (control plane, recorder, workers),
naming the call a line was written in; JSON lines with CALLPLANE_LOG_FORMAT=json,
for log shippers."""

from __future__ import annotations

import json
import logging
import sys

from sdk.context import CallContext

#: The formats CALLPLANE_LOG_FORMAT takes.
LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]%(call)s %(message)s"


class CallIds(logging.Filter):
    """Adds the id of the call running in the logging thread, if any."""

    def __init__(self, context: CallContext | None):
        super().__init__()
        self._context = context

    def filter(self, record: logging.LogRecord) -> bool:
        frame = self._context.current() if self._context is not None else None
        record.call_id = frame.id if frame is not None else None
        record.call = f" call={frame.id}" if frame is not None else ""
        return True


class JsonLines(logging.Formatter):
    """A record as one JSON object: time, level, logger, process, call_id, message
    (and the exception's traceback, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record), "level": record.levelname,
                 "logger": record.name, "process": record.process,
                 "call_id": getattr(record, "call_id", None), "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(log_format: str, context: CallContext | None = None) -> None:
    """Send this process's logs to stderr in `log_format`, each line naming the
    call (of `context`) it was written in."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(CallIds(context))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
