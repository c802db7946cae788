"""The huey instance `huey_consumer bench.peers.huey_worker.huey` runs, on the run's Redis."""

import os

from bench.common import REDIS_URL_ENV
from bench.peers.huey_tasks import build

huey = build(os.environ[REDIS_URL_ENV]).huey
