"""A running call tree as live progress: redrawn in place on a terminal, a line per
change in a log (a log that got a line every half second would be unreadable)."""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import TextIO

from controlplane.trees import TreeNode, render
from sdk.wire import Status

#: Seconds a root call may wait in its queue before the view says no worker took it.
UNTAKEN_HINT_SECONDS = 5.0
#: ANSI: the cursor to the start of the line `n` lines up, then clear to the end of the screen.
ERASE_UP = "\x1b[{n}F\x1b[J"


def status_counts(nodes: list[TreeNode]) -> str:
    """'5 calls: 1 running, 4 succeeded': the statuses in their life order."""
    counts = Counter(node.status for node in nodes)
    parts = [f"{counts[status]} {status}" for status in Status if counts[status]]
    return f"{len(nodes)} call{'s' if len(nodes) != 1 else ''}: {', '.join(parts)}"


class Progress:
    """Shows the newest state of a call tree on `stream`, without flooding it."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self._drawn = 0  # lines of the live view on screen (a terminal only)
        self._said = ""  # the last line written (a log only)

    def show(self, nodes: list[TreeNode]) -> None:
        elapsed = time.monotonic() - self.started
        summary = status_counts(nodes)
        if nodes and nodes[0].status is Status.PENDING and elapsed > UNTAKEN_HINT_SECONDS:
            summary += " (no worker took it yet: is one serving this stage?)"
        if not self.tty:
            if summary != self._said:
                self._said = summary
                self.stream.write(f"[{elapsed:6.1f} s] {summary}\n")
                self.stream.flush()
            return
        columns, rows = _size(self.stream)
        running = [node for node in nodes if not node.status.is_terminal]
        lines = [f"{elapsed:.1f} s  {summary}", *render(running)]
        if len(lines) > rows - 1:
            lines = lines[:rows - 2] + [f"... and {len(lines) - rows + 2} more"]
        self.clear()
        self.stream.write("".join(line[:columns - 1] + "\n" for line in lines))
        self.stream.flush()
        self._drawn = len(lines)

    def clear(self) -> None:
        """Erase the live view (on a terminal), so what follows is written in its place."""
        if self._drawn:
            self.stream.write(ERASE_UP.format(n=self._drawn))
            self.stream.flush()
            self._drawn = 0


def _size(stream: TextIO) -> tuple[int, int]:
    """The terminal's columns and rows (a pseudo-terminal may report 0: assume 80x24)."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (OSError, ValueError):
        return 80, 24
    return size.columns or 80, max(size.lines or 24, 4)
