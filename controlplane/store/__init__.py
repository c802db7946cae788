"""The audit tables (controlplane.tables): the only package that speaks SQL.

`Store` reads (`reads`) and writes (`writes`) them through one engine (`engine`);
rows come back as the typed records of sdk.records (`rows`), and every state
change is a prebuilt conditional UPDATE (`statements`).
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

from controlplane.store.engine import make_engine, normalise_url, utcnow
from controlplane.store.reads import Reads
from controlplane.store.tree_reads import NodeCache
from controlplane.store.writes import Writes

__all__ = ["Store", "make_engine", "normalise_url", "utcnow"]


class Store(Reads, Writes):
    """Reads and writes `stage_runs` and `call_attempts`."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.nodes = NodeCache() if engine.dialect.name == "postgresql" else None
