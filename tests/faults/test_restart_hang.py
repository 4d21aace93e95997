"""A worker after `pg_ctl restart -m immediate` (issue 11, docs/reliability.md): it works again
within a few seconds of the server being back, whatever its connection pool held.

A restart kills every pooled connection, and the pool finds a dead one only when it is used.
The claim loop and the reaper each took one per try, a second apart, so a pool grown to a few
dozen connections kept a worker from claiming anything for tens of seconds after the server was
back (the long restart soak measured stalls of 95 and 134 s). And an instance whose run was
abandoned in the outage (its release failed too) waited for its lease to lapse: 15 s by default.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import psycopg
import pytest
from fault_support import OwnServer, wait_until

from dfc.runtime import instances
from dfc.runtime.logs import StepLog
from dfc.runtime.worker import Worker, WorkerOptions
from dfc.store.db import connect
from dfc.store.registry import deploy
from plan_builder import Build

pytestmark = [pytest.mark.db, pytest.mark.slow]

BACK_WITHIN = 4.0
"""Seconds from the server accepting connections again to a new instance having finished: the
worker's LISTEN connection retries every ``poll_seconds`` (1 s), then everything is at once."""

HELD = 20
"""Instances run at once before the restart: each holds a pooled connection while it runs, so
the pool grows to about this many, all idle (and, after the restart, dead) once they finish."""


class ThreadedWorker:
    """An in-process `Worker` in a thread of its own (starting a `dfc worker` process costs
    seconds on a loaded machine)."""

    def __init__(self, url: str, options: WorkerOptions) -> None:
        self.worker = Worker(url, options, log=StepLog(quiet=True))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._run(),))
        self.error: BaseException | None = None

    async def _run(self) -> None:
        try:
            await self.worker.run()
        except BaseException as e:
            self.error = e

    def __enter__(self) -> ThreadedWorker:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.worker.request_stop)
        self.thread.join(30)
        self.loop.close()
        assert self.error is None, self.error


def _start(url: str, name: str, n: int) -> list[str]:
    with connect(url) as conn, conn.transaction():
        return [instances.start(conn, name) for _ in range(n)]


def _finished(url: str, ids: list[str]) -> bool:
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM dfc.instances WHERE id = ANY(%s) AND status = 'completed'",
                (ids,),
            ).fetchone()
    except psycopg.OperationalError:
        return False
    return row is not None and row[0] == len(ids)


@pytest.mark.timeout(120)
def test_a_worker_claims_again_at_once_after_an_immediate_restart(
    own_server: OwnServer,
) -> None:
    url = own_server.start()
    b = Build("held")
    # Long enough for all of them to run at once, so that the pool grows to HELD connections.
    slow = b.sql("SET LOCAL statement_timeout = 0; SELECT pg_sleep(0.5)")
    quick = Build("quick")
    one = quick.sql("SELECT 1")
    with connect(url) as conn:
        deploy(conn, b.plan(slow))
        deploy(conn, quick.plan(one))
    long = Build("long")
    long.sql("SET LOCAL statement_timeout = 0; SELECT pg_sleep(3)")  # under way at the restart
    with connect(url) as conn:
        deploy(conn, long.plan("n1"))
    # The default lease (15 s): an instance abandoned in the restart must not wait for it.
    options = WorkerOptions(concurrency=HELD, retention_every=0)
    with ThreadedWorker(url, options) as tw:
        held = _start(url, "held", HELD)
        assert wait_until(lambda: _finished(url, held), 30), "the instances before the restart"
        stats: dict[str, Any] = tw.worker.pool.get_stats()
        assert stats["pool_available"] >= HELD // 2, stats

        running = _start(url, "long", 2)
        assert wait_until(lambda: _claimed(url, running), 10), "the long instances started"
        own_server.restart_immediate()
        back = time.monotonic()
        fresh = _start(url, "quick", 3)
        done = wait_until(lambda: _finished(url, fresh), 30, step=0.05)
        took = time.monotonic() - back
        resumed = wait_until(lambda: _finished(url, running), 30, step=0.05)
        # The long step runs 3 s again from the start once its instance is taken up again.
        again = time.monotonic() - back - 3
    print(
        f"after the restart: new instances finished in {took:.2f} s, held ones resumed {again:.2f} s"
    )
    assert done, "new instances never finished after the restart"
    assert took < BACK_WITHIN, f"new instances finished {took:.2f} s after the server was back"
    assert resumed, "the instances running at the restart never finished"
    assert again < BACK_WITHIN, f"running instances were taken up again after {again:.2f} s"


def _claimed(url: str, ids: list[str]) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM dfc.queue WHERE instance_id = ANY(%s) AND lease_owner IS NOT NULL",
            (ids,),
        ).fetchone()
    return row is not None and row[0] == len(ids)
