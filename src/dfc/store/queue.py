"""The work queue (``dfc.queue``) and the workers that serve it (``dfc.workers``) (SPEC §5.3).

A queue row exists while its instance is unfinished. Workers claim due rows (``run_at <=
now()``) with ``FOR UPDATE SKIP LOCKED`` under a lease; while a row is held its ``run_at``
equals ``lease_expires``, so a worker that dies simply stops extending them and the rows become
due again when the leases expire. ``pokes`` counts signals and cancels: a worker that sees it
move knows to look again. Changes that concern waiting workers are announced on the
``dfc_work`` channel (the payload names the instance; empty means "look").
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import psycopg

from dfc.store import signals
from dfc.store.inline import AConn

Conn = psycopg.Connection[Any]

CHANNEL = "dfc_work"

_CLAIM = """
WITH c AS (
    SELECT instance_id, lease_owner AS previous FROM dfc.queue
     WHERE run_at <= now() {only}
     ORDER BY run_at
     LIMIT {n}
       FOR UPDATE SKIP LOCKED
), q AS (
    UPDATE dfc.queue AS q
       SET lease_owner = %(owner)s, claimed_at = now(),
           lease_expires = now() + make_interval(secs => %(lease)s),
           run_at = now() + make_interval(secs => %(lease)s)
      FROM c
     WHERE q.instance_id = c.instance_id
 RETURNING q.instance_id, q.pokes
), s AS (
    UPDATE dfc.instances AS i
       SET status = 'running', started_at = coalesce(i.started_at, now()), updated_at = now()
      FROM q
     WHERE i.id = q.instance_id AND i.status = 'pending'
 RETURNING i.id
), r AS (
    INSERT INTO dfc.history (instance_id, event, detail)
    SELECT id, 'running', jsonb_build_object('worker', %(owner)s) FROM s
), h AS (
    INSERT INTO dfc.history (instance_id, event, detail)
    SELECT instance_id, 'resumed', jsonb_build_object('worker', %(owner)s, 'previous', previous)
      FROM c WHERE previous IS NOT NULL
)
SELECT q.instance_id, q.pokes, i.workflow, i.version, i.label, i.vars, i.created_by,
       CASE WHEN i.workflow IS NULL THEN i.graph END, CASE WHEN i.workflow IS NULL THEN i.options END,
       i.status = 'pending' AND q.pokes = 0
  FROM q JOIN dfc.instances AS i ON i.id = q.instance_id
"""
# The main query sees dfc.instances as before the statement (one snapshot for the whole WITH),
# so ``i.status`` above is the status the instance had when claimed.
# A worker that cannot compile graphs leaves the instances that still carry one to others.
_COMPILED = (
    "AND EXISTS (SELECT 1 FROM dfc.instances AS ci"
    " WHERE ci.id = instance_id AND ci.workflow IS NOT NULL)"
)
_ONLY = "AND instance_id = ANY(%(only)s)"


@functools.lru_cache(maxsize=256)
def _claim_query(n: int, only: bool, compiled: bool) -> str:
    # The batch size is written into the text, not passed: with LIMIT as a parameter PostgreSQL
    # never trusted the prepared statement's generic plan and planned the claim again on every
    # call (0.8 ms of the server's CPU each time, a tenth of the per-instance cost).
    return _CLAIM.format(
        n=int(n), only=" ".join(([_ONLY] if only else []) + ([_COMPILED] if compiled else []))
    )


class ClaimRow(NamedTuple):
    """A claimed instance as the queue hands it over. ``graph`` and ``options`` are given only
    while the instance has no workflow version yet (started from SQL, not compiled)."""

    instance_id: str
    pokes: int
    workflow: str | None
    version: int | None
    label: str | None
    vars: dict[str, Any] | None
    created_by: str
    graph: str | None
    options: dict[str, Any] | None
    # Never run and never signalled or cancelled: it has no node records and no signals, so
    # there is nothing to load. (An instance is created without records; whatever creates one
    # with records or signals must leave it non-pending or poke it.)
    fresh: bool = False


async def claim(
    conn: AConn,
    owner: str,
    n: int,
    lease_seconds: float,
    only: Collection[str] | None = None,
    *,
    compiled_only: bool = False,
) -> list[ClaimRow]:
    """Lease up to ``n`` due instances (only those in ``only``, when given; only those with a
    workflow version, with ``compiled_only``) to ``owner``; mark pending ones running."""
    params: dict[str, Any] = {"owner": owner, "lease": lease_seconds}
    if only is not None:
        params["only"] = list(only)
    query = _claim_query(n, only is not None, compiled_only)
    cur = await conn.execute(query, params, prepare=True)
    return [ClaimRow(*r) for r in await cur.fetchall()]


_UNCOMPILED = """
SELECT EXISTS (SELECT 1 FROM dfc.queue AS q JOIN dfc.instances AS i ON i.id = q.instance_id
                WHERE i.workflow IS NULL)
"""


async def uncompiled_waiting(conn: AConn) -> bool:
    """Whether an unfinished instance still carries a graph to compile."""
    row = await (await conn.execute(_UNCOMPILED)).fetchone()
    return bool(row and row[0])


_UNCLAIM = """
UPDATE dfc.queue SET lease_owner = NULL, lease_expires = NULL, claimed_at = NULL,
       run_at = now() + interval '1 second'
 WHERE instance_id = ANY(%s) AND lease_owner = %s
"""


async def unclaim(conn: AConn, instance_ids: Sequence[str], owner: str) -> None:
    """Give back instances just claimed and not run (they are due again in a second)."""
    await conn.execute(_UNCLAIM, (list(instance_ids), owner))


_BACKLOG = "SELECT EXISTS (SELECT 1 FROM dfc.queue WHERE run_at <= now())"


async def backlog(conn: AConn) -> bool:
    """Whether any instance is due."""
    row = await (await conn.execute(_BACKLOG, prepare=True)).fetchone()
    return bool(row and row[0])


_EXTEND = """
UPDATE dfc.queue
   SET lease_expires = now() + make_interval(secs => %(lease)s),
       run_at = now() + make_interval(secs => %(lease)s)
 WHERE lease_owner = %(owner)s AND instance_id = ANY(%(ids)s::text[])
RETURNING instance_id
"""
_WORKER_BEAT = "UPDATE dfc.workers SET heartbeat_at = now() WHERE id = %s"


async def heartbeat(
    conn: AConn, owner: str, instance_ids: Sequence[str], lease_seconds: float
) -> set[str]:
    """Extend ``owner``'s leases of these instances and its worker row's heartbeat (one round
    trip); returns the ids still held (a missing one was cancelled or taken over)."""
    params = {"lease": lease_seconds, "owner": owner, "ids": list(instance_ids)}
    async with conn.pipeline():
        cur = await conn.execute(_EXTEND, params, prepare=True)
        await conn.execute(_WORKER_BEAT, (owner,), prepare=True)
    return {r[0] for r in await cur.fetchall()}


_LEASE = "SELECT pokes, lease_owner FROM dfc.queue WHERE instance_id = %s"


async def lease_and_signals(
    conn: AConn, instance_id: str
) -> tuple[tuple[int, str | None] | None, list[tuple[Any, ...]]]:
    """The instance's queue row as ``(pokes, lease_owner)`` (None when it has none: finished
    or cancelled) and its unconsumed signal rows (`dfc.store.signals`), in one round trip."""
    async with conn.pipeline():
        qc = await conn.execute(_LEASE, (instance_id,), prepare=True)
        sc = await conn.execute(signals.UNCONSUMED, ([instance_id],), prepare=True)
    row = await qc.fetchone()
    return (None if row is None else (int(row[0]), row[1])), await sc.fetchall()


_RELEASE = """
UPDATE dfc.queue
   SET lease_owner = NULL, lease_expires = NULL, claimed_at = NULL,
       run_at = CASE WHEN pokes <> %(seen)s THEN now() ELSE %(run_at)s END
 WHERE instance_id = %(id)s AND lease_owner = %(owner)s
RETURNING run_at
"""
_NOTIFY = f"SELECT pg_notify('{CHANNEL}', %s)"


async def release(
    conn: AConn,
    instance_id: str,
    owner: str,
    *,
    pokes_seen: int,
    run_at: datetime | None,
    notify: bool = False,
) -> None:
    """Give up the lease: the instance is due at ``run_at`` (None: only a signal wakes it), or
    at once when a signal arrived since ``pokes_seen``; ``notify`` tells other workers."""
    params = {"seen": pokes_seen, "run_at": run_at, "id": instance_id, "owner": owner}
    async with conn.pipeline():
        await conn.execute(_RELEASE, params, prepare=True)
        if notify:
            await conn.execute(_NOTIFY, (instance_id,))


# -- workers --------------------------------------------------------------------------------

_REGISTER = """
INSERT INTO dfc.workers (id, host, pid, started_at, heartbeat_at, concurrency)
VALUES (%s, %s, %s, now(), now(), %s)
"""


async def register(conn: AConn, owner: str, host: str, pid: int, concurrency: int) -> None:
    """Record a starting worker."""
    await conn.execute(_REGISTER, (owner, host, pid, concurrency))


_RELEASE_ALL = """
UPDATE dfc.queue SET lease_owner = NULL, lease_expires = NULL, claimed_at = NULL, run_at = now()
 WHERE lease_owner = %s
"""
_UNREGISTER = "DELETE FROM dfc.workers WHERE id = %s"


async def unregister(conn: AConn, owner: str) -> None:
    """A worker leaves: every lease it holds is released (due at once, other workers told)."""
    await conn.execute(_RELEASE_ALL, (owner,))
    await conn.execute(_NOTIFY, ("",))
    await conn.execute(_UNREGISTER, (owner,))


_PURGE_WORKERS = "DELETE FROM dfc.workers WHERE heartbeat_at < now() - interval '1 day'"


def purge_workers_txn(conn: Conn) -> None:
    """Forget workers not heard of for a day."""
    conn.execute(_PURGE_WORKERS)


async def listen(conn: AConn) -> None:
    """Subscribe ``conn`` to the queue's notifications (`CHANNEL`)."""
    await conn.execute(f"LISTEN {CHANNEL}")
