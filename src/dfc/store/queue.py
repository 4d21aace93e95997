"""The work queue (``dfc.queue``) and the workers that serve it (``dfc.workers``) (SPEC §5.3).

A queue row exists while its instance is unfinished. Workers claim due rows (``run_at <=
now()``) with ``FOR UPDATE SKIP LOCKED`` under a lease; while a row is held its ``run_at``
equals ``lease_expires``, so the rows of a worker that stops extending them become due again
when the leases expire. ``pokes`` counts signals and cancels: a worker that sees it move knows
to look again. Changes that concern waiting workers are announced on the ``dfc_work`` channel
(the payload names the instance; empty means "look").

A dead worker is found sooner than its leases expire (migration 0007): every worker holds the
session advisory lock (`LOCK_SPACE`, its ``lock_id``) while it lives (`lock_worker`), and `reap`
takes the locks it can — their sessions are gone — and puts the instances those workers held at
the head of the queue. A row ``owned_by`` a worker is claimed by that worker alone while it lives
(`own_txn`, for `dfc run`).
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

LOCK_SPACE = int.from_bytes(b"dfcL", "big")
"""First key of the workers' advisory locks (fits an int4; the registry's deploy locks use
another, and users' one-bigint locks live in a key space of their own)."""

_CLAIM = """
WITH c AS (
    SELECT instance_id, lease_owner AS previous FROM dfc.queue
     WHERE {due} {only}
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
# Given its instances (`dfc run`), a worker also claims the ones it owns without having been
# given them: the df.call children of its instances (dfc.store.children.link_txn).
_ONLY = (
    "AND (instance_id = ANY(%(only)s) OR owned_by = %(owner)s)"
    " AND (owned_by IS NULL OR owned_by = %(owner)s)"
)
_NOT_OWNED = "AND owned_by IS NULL"
_DUE = "run_at <= now()"
# A virtual clock (`dfc.runtime.clock`) may be ahead of the server's: timers are due by its
# time, while leases stay real (a held row's ``run_at`` is its lease's real expiry).
_DUE_VIRTUAL = "run_at <= %(now)s AND (lease_expires IS NULL OR lease_expires <= now())"


@functools.lru_cache(maxsize=256)
def _claim_query(n: int, only: bool, compiled: bool, virtual: bool = False) -> str:
    # The batch size is written into the text, not passed: with LIMIT as a parameter PostgreSQL
    # never trusted the prepared statement's generic plan and planned the claim again on every
    # call (0.8 ms of the server's CPU each time, a tenth of the per-instance cost).
    return _CLAIM.format(
        n=int(n),
        due=_DUE_VIRTUAL if virtual else _DUE,
        only=" ".join([_ONLY if only else _NOT_OWNED] + ([_COMPILED] if compiled else [])),
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
    now: datetime | None = None,
) -> list[ClaimRow]:
    """Lease up to ``n`` due instances (only those in ``only``, when given, else only those no
    worker owns; only those with a workflow version, with ``compiled_only``) to ``owner``; mark
    pending ones running. Due means by the server's clock, or by ``now`` when given (a virtual
    clock's time)."""
    params: dict[str, Any] = {"owner": owner, "lease": lease_seconds}
    if only is not None:
        params["only"] = list(only)
    if now is not None:
        params["now"] = now
    query = _claim_query(n, only is not None, compiled_only, now is not None)
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


_UNCLAIM_ORPHANS = """
UPDATE dfc.queue SET lease_owner = NULL, lease_expires = NULL, claimed_at = NULL, run_at = now()
 WHERE lease_owner = %s AND instance_id <> ALL(%s)
"""


async def unclaim_orphans(conn: AConn, owner: str, held: Sequence[str]) -> int:
    """Give back every lease of ``owner`` but those of ``held`` (the instances it runs): leases
    that no run of it holds (a claim whose answer was lost with its connection, a run that
    could not release), due again at once. Returns how many."""
    cur = await conn.execute(_UNCLAIM_ORPHANS, (owner, list(held)))
    return cur.rowcount


_BACKLOG = "SELECT EXISTS (SELECT 1 FROM dfc.queue WHERE run_at <= now() AND owned_by IS NULL)"


async def backlog(conn: AConn) -> bool:
    """Whether any instance that any worker may claim is due."""
    row = await (await conn.execute(_BACKLOG, prepare=True)).fetchone()
    return bool(row and row[0])


_PENDING = """
SELECT (SELECT count(*) FROM dfc.queue WHERE lease_owner IS NOT NULL OR run_at <= %(now)s)
     + (SELECT count(*) FROM dfc.schedules WHERE next_fire_at IS NULL OR next_fire_at <= %(now)s),
       (SELECT min(run_at) FROM dfc.queue WHERE lease_owner IS NULL AND run_at > %(now)s),
       (SELECT min(next_fire_at) FROM dfc.schedules WHERE next_fire_at > %(now)s)
"""


class Pending(NamedTuple):
    """What is left to do at a time: ``busy`` counts the instances held by a worker or due and
    the schedules due (or not armed yet); the other instances wait for a signal or for a timer,
    the earliest of which is ``next_timer``, and the schedules for ``next_fire``."""

    busy: int
    next_timer: datetime | None
    next_fire: datetime | None


def pending(conn: Conn, now: datetime) -> Pending:
    """What is left at ``now`` (a virtual clock's time: the test kit, `dfc.testing`, moves its
    clock to the next timer or fire time when nothing is ``busy``)."""
    row = conn.execute(_PENDING, {"now": now}).fetchone()
    assert row is not None
    return Pending(int(row[0]), row[1], row[2])


def notify(conn: Conn) -> None:
    """Tell every listening worker to look for work."""
    conn.execute(_NOTIFY, ("",))


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


# -- workers ---------------------------------------------------------------------------------

_NEW_LOCK = f"""
SELECT n FROM (SELECT nextval('dfc.worker_locks')::int4 AS n) AS s
 WHERE pg_try_advisory_lock({LOCK_SPACE}, n)
"""
_RETAKE_LOCK = f"SELECT pg_advisory_lock({LOCK_SPACE}, %s)"


async def lock_worker(conn: AConn, lock_id: int | None = None) -> int:
    """Take a worker's life lock on ``conn`` (a session of its own, kept open while the worker
    lives): a new key, or ``lock_id`` again after the session was lost. Returns the key."""
    if lock_id is not None:
        # Free unless a reaper holds it for the moment of its transaction: wait for that.
        await conn.execute(_RETAKE_LOCK, (lock_id,))
        return lock_id
    while True:  # a key is taken only after the sequence wrapped around: draw another
        row = await (await conn.execute(_NEW_LOCK)).fetchone()
        if row is not None:
            return int(row[0])


_REGISTER = """
INSERT INTO dfc.workers AS w (id, host, pid, started_at, heartbeat_at, concurrency, lock_id)
VALUES (%s, %s, %s, now(), now(), %s, %s)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), lock_id = excluded.lock_id
"""


async def register(
    conn: AConn, owner: str, host: str, pid: int, concurrency: int, lock_id: int
) -> None:
    """Record a starting worker holding its lock ``lock_id``, or again one whose lock session
    was lost (a reaper that took the lock meanwhile forgot it)."""
    await conn.execute(_REGISTER, (owner, host, pid, concurrency, lock_id))


# The claim orders by run_at: '-infinity' puts a dead worker's instances before all other due
# work (they were running; created_at would tie with instances started in the same transaction).
# lease_owner stays, so that the claim records `resumed` with the previous worker; a worker
# found dead that was in fact alive (its lock's session was lost) extends its leases again and
# goes on, unless another worker claimed them first, whose lease then fences its checkpoints.
_REAP = f"""
WITH dead AS (
    SELECT id FROM dfc.workers
     WHERE lock_id IS NOT NULL AND pg_try_advisory_xact_lock({LOCK_SPACE}, lock_id)
), ids AS (
    SELECT array_agg(id) AS ids FROM dead
), freed AS (
    UPDATE dfc.queue AS q
       SET run_at = CASE WHEN q.lease_owner = ANY(ids.ids) THEN '-infinity' ELSE q.run_at END,
           lease_expires = CASE WHEN q.lease_owner = ANY(ids.ids) THEN now()
                                ELSE q.lease_expires END,
           owned_by = NULL
      FROM ids
     WHERE q.lease_owner = ANY(ids.ids) OR q.owned_by = ANY(ids.ids)
 RETURNING q.instance_id
), forgotten AS (
    DELETE FROM dfc.workers AS w USING dead WHERE w.id = dead.id
)
SELECT count(*) FROM freed
"""


async def reap(conn: AConn) -> int:
    """Free the instances of workers whose life locks can be taken (they are gone): the ones
    they held are due at once, ahead of other work, and those they owned are anyone's; the
    dead workers are forgotten and, when instances were freed, other workers told. Returns how
    many instances were freed."""
    row = await (await conn.execute(_REAP, prepare=True)).fetchone()
    freed = 0 if row is None else int(row[0])
    if freed:
        await conn.execute(_NOTIFY, ("",))
    return freed


_OWN = f"""
UPDATE dfc.queue AS q SET owned_by = %(owner)s
 WHERE q.instance_id = ANY(%(ids)s)
   AND (q.owned_by IS NULL OR q.owned_by = %(owner)s
        OR NOT EXISTS (SELECT 1 FROM dfc.workers AS w
                        WHERE w.id = q.owned_by AND w.lock_id IS NOT NULL
                          AND NOT pg_try_advisory_xact_lock({LOCK_SPACE}, w.lock_id)))
RETURNING q.instance_id
"""
_OWNER = "SELECT owned_by FROM dfc.queue WHERE instance_id = ANY(%s) AND owned_by <> %s"


def own_txn(conn: Conn, instance_ids: Collection[str], owner: str) -> list[str]:
    """Make ``owner`` the only worker that may claim these unfinished instances while it lives
    (in the caller's transaction), unless another live worker owns them; returns the ids it
    now owns."""
    rows = conn.execute(_OWN, {"owner": owner, "ids": list(instance_ids)}).fetchall()
    return [r[0] for r in rows]


def owners_txn(conn: Conn, instance_ids: Collection[str], owner: str) -> list[str]:
    """The other workers that own any of these instances."""
    return [r[0] for r in conn.execute(_OWNER, (list(instance_ids), owner)).fetchall()]


_RELEASE_ALL = """
UPDATE dfc.queue
   SET lease_owner = NULL, lease_expires = NULL, claimed_at = NULL, run_at = now(),
       owned_by = CASE WHEN owned_by = %(owner)s THEN NULL ELSE owned_by END
 WHERE lease_owner = %(owner)s
"""
_DISOWN = "UPDATE dfc.queue SET owned_by = NULL WHERE owned_by = %(owner)s"
_UNREGISTER = "DELETE FROM dfc.workers WHERE id = %s"


async def unregister(conn: AConn, owner: str) -> None:
    """A worker leaves: every lease it holds is released (due at once, other workers told) and
    the instances it owns become anyone's."""
    await conn.execute(_RELEASE_ALL, {"owner": owner})
    await conn.execute(_DISOWN, {"owner": owner})
    await conn.execute(_NOTIFY, ("",))
    await conn.execute(_UNREGISTER, (owner,))


_PURGE_WORKERS = "DELETE FROM dfc.workers WHERE heartbeat_at < now() - interval '1 day'"


def purge_workers_txn(conn: Conn) -> None:
    """Forget workers not heard of for a day."""
    conn.execute(_PURGE_WORKERS)


async def listen(conn: AConn) -> None:
    """Subscribe ``conn`` to the queue's notifications (`CHANNEL`)."""
    await conn.execute(f"LISTEN {CHANNEL}")
