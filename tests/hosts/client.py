"""The workload of the several-hosts tests, run on the client host: `calls`
naps of `seconds` each, made in batches through the balancer; their ids and
results go to `out` as JSON once all have finished.

    python -m tests.hosts.client CALLS SECONDS LOG OUT
"""

from __future__ import annotations

import json
import os
import sys
import time

from sdk.caller import RemoteCaller
from sdk.client import ControlPlaneClient
from sdk.context import CallContext
from tests.workflows import recovery


def main(calls: int, seconds: float, log: str, out: str) -> None:
    client = ControlPlaneClient(os.environ["CALLPLANE_SERVER_URL"])
    recovery.runner.attach(client, RemoteCaller(client), CallContext())
    started = time.monotonic()
    handles = recovery.runner.submit(recovery.logged_nap,
                                     [((log, seconds, i), {}) for i in range(calls)])
    results = recovery.runner.gather(*handles)  # the caller waits for many at once
    with open(out, "w") as file:
        json.dump({"ids": [handle.id for handle in handles], "results": results,
                   "seconds": time.monotonic() - started, "cpu_seconds": time.process_time()},
                  file)


if __name__ == "__main__":
    main(int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4])
