"""Times rendered by the database, for reads that return thousands of them.

A call tree of 10,000 calls has 30,000 timestamps: parsing each into a datetime
and writing it back as ISO 8601 cost about 25 ms of Python, more than the query.
These expressions have the database hand them over as the text the API answers
(`2026-12-03T07:01:20.836185+00:00`: UTC, always six digits of microseconds)
and a call's duration as a number, on both SQLite and PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class iso_text(FunctionElement):
    """A timestamp column as ISO 8601 text in UTC (NULL stays NULL)."""

    type = sa.String()
    inherit_cache = True


class milliseconds_between(FunctionElement):
    """The milliseconds from one timestamp to another, to the microsecond (NULL if either is)."""

    type = sa.Float()
    inherit_cache = True


@compiles(iso_text, "postgresql")
def _iso_text_postgresql(element, compiler, **kw):
    (time,) = element.clauses
    return (f"to_char({compiler.process(time, **kw)} AT TIME ZONE 'UTC', "
            "'YYYY-MM-DD\"T\"HH24:MI:SS.US') || '+00:00'")


@compiles(iso_text, "sqlite")
def _iso_text_sqlite(element, compiler, **kw):
    # SQLAlchemy stores a time in SQLite as UTC text, "YYYY-MM-DD HH:MM:SS.ffffff".
    (time,) = element.clauses
    return f"replace({compiler.process(time, **kw)}, ' ', 'T') || '+00:00'"


@compiles(milliseconds_between, "postgresql")
def _between_postgresql(element, compiler, **kw):
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    # date_part is double precision arithmetic (extract's numeric took half again
    # as long); whole microseconds divided by 1000 are the milliseconds to the
    # microsecond, as Python's round(ms, 3) gives them.
    return f"round(date_part('epoch', {end} - {start}) * 1000000) / 1000"


@compiles(milliseconds_between, "sqlite")
def _between_sqlite(element, compiler, **kw):
    # Whole seconds from strftime, microseconds from the text (julianday's double
    # loses them), as SQLAlchemy stores times (see _iso_text_sqlite).
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return (f"round((strftime('%s', {end}) - strftime('%s', {start})) * 1000.0 "
            f"+ (CAST(substr({end}, 21, 6) AS INTEGER) - CAST(substr({start}, 21, 6) AS INTEGER)) "
            "/ 1000.0, 3)")
