"""Instant recovery (migration 0007, `dfc.store.queue.reap`): workers hold life locks, and a
worker whose lock can be taken is dead — its instances are freed at once, ahead of other work;
a live worker's are not; a worker whose lock session is lost takes its lock again. The same
with real processes and SIGKILL: tests/faults/test_crash.py."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from runtime_support import B, info, start

from dfc.runtime.logs import StepLog
from dfc.runtime.worker import Worker, WorkerOptions
from dfc.store import queue

pytestmark = pytest.mark.db

AConn = psycopg.AsyncConnection[Any]


@contextlib.asynccontextmanager
async def session(url: str) -> AsyncIterator[AConn]:
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    async with conn:
        yield conn


async def one(conn: AConn, query: str, *params: object) -> Any:
    row = await (await conn.execute(query, params)).fetchone()
    assert row is not None
    return row[0] if len(row) == 1 else row


async def fake_worker(conn: AConn, owner: str, *, locked: bool) -> int:
    """Register worker ``owner`` whose life lock ``conn`` holds (``locked``) or nobody does."""
    lock_id = await queue.lock_worker(conn)
    await queue.register(conn, owner, "test", 0, 1, lock_id)
    if not locked:
        await conn.execute("SELECT pg_advisory_unlock(%s, %s)", (queue.LOCK_SPACE, lock_id))
    return lock_id


def test_the_reaper_frees_dead_workers_only(db_url: str) -> None:
    b = B("reap")
    ids = start(db_url, b.plan(b.sleep(60)), n=5)
    held_dead, owned_dead, held_live, held_old, waiting = ids

    async def main() -> None:
        async with session(db_url) as conn, session(db_url) as live:
            await fake_worker(conn, "dead", locked=False)
            await fake_worker(live, "live", locked=True)
            # A worker of a version before 0007: no lock; only its lease can free its rows.
            await conn.execute("INSERT INTO dfc.workers (id) VALUES ('old')")
            for iid, owner in ((held_dead, "dead"), (held_live, "live"), (held_old, "old")):
                assert [r.instance_id for r in await queue.claim(conn, owner, 1, 15, [iid])]
            # Owned by the dead worker, released until a timer: anyone's now, at that timer.
            await conn.execute(
                "UPDATE dfc.queue SET owned_by = 'dead', run_at = now() + interval '1 hour'"
                " WHERE instance_id = %s",
                (owned_dead,),
            )
            await conn.execute(
                "UPDATE dfc.queue SET run_at = now() - interval '1 hour' WHERE instance_id = %s",
                (waiting,),
            )

            assert await queue.reap(conn) == 2
            assert await queue.reap(conn) == 0  # the dead worker is forgotten
            rows = {
                r[0]: r[1:]
                for r in await (
                    await conn.execute(
                        "SELECT instance_id, lease_owner, owned_by, lease_expires <= now(),"
                        " run_at <= now(), run_at > now() + interval '50 minutes'"
                        " FROM dfc.queue"
                    )
                ).fetchall()
            }
            assert rows[held_dead] == ("dead", None, True, True, False)
            assert rows[owned_dead] == (None, None, None, False, True)
            assert rows[held_live] == ("live", None, False, False, False)
            assert rows[held_old] == ("old", None, False, False, False)
            assert set(
                r[0] for r in await (await conn.execute("SELECT id FROM dfc.workers")).fetchall()
            ) == {"live", "old"}

            # Ahead of work that was due an hour earlier; the claim says whom it resumes from.
            (first,) = await queue.claim(conn, "next", 1, 15)
            assert first.instance_id == held_dead
            assert (
                await one(
                    conn,
                    "SELECT detail->>'previous' FROM dfc.history"
                    " WHERE instance_id = %s AND event = 'resumed'",
                    held_dead,
                )
                == "dead"
            )

    asyncio.run(main())


def test_an_owned_instance_is_claimed_by_its_owner_alone(db_url: str) -> None:
    b = B("owned")
    (iid,) = start(db_url, b.plan(b.sql("SELECT 1")))

    async def main() -> None:
        async with session(db_url) as conn, session(db_url) as owner:
            await fake_worker(owner, "owner", locked=True)
            # Other tests' instances of this module's database wait for a signal meanwhile.
            await conn.execute("UPDATE dfc.queue SET run_at = NULL WHERE instance_id <> %s", (iid,))
            await conn.execute(
                "UPDATE dfc.queue SET owned_by = 'owner' WHERE instance_id = %s", (iid,)
            )
            assert await queue.claim(conn, "other", 8, 15) == []
            assert await queue.claim(conn, "other", 8, 15, [iid]) == []
            assert not await queue.backlog(conn)
            assert [r.instance_id for r in await queue.claim(conn, "owner", 8, 15, [iid])] == [iid]

    asyncio.run(main())


def test_a_worker_whose_lock_session_is_lost_takes_its_lock_again(db_url: str) -> None:
    b = B("relock")
    plan = b.plan(b.sql("SELECT 'done' AS d"))

    async def main() -> None:
        worker = Worker(
            db_url,
            WorkerOptions(poll_seconds=0.1, retention_every=0),
            log=StepLog(quiet=True),
        )
        task = asyncio.create_task(worker.run())
        try:
            async with session(db_url) as conn:

                async def lock_holder() -> int | None:
                    row = await (
                        await conn.execute(
                            "SELECT l.pid FROM pg_locks l JOIN dfc.workers w"
                            " ON l.objid::int = w.lock_id"
                            " WHERE l.locktype = 'advisory' AND l.classid::int = %s"
                            " AND l.objsubid = 2 AND l.granted AND w.id = %s",
                            (queue.LOCK_SPACE, worker.owner),
                        )
                    ).fetchone()
                    return None if row is None else int(row[0])

                async def wait_for_holder(other_than: int | None) -> int:
                    for _ in range(200):
                        pid = await lock_holder()
                        if pid is not None and pid != other_than:
                            return pid
                        await asyncio.sleep(0.05)
                    raise AssertionError("the worker does not hold its lock")

                first = await wait_for_holder(None)
                await conn.execute("SELECT pg_terminate_backend(%s)", (first,))
                # Found dead meanwhile or not, it registers again with the same lock.
                second = await wait_for_holder(first)
                assert second != first
                (iid,) = await asyncio.to_thread(start, db_url, plan)
                for _ in range(200):
                    if info(db_url, iid).finished:
                        break
                    await asyncio.sleep(0.05)
                assert info(db_url, iid).result == {"rows": [{"d": "done"}], "row_count": 1}
        finally:
            worker.request_stop()
            await asyncio.wait_for(task, 20)

    asyncio.run(main())
