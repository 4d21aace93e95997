"""The statements of retry, fork and upgrade (SPEC §5.9): what they change in ``dfc.instances``,
``dfc.node_state``, ``dfc.queue`` and ``dfc.history``.

Every function runs in the caller's transaction; `dfc.runtime.rewind` decides what to forget,
copy or move and checks it first. A retried or forked instance gets records before a worker
claims it, so its queue row is poked (``pokes`` > 0): a claim treats a pending instance that
was never poked as fresh and loads no records (`dfc.store.queue.ClaimRow.fresh`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[Any]

_LOCK = "SELECT 1 FROM dfc.instances WHERE id = %s FOR UPDATE"


def lock_txn(conn: Conn, instance_id: str) -> bool:
    """Lock the instance's row until the transaction ends; False when there is no instance."""
    return conn.execute(_LOCK, (instance_id,)).fetchone() is not None


_HISTORY = """
INSERT INTO dfc.history (instance_id, event, node_id, key, detail)
VALUES (%s, %s, %s, %s, %s || jsonb_build_object('by', current_user::text))
"""


def _event(
    conn: Conn,
    instance_id: str,
    event: str,
    detail: Mapping[str, Any],
    node_id: str | None = None,
    key: str | None = None,
) -> None:
    conn.execute(_HISTORY, (instance_id, event, node_id, key, Jsonb(dict(detail))))


# -- retry --------------------------------------------------------------------------------------

_FORGET = "DELETE FROM dfc.node_state WHERE instance_id = %s AND key = ANY(%s)"
_REOPEN = """
UPDATE dfc.instances
   SET status = 'pending', result = NULL, error = NULL, compensated = false,
       finished_at = NULL, updated_at = now()
 WHERE id = %s AND status = 'failed'
"""
# Queued as a start queues it (`dfc.flow_enqueue`, migration 0014): under its workflow's limits
# and rate, and poked so that the claim loads its records.
_REQUEUE = "SELECT dfc.flow_enqueue(%s, %s, %s, 1)"


def retry_txn(
    conn: Conn,
    instance_id: str,
    forget: Collection[str],
    *,
    node_id: str | None,
    key: str | None,
    detail: Mapping[str, Any],
    flow: tuple[str | None, int | None] = (None, None),
) -> None:
    """Forget the records ``forget`` of a failed instance (locked with `lock_txn`), make it
    pending and queue it, and record a ``retried`` event about the step ``node_id`` at ``key``
    with ``detail`` (and who retried it). ``flow``: its concurrency key and max_concurrent
    when it runs under flow control; it then waits for its slots (its failure gave them back)
    and its rate-limit slot like a start."""
    conn.execute(_FORGET, (instance_id, list(forget)))
    if conn.execute(_REOPEN, (instance_id,)).rowcount != 1:
        raise AssertionError(f"instance {instance_id} is not failed: lock it and look first")
    flow_key, flow_max = flow
    conn.execute(_REQUEUE, (instance_id, flow_max, flow_key))
    _event(conn, instance_id, "retried", detail, node_id, key)


# -- fork ---------------------------------------------------------------------------------------

# Reused records keep their order (seq is drawn in insertion order) and their durations; they are
# stamped as written now, so the new instance's history reads in the order things happened to it.
_COPY = """
INSERT INTO dfc.node_state
       (instance_id, key, node_id, status, result, error, attempt, wake_at, detail,
        started_at, finished_at)
SELECT %(new)s, key, node_id, status, result, error, attempt, wake_at, detail,
       now() - (finished_at - started_at), now()
  FROM dfc.node_state
 WHERE instance_id = %(old)s AND key = ANY(%(keys)s)
 ORDER BY seq
"""
_POKE = "UPDATE dfc.queue SET pokes = pokes + 1 WHERE instance_id = %s"


def fork_txn(
    conn: Conn,
    source: str,
    new: str,
    keys: Collection[str],
    *,
    node_id: str,
    detail: Mapping[str, Any],
) -> None:
    """Give the just-started instance ``new`` copies of the records ``keys`` of ``source`` and
    record a ``forked`` event (at step ``node_id``, with ``detail`` and who forked it)."""
    conn.execute(_COPY, {"new": new, "old": source, "keys": list(keys)})
    conn.execute(_POKE, (new,))
    _event(conn, new, "forked", detail, node_id)


# -- upgrade ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Unfinished:
    """An unfinished instance of a workflow: its version and the plan node ids it has records
    for."""

    id: str
    version: int
    recorded: tuple[str, ...]


_RECORDED = "SELECT array_agg(DISTINCT node_id) FROM dfc.node_state WHERE instance_id = {}"
_UNFINISHED = (
    "SELECT i.id, i.version, coalesce((" + _RECORDED.format("i.id") + "), '{{}}')"
    """
  FROM dfc.instances i
 WHERE i.workflow = %(name)s AND i.status IN ('pending', 'running') {where}
 ORDER BY i.created_at, i.id
"""
)


def unfinished_txn(
    conn: Conn, name: str, *, version: int | None = None, ids: Sequence[str] | None = None
) -> list[Unfinished]:
    """The unfinished instances of workflow ``name`` (of ``version``; among ``ids``), oldest
    first."""
    where = ""
    if version is not None:
        where += " AND i.version = %(version)s"
    if ids is not None:
        where += " AND i.id = ANY(%(ids)s)"
    rows = conn.execute(
        _UNFINISHED.format(where=where), {"name": name, "version": version, "ids": list(ids or ())}
    ).fetchall()
    return [Unfinished(r[0], r[1], tuple(sorted(r[2]))) for r in rows]


def recorded_txn(conn: Conn, instance_id: str) -> tuple[str, ...]:
    """The plan node ids the instance has records for."""
    row = conn.execute(_RECORDED.format("%s"), (instance_id,)).fetchone()
    return tuple(sorted(row[0] or ())) if row is not None else ()


_HOLD = """
SELECT i.version, q.lease_owner, q.owned_by
  FROM dfc.queue q JOIN dfc.instances i ON i.id = q.instance_id
 WHERE q.instance_id = %s
   FOR UPDATE OF q, i SKIP LOCKED
"""


def hold_txn(conn: Conn, instance_id: str) -> tuple[int, str | None, str | None] | None:
    """Lock an unfinished instance's queue and instance rows until the transaction ends and
    return its version, the worker whose lease holds it and the worker that owns it (`dfc
    run`); None when it is finished or another transaction holds the rows (a worker claiming
    it, a cancel). While the rows are locked no worker can claim the instance, and a step can commit only
    under a lease: an instance that no worker leases keeps its records as they are."""
    row = conn.execute(_HOLD, (instance_id,)).fetchone()
    return None if row is None else (int(row[0]), row[1], row[2])


_MOVE = "UPDATE dfc.instances SET version = %s, updated_at = now() WHERE id = %s"


def move_txn(conn: Conn, instance_id: str, old: int, new: int) -> None:
    """Pin the instance (locked with `hold_txn`) to version ``new`` and record an
    ``upgraded`` event."""
    conn.execute(_MOVE, (new, instance_id))
    _event(conn, instance_id, "upgraded", {"from": old, "to": new})
