"""PostgreSQL result values as JSON, and the shape of a SQL step's result (SPEC §5.2 SQL).

`configure_loaders` registers psycopg loaders on a connection (or any adapt context) so that rows
come back already JSON-ready, with no conversion pass afterwards:

=========================== ===================================================================
bool                        JSON boolean
int2, int4, int8            JSON integer
float4, float8              JSON number; NaN and ±Infinity become null
numeric                     JSON string with the exact digits and scale ("123456.78900000")
text, varchar, char, uuid   string
timestamptz                 RFC 3339 with offset ("2024-05-01T12:00:00.5+00:00"); an offset
                            with seconds (local mean time before 1900 or so) as the same
                            instant in UTC, since RFC 3339 offsets have no seconds
timestamp                   RFC 3339 without zone ("2024-05-01T12:00:00")
date                        "YYYY-MM-DD"
json, jsonb                 the JSON value itself
bytea                       PostgreSQL hex form ("\\x0a1b")
arrays                      JSON arrays (elements converted as above), arrays of enums,
                            composites and domains included
anything else               PostgreSQL's text output, as a string
=========================== ===================================================================

This relies on the session settings the worker uses: text result format (psycopg's default),
``DateStyle = ISO`` and ``bytea_output = hex`` (both PostgreSQL defaults). Dates and timestamps
PostgreSQL prints in a form RFC 3339 cannot express (``infinity``, BC years) stay as PostgreSQL
prints them.

Types created in the database (enums, composites, domains, extension types) have OIDs no
loader knows in advance. The first result that has one looks them up in the catalogue (one
query, in the step's own transaction) and registers their loaders on the connection, so each
connection asks once per type: an array of such a type becomes a JSON array (its elements
converted as their base type is, a domain's as the type under it), anything else its text
output.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import postgres
from psycopg.abc import AdaptContext, Buffer
from psycopg.adapt import Loader, Transformer
from psycopg.pq import ExecStatus, Format
from psycopg.pq.abc import PGresult
from psycopg.types import TypeInfo
from psycopg.types.array import register_array

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
        if seconds is not None:
            return _in_utc(raw, date, time, hours, minutes or b":00", seconds)
        return (date + b"T" + time + hours + (minutes or b":00")).decode("ascii")


def _in_utc(
    raw: bytes, date: bytes, time: bytes, hours: bytes, minutes: bytes, seconds: bytes
) -> str:
    """A time whose UTC offset has seconds (``1900-01-01 00:00:00+00:19:32``, local mean time)
    as the same instant in UTC: RFC 3339 offsets are hours and minutes only. The fraction of a
    second is kept as written; a year Python cannot hold stays as PostgreSQL prints it."""
    whole, dot, fraction = time.partition(b".")
    sign = -1 if hours.startswith(b"-") else 1
    offset = timedelta(hours=abs(int(hours)), minutes=int(minutes[1:]), seconds=int(seconds[1:]))
    try:
        local = datetime.fromisoformat((date + b"T" + whole).decode("ascii"))
        utc = local - sign * offset
    except (ValueError, OverflowError):
        return raw.decode("ascii", errors="replace")
    return utc.isoformat() + (dot + fraction).decode("ascii") + "+00:00"


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


# -- types the database defines -------------------------------------------------------------------

# For each array type asked about: its element type, the element's delimiter, and the type under
# the element once domains are peeled off (the element itself when it is not a domain).
_ARRAY_TYPES = """
WITH RECURSIVE peel(array_oid, elem, delim, under) AS (
    SELECT t.oid, e.oid, e.typdelim, e.oid
    FROM pg_catalog.pg_type t JOIN pg_catalog.pg_type e ON e.oid = t.typelem
    WHERE t.oid = ANY(%s::pg_catalog.oid[])
      AND t.typsubscript = 'pg_catalog.array_subscript_handler'::pg_catalog.regproc
  UNION ALL
    SELECT p.array_oid, p.elem, p.delim, d.typbasetype
    FROM peel p JOIN pg_catalog.pg_type d ON d.oid = p.under AND d.typtype = 'd'
)
SELECT p.array_oid::pg_catalog.int8, p.elem::pg_catalog.int8, p.delim::pg_catalog.text, p.under::pg_catalog.int8
FROM peel p JOIN pg_catalog.pg_type u ON u.oid = p.under AND u.typtype <> 'd'
"""


def _unknown_types(cursor: psycopg.Cursor[Any] | psycopg.AsyncCursor[Any]) -> list[int]:
    """The type OIDs of the current result's columns that no loader knows yet."""
    adapters = cursor.adapters
    return sorted(
        {
            col.type_code
            for col in cursor.description or ()
            if adapters.get_loader(col.type_code, Format.TEXT) is None
        }
    )


def _learn_types(
    cursor: psycopg.Cursor[Any] | psycopg.AsyncCursor[Any],
    unknown: list[int],
    arrays: Iterable[tuple[int, int, str, int]],
) -> None:
    """Register loaders for the ``unknown`` types on the cursor's connection (for the cursors
    it makes later) and on the cursor (which may be kept and used again): arrays as arrays of
    their element, whose loader is that of the type under it; every other type as its text
    output."""
    for adapters in (cursor.connection.adapters, cursor.adapters):
        _learn(adapters, unknown, arrays)


def _learn(
    adapters: psycopg.adapt.AdaptersMap,
    unknown: list[int],
    arrays: Iterable[tuple[int, int, str, int]],
) -> None:
    """`_learn_types` for one adapters map."""
    for array_oid, elem, delim, under in arrays:
        if adapters.get_loader(elem, Format.TEXT) is None:
            known = adapters.get_loader(under, Format.TEXT)
            adapters.register_loader(elem, known or _TextOutput)
        register_array(TypeInfo(f"dfc_{elem}", elem, array_oid, delimiter=delim), adapters)
    for oid in unknown:
        if adapters.get_loader(oid, Format.TEXT) is None:
            adapters.register_loader(oid, _TextOutput)


def _rows_again(cursor: psycopg.Cursor[Any] | psycopg.AsyncCursor[Any]) -> list[tuple[Any, ...]]:
    """The current result's rows, loaded with the cursor's loaders as they are now (the cursor
    itself chose its loaders when the result arrived)."""
    result = cursor.pgresult
    assert result is not None
    tx = Transformer.from_context(cursor)
    tx.set_pgresult(result)
    return tx.load_rows(0, result.ntuples, tuple)


# -- the result -------------------------------------------------------------------------------


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
    if cursor.description is None:
        return _shape(None, None)
    unknown = _unknown_types(cursor)
    if not unknown:
        return _shape(cursor.description, cursor.fetchall())
    with cursor.connection.cursor() as lookup:
        arrays = lookup.execute(_ARRAY_TYPES, (unknown,)).fetchall()
    _learn_types(cursor, unknown, arrays)
    return _shape(cursor.description, _rows_again(cursor))


async def sql_result_async(cursor: psycopg.AsyncCursor[Any]) -> dict[str, JSON]:
    """`sql_result` for an async cursor."""
    _to_last_result(cursor)
    if cursor.description is None:
        return _shape(None, None)
    return _shape(cursor.description, await rows_async(cursor))


async def rows_async(cursor: psycopg.AsyncCursor[Any]) -> list[tuple[Any, ...]]:
    """The rows of the result `cursor` is on, JSON-ready; a type the connection does not know
    yet (an array of a user-defined type) is learned from the catalogue first."""
    unknown = _unknown_types(cursor)
    if not unknown:
        return await cursor.fetchall()
    async with cursor.connection.cursor() as lookup:
        arrays = await (await lookup.execute(_ARRAY_TYPES, (unknown,))).fetchall()
    _learn_types(cursor, unknown, arrays)
    return _rows_again(cursor)


class _Named:
    """A stand-in for a column description: `_shape` reads only the name."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


async def result_of(conn: psycopg.AsyncConnection[Any], res: PGresult) -> dict[str, JSON]:
    """The step result of one statement's raw result ``res``, received on ``conn`` without a
    cursor (`dfc.runtime.batch` reads the results of several steps' statements at once). Types
    the connection does not know yet are learned first, as for a cursor (`rows_async`)."""
    if not (res.nfields or res.status == ExecStatus.TUPLES_OK):
        return _shape(None, None)
    adapters = conn.adapters
    oids = [res.ftype(i) for i in range(res.nfields)]
    unknown = sorted({oid for oid in oids if adapters.get_loader(oid, Format.TEXT) is None})
    if unknown:
        async with conn.cursor() as lookup:
            arrays = await (await lookup.execute(_ARRAY_TYPES, (unknown,))).fetchall()
        _learn(adapters, unknown, arrays)
    tx = Transformer(conn)
    tx.set_pgresult(res)
    encoding = conn.info.encoding
    names = [(res.fname(i) or b"").decode(encoding) for i in range(res.nfields)]
    return shaped(names, tx.load_rows(0, res.ntuples, tuple))


def shaped(names: list[str] | None, rows: list[tuple[Any, ...]] | None) -> dict[str, JSON]:
    """The step result of rows read another way than from the statement's own cursor (a step
    run as another role, whose columns come back renamed): ``names`` are the statement's own
    column names (None when it returns no rows), ``rows`` read with these loaders."""
    return _shape(None if names is None else [_Named(n) for n in names], rows)
