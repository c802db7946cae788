"""sdk.settings: every setting read once, from one environment, with named defaults."""

from __future__ import annotations

import pytest

from sdk.settings import DEFAULT_SERVER_URL, Settings, environment_with, parse_age, shown_age

pytestmark = pytest.mark.unit


def test_defaults_need_no_environment():
    settings = Settings.from_env({})
    assert settings == Settings()
    assert (settings.server_url, settings.repo_name, settings.commit_hash) == (
        DEFAULT_SERVER_URL, None, "HEAD")


def test_every_setting_comes_from_its_variable():
    settings = Settings.from_env({
        "DATABASE_URL": "postgresql://db/x", "REDIS_URL": "redis://r:1/2", "HOST": "0.0.0.0",
        "PORT": "8000", "CALLPLANE_RECHECK_SECONDS": "0.5", "CALLPLANE_LEASE_SECONDS": "9",
        "CALLPLANE_LOST_ATTEMPTS": "5", "CALLPLANE_MAX_BODY_BYTES": "1024", "CALLPLANE_TOKEN": "t",
        "CALLPLANE_ALLOW_NO_TOKEN": "1", "CALLPLANE_SERVER_URL": "http://cp:5001",
        "CALLPLANE_REPO_NAME": "app", "CALLPLANE_COMMIT_HASH": "abc123",
    })
    assert settings == Settings(
        database_url="postgresql://db/x", redis_url="redis://r:1/2", host="0.0.0.0", port=8000,
        recheck_seconds=0.5, lease_seconds=9.0, lost_attempts=5, max_body_bytes=1024, token="t",
        allow_no_token=True, server_url="http://cp:5001", repo_name="app", commit_hash="abc123",
    )


@pytest.mark.parametrize("name", ["PORT", "CALLPLANE_LEASE_SECONDS", "CALLPLANE_RECHECK_SECONDS"])
def test_a_bad_number_names_its_variable(name):
    with pytest.raises(ValueError, match=f"{name} must be a positive"):
        Settings.from_env({name: "soon"})


def test_options_given_on_a_command_line_win_and_none_keeps_the_setting():
    settings = Settings.from_env({"CALLPLANE_REPO_NAME": "app"})
    assert settings.replace(repo_name=None, server_url="http://x:1").repo_name == "app"
    assert settings.replace(repo_name="other").repo_name == "other"


def test_a_child_process_environment_adds_to_this_ones():
    child = environment_with({"CALLPLANE_TEST_ONLY": "1"})
    assert child["CALLPLANE_TEST_ONLY"] == "1" and "PATH" in child


@pytest.mark.parametrize(("text", "seconds", "shown"), [
    ("30d", 30 * 86400, "30d"), ("12h", 12 * 3600, "12h"), (" 90 m ", 90 * 60, "90m"),
    ("3600s", 3600, "1h"), ("2w", 14 * 86400, "2w"),
])
def test_an_age_reads_in_whole_units(text, seconds, shown):
    assert parse_age(text).total_seconds() == seconds and shown_age(parse_age(text)) == shown


@pytest.mark.parametrize("text", ["", "30", "0d", "-1d", "1.5h", "30 days", "soon"])
def test_anything_else_is_not_an_age(text):
    with pytest.raises(ValueError, match="an age reads like '30d'"):
        parse_age(text)


def test_retention_is_off_unless_set_and_named_when_wrong():
    assert Settings.from_env({}).retention is None
    assert Settings.from_env({"CALLPLANE_RETENTION": "7d"}).retention.days == 7
    with pytest.raises(ValueError, match="^CALLPLANE_RETENTION: an age reads like"):
        Settings.from_env({"CALLPLANE_RETENTION": "a week"})
