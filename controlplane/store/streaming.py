"""Reading a large result in chunks, as the database sends it.

A run's tree is 10,000 rows. Fetched whole, PostgreSQL computes every row
before the first reaches Python (about 20 ms for the tree: the times rendered
as text), and the driver then takes 3 MB in at once. psycopg's chunked
streaming (libpq 17's chunked rows mode) hands the rows over a few hundred at a
time while the server computes the rest, so the server's work and Python's
overlap on two cores: the tree's read took about half the time. Other drivers
(SQLite's, in process) have nothing to overlap and get their result in parts.
Many ids asked for at once go in parts too (`id_pages`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select

#: Ids per `IN (...)` list: well under SQLite's limit on bound parameters.
IN_LIST_LIMIT = 500
#: libpq's first version with chunked rows (psycopg's stream(size=...)).
_CHUNKED_LIBPQ = 170_000


def chunks(conn: Connection, query: Select, size: int) -> Iterator[Sequence[Sequence[Any]]]:
    """The rows of `query`, `size` at a time (the last chunk may be smaller).
    Its bound values go to the driver as they are (text and numbers)."""
    if conn.dialect.driver != "psycopg" or psycopg.pq.version() < _CHUNKED_LIBPQ:
        yield from conn.execute(query).partitions(size)
        return
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    chunk: list[Sequence[Any]] = []
    with conn.connection.driver_connection.cursor() as cursor:
        for row in cursor.stream(str(compiled), compiled.params, size=size):
            chunk.append(row)
            if len(chunk) == size:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def id_pages(ids: list[str]) -> Iterator[list[str]]:
    """`ids` in lists of IN_LIST_LIMIT at most, for `IN (...)`."""
    for start in range(0, len(ids), IN_LIST_LIMIT):
        yield ids[start:start + IN_LIST_LIMIT]
