"""PostgreSQL result values as JSON, and the shape of a SQL step's result (SPEC §5.2 SQL).

`configure_loaders` registers psycopg loaders on a connection (or any adapt context) so that rows
come back already JSON-ready, with no conversion pass afterwards:

=========================== ===================================================================
bool                        JSON boolean
int2, int4, int8            JSON integer
float4, float8              JSON number; NaN and ±Infinity become null
numeric                     JSON string with the exact digits and scale ("123456.78900000")
text, varchar, char, uuid   string
timestamptz                 RFC 3339 with offset ("2024-05-01T12:00:00.5+00:00")
timestamp                   RFC 3339 without zone ("2024-05-01T12:00:00")
date                        "YYYY-MM-DD"
json, jsonb                 the JSON value itself
bytea                       PostgreSQL hex form ("\\x0a1b")
arrays                      JSON arrays (elements converted as above)
anything else               PostgreSQL's text output, as a string
=========================== ===================================================================

This relies on the session settings the worker uses: text result format (psycopg's default),
``DateStyle = ISO`` and ``bytea_output = hex`` (both PostgreSQL defaults). Dates and timestamps
PostgreSQL prints in a form RFC 3339 cannot express (``infinity``, BC years) stay as PostgreSQL
prints them. Arrays of types psycopg does not know (user enums, domains over arrays) come back as
their text output, since their array OIDs are not known without a catalogue look-up.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg import postgres
from psycopg.abc import AdaptContext, Buffer
from psycopg.adapt import Loader
from psycopg.pq import Format

from dfc.json_types import JSON

# Types whose default psycopg loaders already produce the JSON value we want.
_KEEP = frozenset({"bool", "int2", "int4", "int8", "json", "jsonb"})


def _encoding(context: AdaptContext | None) -> str:
    conn = context.connection if context is not None else None
    if conn is None:
        return "utf-8"
    enc = conn.info.encoding
    # SQL_ASCII servers hand over bytes in any encoding; UTF-8 with replacement keeps them readable.
    return "utf-8" if enc in ("ascii", "sql_ascii") else enc


class _TextOutput(Loader):
    """PostgreSQL's text output, decoded (psycopg's TextLoader gives bytes on SQL_ASCII)."""

    def __init__(self, oid: int, context: AdaptContext | None = None) -> None:
        super().__init__(oid, context)
        self._enc = _encoding(context)

    def load(self, data: Buffer) -> str:
        return bytes(data).decode(self._enc, errors="replace")


class _Float(Loader):
    """float4/float8: a JSON number, or null for NaN and ±Infinity (JSON cannot hold them)."""

    def load(self, data: Buffer) -> float | None:
        text = bytes(data)
        if text[-1:] in (b"N", b"y"):  # NaN, Infinity, -Infinity
            return None
        return float(text)


_TIMESTAMPTZ = re.compile(
    rb"(\d{4,}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?)([+-]\d\d)(:\d\d)?(:\d\d)?"
)
_TIMESTAMP = re.compile(rb"(\d{4,}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?)")


class _Timestamptz(Loader):
    """timestamptz in ISO DateStyle ("2024-05-01 12:00:00.5+02") as RFC 3339."""

    def load(self, data: Buffer) -> str:
        raw = bytes(data)
        m = _TIMESTAMPTZ.fullmatch(raw)
        if m is None:  # infinity, BC, another DateStyle: PostgreSQL's text as it is
            return raw.decode("ascii", errors="replace")
        date, time, hours, minutes, seconds = m.groups()
        offset = hours + (minutes or b":00") + (seconds or b"")
        return (date + b"T" + time + offset).decode("ascii")


class _Timestamp(Loader):
    """timestamp in ISO DateStyle as RFC 3339 without a zone."""

    def load(self, data: Buffer) -> str:
        raw = bytes(data)
        m = _TIMESTAMP.fullmatch(raw)
        if m is None:
            return raw.decode("ascii", errors="replace")
        return (m.group(1) + b"T" + m.group(2)).decode("ascii")


def configure_loaders(context: AdaptContext) -> None:
    """Register the JSON-ready loaders (text format) on a connection, cursor or adapters map.

    Call it once per connection, before creating cursors (a cursor copies the connection's
    loaders when it is created); `sql_result` then reads rows as they come.
    """
    adapters = context.adapters
    for info in postgres.types:
        if info.name in _KEEP:
            continue
        adapters.register_loader(info.oid, _TextOutput)
    adapters.register_loader("float4", _Float)
    adapters.register_loader("float8", _Float)
    adapters.register_loader("timestamptz", _Timestamptz)
    adapters.register_loader("timestamp", _Timestamp)


def _shape(description: Any, rows: list[tuple[Any, ...]] | None) -> dict[str, JSON]:
    """``row_count`` is the number of rows *returned*, as in pg_durable: a statement without a
    result set (INSERT/UPDATE/DELETE without RETURNING, DDL) gives ``{"rows": [], "row_count":
    0}``, whatever it affected. No other key holds the affected count, so that a result is
    byte for byte pg_durable's (docs/runtime.md, "Result shapes")."""
    if description is None or rows is None:
        return {"rows": [], "row_count": 0}
    names = [col.name for col in description]
    # dict(zip()) keeps the *last* value of a duplicated column name at the position of its first
    # occurrence, as building a JSON object key by key does (pg_durable, jsonb_build_object).
    return {"rows": [dict(zip(names, row, strict=True)) for row in rows], "row_count": len(rows)}


def _to_last_result(cursor: psycopg.Cursor[Any] | psycopg.AsyncCursor[Any]) -> None:
    if cursor.format != Format.TEXT:
        raise ValueError(
            "sql_result needs a text-format cursor (the JSON loaders are text loaders)"
        )
    # Several statements in one step: the result is the last one's (SPEC §5.2 SQL).
    while cursor.nextset():
        pass


def sql_result(cursor: psycopg.Cursor[Any]) -> dict[str, JSON]:
    """The step result ``{"rows": [...], "row_count": n}`` of the statements just executed on
    `cursor` (a tuple-row cursor on a connection set up with `configure_loaders`)."""
    _to_last_result(cursor)
    rows = cursor.fetchall() if cursor.description is not None else None
    return _shape(cursor.description, rows)


async def sql_result_async(cursor: psycopg.AsyncCursor[Any]) -> dict[str, JSON]:
    """`sql_result` for an async cursor."""
    _to_last_result(cursor)
    rows = await cursor.fetchall() if cursor.description is not None else None
    return _shape(cursor.description, rows)
