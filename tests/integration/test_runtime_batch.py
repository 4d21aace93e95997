"""Steps of several instances in one transaction (`dfc.runtime.batch`): each stays exactly
once, and a failing or waiting step does not take the others with it."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time

import psycopg
import pytest
from runtime_support import B, info, run_until_done, start

from dfc.runtime.batch import BatchSettings
from dfc.store.db import connect

pytestmark = [pytest.mark.db, pytest.mark.timeout(120)]

# One lane, so that the steps of all instances share its transactions.
ONE_LANE = BatchSettings(lanes=1)


@pytest.fixture
def table(conn: psycopg.Connection) -> str:
    name = f"batch_{secrets.token_hex(4)}"
    conn.execute(f"CREATE TABLE {name} (k text, n int)")
    return name


def test_a_failing_step_rolls_back_alone(db_url: str, table: str) -> None:
    b = B(f"ok{secrets.token_hex(3)}")
    ok = b.plan(
        b.then(
            *[b.sql(f"INSERT INTO {table} VALUES ('{{sys_instance_id}}', {i})") for i in range(3)]
        )
    )
    b = B(f"bad{secrets.token_hex(3)}")
    bad = b.plan(
        b.then(
            b.sql(f"INSERT INTO {table} VALUES ('{{sys_instance_id}}', 0)"),
            b.sql(f"INSERT INTO {table} VALUES ('{{sys_instance_id}}', 1); SELECT 1 / 0"),
        )
    )
    good_ids = start(db_url, ok, n=12)
    bad_ids = start(db_url, bad, n=4)
    asyncio.run(run_until_done(db_url, good_ids + bad_ids, concurrency=16, batch=ONE_LANE))
    with connect(db_url) as conn:
        for iid in good_ids:
            assert info(db_url, iid).status == "completed"
            rows = conn.execute(f"SELECT n FROM {table} WHERE k = %s ORDER BY n", (iid,)).fetchall()
            assert rows == [(0,), (1,), (2,)]  # each step exactly once
        for iid in bad_ids:
            out = info(db_url, iid)
            assert out.status == "failed"
            assert out.error["sqlstate"] == "22012"
            rows = conn.execute(f"SELECT n FROM {table} WHERE k = %s", (iid,)).fetchall()
            assert rows == [(0,)]  # the failing step's INSERT rolled back with it


def test_a_step_waiting_for_a_lock_runs_alone(db_url: str, table: str) -> None:
    with connect(db_url) as conn:
        conn.execute(f"INSERT INTO {table} VALUES ('hot', 0)")
    b = B(f"lock{secrets.token_hex(3)}")
    plan = b.plan(
        b.then(
            b.sql(f"UPDATE {table} SET n = n + 1 WHERE k = 'hot'"),
            b.sql(f"INSERT INTO {table} VALUES ('{{sys_instance_id}}', 1)"),
        )
    )
    ids = start(db_url, plan, n=6)
    held = threading.Event()

    def hold() -> None:
        # Longer than the lanes' lock_timeout: the waiting steps leave the batch.
        with psycopg.connect(db_url) as c, c.transaction():
            c.execute(f"SELECT * FROM {table} WHERE k = 'hot' FOR UPDATE")
            held.set()
            time.sleep(1.0)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(10)
    asyncio.run(run_until_done(db_url, ids, concurrency=8, batch=ONE_LANE))
    t.join()
    with connect(db_url) as conn:
        assert all(info(db_url, iid).status == "completed" for iid in ids)
        assert conn.execute(f"SELECT n FROM {table} WHERE k = 'hot'").fetchone() == (6,)
        assert conn.execute(f"SELECT count(*) FROM {table} WHERE k <> 'hot'").fetchone() == (6,)


def test_a_cancelled_instance_in_a_batch_does_not_stop_the_others(db_url: str, table: str) -> None:
    b = B(f"many{secrets.token_hex(3)}")
    plan = b.plan(
        b.then(
            *[b.sql(f"INSERT INTO {table} VALUES ('{{sys_instance_id}}', {i})") for i in range(30)]
        )
    )
    ids = start(db_url, plan, n=8)

    async def go() -> None:
        task = asyncio.create_task(run_until_done(db_url, ids, concurrency=8, batch=ONE_LANE))
        await asyncio.sleep(0.3)
        with connect(db_url) as conn:
            conn.execute("SELECT dfc.cancel_instance(%s, 'test')", (ids[0],))
        await task

    asyncio.run(go())
    with connect(db_url) as conn:
        for iid in ids[1:]:
            assert info(db_url, iid).status == "completed"
            rows = conn.execute(f"SELECT n FROM {table} WHERE k = %s ORDER BY n", (iid,)).fetchall()
            assert rows == [(i,) for i in range(30)]
        rows = conn.execute(f"SELECT n FROM {table} WHERE k = %s ORDER BY n", (ids[0],)).fetchall()
        assert [r[0] for r in rows] == list(range(len(rows)))  # a prefix, each step once


def test_results_in_a_batch_are_those_of_a_step_alone(db_url: str) -> None:
    """Values are read from the raw results with the same loaders, types the connection does
    not know yet (an array of an enum) learned in the batch's transaction."""
    suffix = secrets.token_hex(3)
    with connect(db_url) as conn:
        conn.execute(f"CREATE TYPE mood_{suffix} AS ENUM ('ok', 'meh')")
    query = (
        f"SELECT ARRAY['ok', 'meh']::mood_{suffix}[] AS moods, 1.50::numeric AS n,"
        " 'a\"b'::text AS t, NULL::int AS nothing, '{\"k\": [1, 2]}'::jsonb AS j"
    )
    b = B(f"vals{suffix}")
    plan = b.plan(b.then(b.sql("SELECT 1"), b.sql(query)))
    ids = start(db_url, plan, n=6)
    asyncio.run(run_until_done(db_url, ids, concurrency=8, batch=ONE_LANE))
    alone = start(db_url, plan)
    asyncio.run(run_until_done(db_url, alone, batch=None))
    expected = {
        "rows": [
            {"moods": ["ok", "meh"], "n": "1.50", "t": 'a"b', "nothing": None, "j": {"k": [1, 2]}}
        ],
        "row_count": 1,
    }
    for iid in [*ids, *alone]:
        out = info(db_url, iid)
        assert out.status == "completed", out.error
        assert out.result == expected
