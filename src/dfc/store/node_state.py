"""Node records (``dfc.node_state``) and their history: writing, reading and pruning them.

Every record is written through ``dfc.checkpoint`` (migrations 0002 and 0006), which checks
that the writing worker still holds the instance's lease (else SQLSTATE DF001) and that the node
key has no final record yet (else DF002). A record that is not final (`OPEN`) also gets a
history row; a final record is its own history event (the view ``dfc.events``). The worker composes these
statements with others into one round trip, so the writers here are statement *builders*
(text, values inlined by `dfc.store.inline.literal`); `run_checkpoints` sends such a script.

A stored record is read as a *record row*: ``(instance_id, key, node_id, status, result, error,
wake_epoch, attempt, detail, seq)``; the runtime turns rows into its own record type (this layer
knows tables, not the state machine).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import psycopg

from dfc.sqlquote import dumps, quote_literal
from dfc.store import signals
from dfc.store.inline import AConn, execute, literal

Conn = psycopg.Connection[Any]

# wake_at as epoch seconds: worker connections load timestamps as JSON-ready text (for step
# results), and a number reads the same whichever loaders a connection has.
LOAD_RECORDS = """
SELECT instance_id, key, node_id, status, result, error, extract(epoch FROM wake_at)::float8,
       attempt, detail, seq
  FROM dfc.node_state WHERE instance_id = ANY(%s)
"""


def records_txn(conn: Conn, instance_id: str) -> list[tuple[Any, ...]]:
    """The instance's record rows (see the module docstring)."""
    return conn.execute(LOAD_RECORDS, ([instance_id],)).fetchall()


async def records(conn: AConn, instance_id: str) -> list[tuple[Any, ...]]:
    """The instance's record rows (see the module docstring)."""
    cur = await conn.execute(LOAD_RECORDS, ([instance_id],), prepare=True)
    return await cur.fetchall()


async def load(
    conn: AConn, instance_ids: Sequence[str]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The record rows and the unconsumed signal rows (`dfc.store.signals`) of these
    instances, in one round trip."""
    ids = list(instance_ids)
    async with conn.pipeline():
        rc = await conn.execute(LOAD_RECORDS, (ids,), prepare=True)
        sc = await conn.execute(signals.UNCONSUMED, (ids,), prepare=True)
    return await rc.fetchall(), await sc.fetchall()


_TIMINGS = "SELECT key, started_at, finished_at FROM dfc.node_state WHERE instance_id = %s"


def timings_txn(conn: Conn, instance_id: str) -> dict[str, tuple[datetime | None, datetime | None]]:
    """When each of the instance's records started and finished, by key."""
    return {k: (s, f) for k, s, f in conn.execute(_TIMINGS, (instance_id,))}


# -- writing (statement builders) ----------------------------------------------------------

OPEN = frozenset({"running", "waiting"})
"""Statuses of records that may still change; only these get a row in ``dfc.history``."""


def checkpoint_sql(
    instance_id: str,
    owner: str,
    key: str,
    node_id: str,
    status: str,
    *,
    result: Any,
    error: Any,
    attempt: int,
    wake_at: datetime | None,
    detail: Mapping[str, Any],
    history: Mapping[str, Any] | None,
    prepared: bool = False,
) -> str:
    """The statement that writes one record through ``dfc.checkpoint``; it returns one row,
    ``(seq, pokes)``: the record's sequence number and the queue's signal counter. ``history``
    is the detail of the record's history event, kept only for a record that is not final.
    ``prepared``: through `PREPARE_CHECKPOINT` instead, on a session that ran it (final
    records only).

    Written out by hand rather than through `literal`: it is built once per step.
    """
    res = "NULL" if result is None else quote_literal(dumps(result)) + "::json"
    err = "NULL" if error is None else quote_literal(dumps(error)) + "::jsonb"
    wake = "NULL" if wake_at is None else quote_literal(wake_at.isoformat()) + "::timestamptz"
    det = quote_literal(dumps(dict(detail))) + "::jsonb" if detail else "NULL"
    hist = (
        "NULL"
        if history is None or status not in OPEN
        else quote_literal(dumps(history)) + "::jsonb"
    )
    args = (
        f"{quote_literal(instance_id)},{quote_literal(owner)},{quote_literal(key)},"
        f"{quote_literal(node_id)},{quote_literal(status)},{res},{err},{int(attempt)},{wake},{det}"
    )
    if prepared:
        assert status not in OPEN, "a prepared checkpoint writes no history"
        return f"EXECUTE {CHECKPOINT_STATEMENT}({args})"
    return f"SELECT seq, pokes FROM dfc.checkpoint({args},{hist})"


CHECKPOINT_STATEMENT = "dfc_checkpoint"
PREPARE_CHECKPOINT = f"""
PREPARE {CHECKPOINT_STATEMENT}(text, text, text, text, text, json, jsonb, int, timestamptz, jsonb) AS
WITH l AS (SELECT pokes FROM dfc.queue WHERE instance_id = $1 AND lease_owner = $2),
n AS (
    INSERT INTO dfc.node_state AS ns
           (instance_id, key, node_id, status, result, error, attempt, wake_at, detail,
            started_at, finished_at)
    SELECT $1, $3, $4, $5, $6, $7, $8, $9, $10, now(), clock_timestamp() FROM l
    ON CONFLICT (instance_id, key) DO UPDATE
       SET status = excluded.status, result = excluded.result, error = excluded.error,
           attempt = excluded.attempt, wake_at = excluded.wake_at, detail = excluded.detail,
           finished_at = excluded.finished_at, seq = DEFAULT
     WHERE ns.status IN ('running', 'waiting')
    RETURNING ns.seq
)
SELECT CASE WHEN n.seq IS NULL THEN (dfc.checkpoint($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL)).seq
            ELSE n.seq END,
       coalesce(l.pokes, 0)
  FROM (SELECT 1) AS one LEFT JOIN l ON true LEFT JOIN n ON true
"""
"""``dfc.checkpoint`` of a final record as one plain statement, prepared once per session (the
worker's batch lanes): planned once, it costs the server about half of the PL/pgSQL call (46
against 88 µs per checkpoint, pg_stat_statements). When the write is refused (no lease, or
already a final record) it calls ``dfc.checkpoint`` itself, which raises DF001 or DF002 — the
one definition of the fence and its messages."""


_PRUNE_STATE = "DELETE FROM dfc.node_state WHERE instance_id = {} AND key = ANY({}::text[])"
_PRUNE_HISTORY = "DELETE FROM dfc.history WHERE instance_id = {} AND key = ANY({}::text[])"


def prune_sql(instance_id: str, keys: Sequence[str]) -> list[str]:
    """The statements that forget these records and their history (a loop's old iterations)."""
    iid, ks = literal(instance_id), literal(list(keys))
    return [_PRUNE_STATE.format(iid, ks), _PRUNE_HISTORY.format(iid, ks)]


async def run_checkpoints(conn: AConn, statements: Sequence[str]) -> list[tuple[int, int]]:
    """Run statements as one simple-protocol query (one round trip) and return the first row
    of every statement that returns rows — the checkpoints' — in order, as (seq, pokes)."""
    cur = await execute(conn, ";".join(statements))
    out: list[tuple[int, int]] = []
    while True:
        if cur.description is not None:
            row = await cur.fetchone()
            assert row is not None
            out.append((int(row[0]), int(row[1])))
        if not cur.nextset():
            return out


_COMMITTED = """
SELECT n.seq, coalesce(q.pokes, 0) FROM dfc.node_state n
  LEFT JOIN dfc.queue q ON q.instance_id = n.instance_id
 WHERE n.instance_id = {} AND n.key = {} AND n.status = 'completed'
"""


async def committed(conn: AConn, instance_id: str, key: str) -> tuple[int, int] | None:
    """(seq, pokes) when the record ``key`` is stored as completed; None when it is not."""
    cur = await execute(conn, _COMMITTED.format(literal(instance_id), literal(key)))
    row = await cur.fetchone()
    return None if row is None else (int(row[0]), int(row[1]))
