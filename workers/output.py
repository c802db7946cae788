"""Route what stages print into the output of the call that printed it.

A stage's output travels with its result to its caller, which replays it: the
seed's example prints every stage's lines in the caller's terminal, in call
order, as if the functions had run there.
"""

from __future__ import annotations

import io
from typing import TextIO

from sdk.context import CallContext

#: A call's recorded output is cut beyond this many characters.
MAX_OUTPUT_CHARS = 64 * 1024


class RoutedStdout(io.TextIOBase):
    """Stands in for sys.stdout in a worker: writes go to the current call's buffer
    and, so the worker's own log shows them too, to the real stream."""

    def __init__(self, real: TextIO, context: CallContext):
        self._real = real
        self._context = context

    def write(self, text: str) -> int:
        frame = self._context.current()
        if frame is not None:
            frame.output.write(text)
        return self._real.write(text)

    def flush(self) -> None:
        self._real.flush()

    @property
    def encoding(self):
        return self._real.encoding

    def isatty(self) -> bool:
        return False


def captured(buffer: io.StringIO) -> str:
    """What a call printed, as the audit table can keep it: cut at MAX_OUTPUT_CHARS,
    NUL (which PostgreSQL's text refuses, so the report would be refused for good)
    shown as U+FFFD."""
    text = buffer.getvalue().replace("\x00", "\ufffd")
    if len(text) > MAX_OUTPUT_CHARS:
        dropped = len(text) - MAX_OUTPUT_CHARS
        text = text[:MAX_OUTPUT_CHARS] + f"\n[callplane: {dropped} more characters of output dropped]\n"
    return text
