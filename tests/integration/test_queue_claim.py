"""The claim tells which instances have nothing to load (issue 10: one round trip less per
claimed instance that never ran)."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from runtime_support import B, start

from dfc.runtime import instances
from dfc.store import queue

pytestmark = pytest.mark.db


def claim_all(url: str, owner: str) -> dict[str, bool]:
    async def go() -> dict[str, bool]:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            return {r.instance_id: r.fresh for r in await queue.claim(conn, owner, 10, 0.1)}

    return asyncio.run(go())


def test_only_a_never_run_never_signalled_instance_is_fresh(
    db_url: str, conn: psycopg.Connection
) -> None:
    b = B("fresh")
    plan = b.plan(b.signal("go"))
    quiet, signalled = start(db_url, plan, n=2)
    instances.signal(conn, signalled, "go", "early")
    assert claim_all(db_url, "w1") == {quiet: True, signalled: False}
    conn.execute("UPDATE dfc.queue SET run_at = now() - interval '1 second'")
    # Claimed again (its lease ran out): it has run, whatever it recorded must be loaded.
    assert claim_all(db_url, "w2") == {quiet: False, signalled: False}
