"""Statements sent as text, their values inlined as SQL literals: the worker's hot path.

The worker sends its statements as one simple-protocol query per round trip, with no
server-side parameters: for the worker that is the cheapest way to talk to PostgreSQL from
Python, as psycopg's parameter and pipeline machinery costs more CPU per step than the server
spends parsing these short statements. Several statements (a checkpoint, ``COMMIT``, the next
step) then travel together, which is how a step costs one round trip.

Every value goes through `literal`, which quotes with `dfc.sqlquote` in forms that no session
setting changes: a step may leave ``standard_conforming_strings`` off when its text and the
worker's next statements are read as one query string.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from dfc.sqlquote import dumps, quote_literal

AConn = psycopg.AsyncConnection[Any]
"""A worker connection (autocommit, options of `dfc.store.db.worker_kwargs`)."""


def literal(value: Any, *, as_json: str | None = None) -> str:
    """``value`` as a SQL literal: NULL, a boolean, an integer, a timestamptz, a text array
    (from a list or tuple), text, or JSON (``as_json``: "json" or "jsonb")."""
    if value is None:
        return "NULL"
    if as_json is not None:
        return quote_literal(dumps(value)) + "::" + as_json
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return quote_literal(value.isoformat()) + "::timestamptz"
    if isinstance(value, list | tuple):
        return quote_literal(
            "{"
            + ",".join('"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in value)
            + "}"
        )
    return quote_literal(str(value))


async def execute(conn: AConn, query: str) -> psycopg.AsyncCursor[Any]:
    """Run `query` (simple protocol) on the connection's own cursor and return it.

    Each connection keeps one cursor for the statements sent here: `conn.execute` builds a new
    cursor (adapters copied, a transformer made) per call, about 25 µs of the worker's CPU,
    which for a short step is a tenth of its cost. A connection serves one step at a time, and
    every caller reads its results before the next statement, so one cursor is enough.
    """
    cur: psycopg.AsyncCursor[Any] | None = conn.__dict__.get("_dfc_cursor")
    if cur is None or cur.closed:
        cur = conn.__dict__["_dfc_cursor"] = conn.cursor()
    return await cur.execute(query)
