"""Times rendered by the database, for reads that return thousands of them.

A call tree of 10,000 calls has 30,000 timestamps: parsing each into a datetime
and writing it back as ISO 8601 cost about 25 ms of Python, more than the query.
The database hands them over as text in UTC (`utc_text`), which `iso_of` turns
into what datetime.isoformat() writes (`2026-12-03T07:01:20.836185+00:00`) with
string slicing alone; and a call's duration as a number. PostgreSQL's plain
text cast costs a third of to_char's formatting, and the tree's read waits on
PostgreSQL while Python has time to spare (the read streams, see
controlplane.store.streaming): the slicing made the tree 15 ms faster.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class utc_text(FunctionElement):
    """A timestamp column as UTC text, `YYYY-MM-DD HH:MM:SS[.ffffff]` (NULL stays
    NULL): PostgreSQL leaves off the fraction's trailing zeros, SQLite keeps six
    digits. iso_of reads either."""

    type = sa.String()
    inherit_cache = True


class milliseconds_between(FunctionElement):
    """The milliseconds from one timestamp to another, to the microsecond (NULL if either is)."""

    type = sa.Float()
    inherit_cache = True


@compiles(utc_text, "postgresql")
def _utc_text_postgresql(element, compiler, **kw):
    (time,) = element.clauses
    return f"CAST({compiler.process(time, **kw)} AT TIME ZONE 'UTC' AS TEXT)"


@compiles(utc_text, "sqlite")
def _utc_text_sqlite(element, compiler, **kw):
    # SQLAlchemy stores a time in SQLite as UTC text, "YYYY-MM-DD HH:MM:SS.ffffff".
    (time,) = element.clauses
    return compiler.process(time, **kw)


def iso_of(text: str | None) -> str | None:
    """utc_text's text as datetime.isoformat() writes the time: with six digits of
    microseconds, or none when they are zero. (A tree calls it 30,000 times: each
    case is one or two C-level string operations.)"""
    if text is None:
        return None
    if len(text) == 26:
        if text.endswith("000000"):  # SQLite's whole second
            return text[:10] + "T" + text[11:19] + "+00:00"
    elif len(text) > 19:  # PostgreSQL leaves off the fraction's trailing zeros
        text = text.ljust(26, "0")
    return text.replace(" ", "T") + "+00:00"


@compiles(milliseconds_between, "postgresql")
def _between_postgresql(element, compiler, **kw):
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    # date_part is double precision arithmetic (extract's numeric took half again
    # as long); whole microseconds divided by 1000 are the milliseconds to the
    # microsecond, as Python's round(ms, 3) gives them.
    return f"round(date_part('epoch', {end} - {start}) * 1000000) / 1000"


@compiles(milliseconds_between, "sqlite")
def _between_sqlite(element, compiler, **kw):
    # Whole seconds from strftime of the text without its fraction (with it, strftime
    # rounds 06.999999 up to 07), microseconds from the text (julianday's double
    # loses them), as SQLAlchemy stores times (see _utc_text_sqlite).
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return (f"round((strftime('%s', substr({end}, 1, 19)) - strftime('%s', substr({start}, 1, 19)))"
            " * 1000.0 "
            f"+ (CAST(substr({end}, 21, 6) AS INTEGER) - CAST(substr({start}, 21, 6) AS INTEGER)) "
            "/ 1000.0, 3)")
