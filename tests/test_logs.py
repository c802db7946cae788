"""One log format, naming the call a line was written in; JSON lines with
CALLPLANE_LOG_FORMAT=json, on a real worker."""

from __future__ import annotations

import json
import logging
import subprocess
import time

import pytest

from controlplane.local_cluster import start_worker, stop
from sdk.context import CallContext, CallFrame
from sdk.decorators import WorkflowRunner
from sdk.logs import CallIds, JsonLines
from sdk.settings import Settings
from tests.conftest import SAMPLE, TEST_COMMIT

#: A code version only the worker of this test serves.
VERSION = "logs-test"


def test_a_worker_writes_json_lines_that_name_the_call(server_url, redis_url, env, tmp_path):
    log_path = tmp_path / "worker.log"
    with open(log_path, "w") as log:
        worker = start_worker(server_url, redis_url, SAMPLE, VERSION, TEST_COMMIT,
                              {**env, "CALLPLANE_LOG_FORMAT": "json"},
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        runner = WorkflowRunner(server_url, repo_name=VERSION, commit_hash=TEST_COMMIT)
        logs_a_line = runner.stage(name="logs_a_line")(lambda message: message)
        handle = logs_a_line.submit("charging card 42")
        assert handle.result(timeout=30) == "charging card 42"
        deadline = time.monotonic() + 10
        while "charging card 42" not in log_path.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        stop(worker)
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    assert lines and all({"time", "level", "logger", "process", "call_id", "message"} <= set(line)
                         for line in lines)
    (charging,) = [line for line in lines if line["message"] == "charging card 42"]
    assert (charging["call_id"], charging["logger"], charging["level"]) == (
        handle.id, "sample", "WARNING")


def test_the_text_format_names_the_call_and_the_setting_is_checked():
    context = CallContext()
    record = logging.LogRecord("app", logging.INFO, __file__, 1, "hello", None, None)
    with context.entered(CallFrame(id="c42", stage="s", root_id="c42", repo_name=None,
                                   commit_hash=None)):
        CallIds(context).filter(record)
    assert record.call == " call=c42" and json.loads(JsonLines().format(record))["call_id"] == "c42"
    with pytest.raises(ValueError, match="CALLPLANE_LOG_FORMAT must be one of text, json"):
        Settings.from_env({"CALLPLANE_LOG_FORMAT": "xml"})
