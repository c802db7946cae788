"""A workflow file with a cron schedule, for tests/test_schedule_time.py: `report`
at 03:00 in Paris, on a control plane whose clock the test sets."""

import os

from sdk.decorators import WorkflowRunner

runner = WorkflowRunner(os.environ.get("CALLPLANE_SERVER_URL", "http://localhost:5001"))


@runner.stage
def report(region):
    return f"report of {region}"


runner.schedule(report, cron="0 3 * * *", args=["eu"], timezone="Europe/Paris", name="nightly")
