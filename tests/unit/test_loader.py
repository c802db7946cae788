"""workers.loader: loading a workflow file and naming its code version."""

from __future__ import annotations

import pytest

from sdk.errors import WorkflowFileError
from workers.loader import load_workflow, resolve_commit

pytestmark = pytest.mark.unit


def test_workflow_loader_explains_failures(tmp_path):
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(WorkflowFileError, match="registers no stage"):
        load_workflow(empty)
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(WorkflowFileError, match="failed to import"):
        load_workflow(broken)
    with pytest.raises(WorkflowFileError, match="does not exist"):
        load_workflow(tmp_path / "missing.py")


def test_a_workflow_file_gives_its_runners_and_stages(tmp_path):
    flow = tmp_path / "flow.py"
    flow.write_text("from sdk import WorkflowRunner\nrunner = WorkflowRunner('http://localhost:1')\n"
                    "@runner.stage\ndef main():\n    return 1\n")
    workflow = load_workflow(flow)
    assert list(workflow.stages) == ["main"] and len(workflow.runners) == 1


def test_head_outside_git_is_a_clear_error_and_labels_pass_through(tmp_path):
    flow = tmp_path / "flow.py"
    flow.write_text("")
    with pytest.raises(WorkflowFileError, match="not in a git repository"):
        resolve_commit(flow, "HEAD")
    assert resolve_commit(flow, "release-42") == "release-42"
