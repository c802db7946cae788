"""`callplane run` as a user runs it: the real command in a process of its own, against
the session's control plane and its workers of tests/workflows/sample.py."""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios

from tests.conftest import ROOT, SAMPLE

RUN = [sys.executable, "-m", "controlplane.cli", "run"]
PROGRESS_LINE = re.compile(r"^\[\s*\d+\.\d s\] \d+ calls?: ")


def callplane_run(server_url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*RUN, str(SAMPLE), *args], env=environ(server_url), cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)


def start_run(server_url: str, *args: str, **popen) -> subprocess.Popen:
    options = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, **popen}
    return subprocess.Popen(
        [*RUN, str(SAMPLE), *args], env=environ(server_url), cwd=ROOT,
        preexec_fn=_sigint_interrupts, **options)  # noqa: PLW1509 - the tests start no threads


def environ(server_url: str) -> dict[str, str]:
    return {**os.environ, "CALLPLANE_SERVER_URL": server_url}


def _sigint_interrupts() -> None:
    """A shell's background job may ignore SIGINT, and Python keeps an inherited SIG_IGN."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def call_id_of(stderr: str) -> str:
    return re.search(r"call (\w+) on ", stderr).group(1)


def read_until_running(process: subprocess.Popen) -> str:
    """What the run wrote to stderr until its call was running."""
    seen = ""
    for line in process.stderr:
        seen += line
        if "1 running" in line:
            return seen
    raise AssertionError(f"the call never ran: {seen}")


def test_a_run_prints_its_tree_and_then_its_result_as_json(server_url, workers, api):
    done = callplane_run(server_url, "fan_in", "2")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [0, 2]  # stdout holds the result alone
    assert re.search(r"^fan_in  \[succeeded\].*\n  add  \[succeeded\].*\n  add  \[succeeded\]",
                     done.stderr, re.MULTILINE), done.stderr
    call = api("GET", f"/api/call/{call_id_of(done.stderr)}").json()
    # A client's root call: no code version, so any worker that has the stage takes it.
    assert (call["parent_stage_run_id"], call["repo_name"]) == (None, None)
    assert call["queue"] == "any.fan_in"


def test_arguments_may_be_negative_and_the_server_an_option(server_url, workers):
    done = subprocess.run([*RUN, str(SAMPLE), "add", "-1", "-2", "--server-url", server_url],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout) == (0, "-3\n"), done.stderr


def test_a_failing_stage_exits_1_with_its_error(server_url, workers):
    done = callplane_run(server_url, "fail", '"boom"')
    assert done.returncode == 1
    assert done.stdout == ""
    assert "fail  [failed]" in done.stderr
    assert re.search(r"^Error: stage 'fail' \(call \w+\) raised ValueError: boom$", done.stderr,
                     re.MULTILINE)
    assert "Remote traceback:" in done.stderr


def test_an_unknown_stage_is_a_usage_error_that_lists_the_stages():
    done = callplane_run("http://127.0.0.1:9", "nope")  # refused before anything is sent
    assert done.returncode == 2
    assert "has no stage 'nope'; its stages are: add, fail, fan_in," in done.stderr


def test_arguments_that_do_not_fit_are_usage_errors_that_say_what_to_fix():
    missing = callplane_run("http://127.0.0.1:9", "add", "2")
    assert missing.returncode == 2
    assert "missing a required argument: 'b'; call it as add(a, b)" in missing.stderr
    not_json = callplane_run("http://127.0.0.1:9", "add", "two", "3")
    assert not_json.returncode == 2
    assert "argument 1, 'two', is not a JSON value" in not_json.stderr
    assert "\"text\"" in not_json.stderr


def test_progress_in_a_log_is_a_line_per_change_of_the_counts(server_url, workers):
    done = callplane_run(server_url, "sleep_then_add", "1.5", "2", "3")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "5\n"
    progress = [line.split("] ", 1)[1] for line in done.stderr.splitlines()
                if PROGRESS_LINE.match(line)]
    # Polled about three times while running, said once; then the end. (A poll may
    # also catch the short-lived child: then that state is a line of its own.)
    assert progress[0] == "1 call: 1 running" and progress[-1] == "2 calls: 2 succeeded", done.stderr
    assert all(line != following for line, following in itertools.pairwise(progress))
    assert len(progress) <= 4
    assert "\x1b[" not in done.stderr


def test_progress_on_a_terminal_is_redrawn_in_place(server_url, workers):
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    process = start_run(server_url, "sleep_then_add", "1.2", "2", "3", stderr=terminal)
    os.close(terminal)
    screen = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: the command closed its end
            break
        if not chunk:
            break
        screen += chunk
    os.close(controller)
    assert process.wait(30) == 0
    assert process.stdout.read() == "5\n"
    text = screen.decode()
    assert "1 call: 1 running" in text and "sleep_then_add  [running]" in text
    assert "\x1b[2F\x1b[J" in text  # the view's two lines, erased to be drawn again
    final = text.rsplit("\x1b[J", 1)[1]  # what was written after the view's last erasure
    assert "sleep_then_add  [succeeded]" in final and "  add  [succeeded]" in final
    assert "[running]" not in final
    assert not re.search(r"^\[\s*\d", text, re.MULTILINE)  # no log lines on a terminal


def test_ctrl_c_stops_watching_and_says_how_to_cancel(server_url, workers, api):
    process = start_run(server_url, "sleep_then_add", "30", "1", "1")
    call_id = call_id_of(read_until_running(process))
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=10)
    assert process.returncode == 130
    assert f"call {call_id} goes on" in rest
    cancel = re.search(r"^  (callplane calls .* cancel \w+)$", rest, re.MULTILINE).group(1)
    assert cancel == f"callplane calls --server-url {server_url} cancel {call_id}"
    assert api("GET", f"/api/call/{call_id}").json()["status"] == "running"
    command = [sys.executable, "-m", "controlplane.cli", *cancel.split()[1:]]
    cancelled = subprocess.run(command, cwd=ROOT, capture_output=True, timeout=30, check=False)
    assert cancelled.returncode == 0, cancelled.stderr
    assert api("GET", f"/api/call/{call_id}?wait=10").json()["status"] == "cancelled"


def test_a_call_cancelled_while_watched_exits_1(server_url, workers, api):
    process = start_run(server_url, "sleep_then_add", "30", "1", "1")
    call_id = call_id_of(read_until_running(process))
    assert api("POST", f"/api/call/{call_id}/cancel").status_code == 200
    out, rest = process.communicate(timeout=30)
    assert process.returncode == 1 and out == ""
    assert f"Error: stage 'sleep_then_add' (call {call_id}) was cancelled" in rest
