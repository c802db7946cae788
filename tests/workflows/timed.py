"""A workflow file with a schedule, for tests/test_schedules.py: `beat` every second."""

import os

from sdk.decorators import WorkflowRunner

runner = WorkflowRunner(os.environ.get("CALLPLANE_SERVER_URL", "http://localhost:5001"))


@runner.stage
def beat(label):
    return label


runner.schedule(beat, every=1, args=["tick"], name="heartbeat")
