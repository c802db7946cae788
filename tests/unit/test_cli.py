"""The command lines, as far as they run without servers."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from controlplane.cli import main
from controlplane.migrate import head_revision, shown, upgrade

pytestmark = pytest.mark.unit


def test_db_upgrade_says_what_it_did_and_is_repeatable(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    head = head_revision()
    for said in (f"created the schema at revision {head}", f"the schema is already at revision {head}"):
        result = CliRunner().invoke(main, ["db", "upgrade"], env={"DATABASE_URL": url})
        assert result.exit_code == 0, result.output
        assert result.output == f"{said} ({url})\n"
    older = f"sqlite:///{tmp_path / 'older.db'}"
    upgrade(older, "0003")
    result = CliRunner().invoke(main, ["db", "upgrade"], env={"DATABASE_URL": older})
    assert f"upgraded the schema from revision 0003 to {head}" in result.output
    columns = {c["name"] for c in sa.inspect(sa.create_engine(url)).get_columns("stage_runs")}
    assert {"id", "parent_stage_run_id", "arguments", "workflow_run_id", "status"} <= columns


def test_a_worker_without_a_code_version_name_is_a_usage_error(tmp_path):
    flow = tmp_path / "flow.py"
    flow.write_text("")
    result = CliRunner().invoke(main, ["worker", "--workflow-file", str(flow)],
                                env={"CALLPLANE_REPO_NAME": ""})
    assert result.exit_code == 2 and "--repo-name" in result.output


def test_printed_database_urls_hide_their_password():
    assert shown("postgresql://app:hunter2@db:5432/calls") == "postgresql://app:***@db:5432/calls"
    assert shown("sqlite:///callplane.db") == "sqlite:///callplane.db"
