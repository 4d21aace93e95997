"""Every step gets a clean session: what one step ``SET``s (settings, search_path, role, session
authorization) reaches neither the next step nor another instance on the same pooled
connection, and the worker's own bookkeeping stays correct and safe whatever a step set."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool
from runtime_support import FAST, B, info, run, run_until_done, start, wait_finished

from dfc.plan.model import Plan
from dfc.runtime.batch import BatchSettings
from dfc.runtime.logs import StepLog
from dfc.runtime.values import configure_loaders
from dfc.runtime.worker import Worker, WorkerOptions
from dfc.store.db import connect, worker_kwargs

pytestmark = [pytest.mark.db, pytest.mark.timeout(120)]

# What a step sees of its session; `backslash` shows how the step's own text was read.
PROBE = (
    "SELECT current_setting('standard_conforming_strings') AS scs,"
    " current_setting('search_path') AS search_path,"
    " current_setting('statement_timeout') AS statement_timeout,"
    " current_setting('client_encoding') AS client_encoding,"
    " current_setting('role') AS role,"
    " current_user::text AS current_user_, session_user::text AS session_user_,"
    " 'a\\b' AS backslash, pg_backend_pid() AS pid"
)

SETS = {
    "standard_conforming_strings": "SET standard_conforming_strings = off",
    "search_path": "SET search_path = elsewhere",
    "role": "SET ROLE dfc_step_role",
    "session_authorization": "SET SESSION AUTHORIZATION dfc_step_role",
    "statement_timeout": "SET statement_timeout = 4321",
    "client_encoding": "SET client_encoding = 'LATIN1'",
    "local": "SET LOCAL search_path = elsewhere",
    "set_config": "SELECT set_config('search_path', 'elsewhere', false)",
    "all_at_once": "SET standard_conforming_strings = off; SET search_path = elsewhere;"
    " SET statement_timeout = 4321; SET client_encoding = 'LATIN1';"
    " SET SESSION AUTHORIZATION dfc_step_role; SET ROLE dfc_step_role",
}

HOSTILE = "\\'); DROP TABLE victim; --"


@pytest.fixture(scope="module", autouse=True)
def _setup(db_url: str) -> None:
    with connect(db_url) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS elsewhere")
        # An unprivileged role: as it, the worker could not even write its checkpoint.
        conn.execute(
            "DO $$ BEGIN CREATE ROLE dfc_step_role NOLOGIN;"
            " EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
        conn.execute("CREATE TABLE IF NOT EXISTS victim (k int)")


def _rows(result: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = result["rows"]
    return rows


def _defaults(probe: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in probe.items() if k != "pid"}


# SET LOCAL outside a transaction block does nothing, so it is tried in one only.
CASES = [(s, False) for s in sorted(SETS)] + [(s, True) for s in sorted(SETS) if s != "local"]


@pytest.mark.parametrize(("setting", "autocommit"), CASES)
def test_the_next_step_gets_the_session_as_opened(
    db_url: str, setting: str, autocommit: bool
) -> None:
    b = B()
    before = b.sql(PROBE, "before")
    step = b.sql(f"{SETS[setting]}; SELECT pg_backend_pid() AS pid", autocommit=autocommit)
    after = b.sql(PROBE, "after")
    # Without batches, so that the three steps share the instance's connection.
    out = run(db_url, b.plan(b.then(before, step, after)), batch=None)
    assert out.status == "completed", out.error
    first = _rows(json.loads(_result_of(db_url, out.id, before)))[0]
    (last,) = _rows(out.result)
    assert first["pid"] == last["pid"]  # sequential steps share their instance's connection
    assert _defaults(last) == _defaults(first)
    assert last["scs"] == "on" and last["backslash"] == "a\\b"
    assert (
        last["role"] == "none" and last["current_user_"] == last["session_user_"] != "dfc_step_role"
    )


def test_a_step_in_a_batch_leaves_the_session_as_opened(db_url: str) -> None:
    """A step that SETs through a function (batchable: it is a SELECT) is reset before the next
    step in the batch's session: one lane, so the three steps share its connection."""
    b = B()
    before = b.sql(PROBE, "before")
    step = b.sql(f"{SETS['set_config']}; SELECT pg_backend_pid() AS pid")
    after = b.sql(PROBE, "after")
    out = run(db_url, b.plan(b.then(before, step, after)), batch=BatchSettings(lanes=1))
    assert out.status == "completed", out.error
    first = _rows(json.loads(_result_of(db_url, out.id, before)))[0]
    (last,) = _rows(out.result)
    assert first["pid"] == last["pid"]
    assert _defaults(last) == _defaults(first)
    assert last["search_path"] != "elsewhere"


def _result_of(url: str, iid: str, node: str) -> str:
    with connect(url) as conn:
        row = conn.execute(
            "SELECT result::text FROM dfc.node_state WHERE instance_id = %s AND node_id = %s",
            (iid, node),
        ).fetchone()
    assert row is not None
    return str(row[0])


def test_another_instance_on_the_same_connection_gets_the_session_as_opened(db_url: str) -> None:
    b = B("polluter")
    polluter = b.plan(b.sql(f"{SETS['all_at_once']}; SELECT pg_backend_pid() AS pid"))
    b = B("probe")
    probe = b.plan(b.sql(PROBE))
    polluted, seen = asyncio.run(_pollute_then_probe(db_url, polluter, probe))
    assert seen["pid"] == polluted  # the pool has one connection
    assert seen["scs"] == "on" and seen["backslash"] == "a\\b"
    assert seen["search_path"] == '"$user", public' and seen["statement_timeout"] == "0"
    assert seen["client_encoding"] == "UTF8" and seen["role"] == "none"
    assert seen["current_user_"] == seen["session_user_"] != "dfc_step_role"


async def _pollute_then_probe(url: str, polluter: Plan, probe: Plan) -> tuple[int, Any]:
    """A worker whose pool has a single connection runs the polluter, then the probe."""

    async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
        configure_loaders(conn)

    opts = WorkerOptions(
        concurrency=1, poll_seconds=0.05, retention_every=0, engine=FAST, batch=None
    )
    worker = Worker(url, opts, log=StepLog(quiet=True))
    worker.pool = AsyncConnectionPool(
        url, kwargs=worker_kwargs(url), min_size=1, max_size=1, open=False, configure=configure
    )
    task = asyncio.create_task(worker.run())
    try:
        results = []
        for plan in (polluter, probe):
            (iid,) = start(url, plan)
            await asyncio.wait_for(wait_finished(url, [iid]), 30)
            out = info(url, iid)
            assert out.status == "completed", out.error
            results.append(_rows(out.result)[0])
        return results[0]["pid"], results[1]
    finally:
        worker.request_stop()
        await asyncio.wait_for(task, 30)


def test_a_backslash_heavy_signal_is_stored_after_a_step_turned_standard_strings_off(
    db_url: str,
) -> None:
    b = B()
    root = b.then(b.sql("SET standard_conforming_strings = off; SELECT 1 AS one"), b.signal("go"))
    (iid,) = start(db_url, b.plan(root))
    payload = {"path": "C:\\new\\table\\", "quote": "it's \\'x\\'", "hostile": HOSTILE}
    with connect(db_url) as conn:
        conn.execute("SELECT dfc.signal_instance(%s, 'go', %s)", (iid, json.dumps(payload)))
    asyncio.run(run_until_done(db_url, [iid]))
    out = info(db_url, iid)
    assert out.status == "completed", out.error
    assert out.result == {"signal_name": "go", "timed_out": False, "data": payload}
    _assert_victim_survives(db_url)


@pytest.mark.parametrize("autocommit", [False, True], ids=["in_transaction", "autocommit"])
def test_a_hostile_value_cannot_drop_a_table_through_the_bookkeeping(
    db_url: str, autocommit: bool
) -> None:
    # Each step turns standard strings off before producing the value, which then travels in
    # the worker's checkpoint (a result, the next step's chained round trip, an error message).
    hostile = "chr(92) || chr(39) || '); DROP TABLE victim; --'"
    off = "SET standard_conforming_strings = off"
    b = B()
    first = b.sql(f"{off}; SELECT {hostile} AS v", autocommit=autocommit)
    second = b.sql(f"{off}; SELECT {hostile} AS v")
    third = b.sql(f"{off}; SELECT ({hostile})::int AS boom")
    out = run(db_url, b.plan(b.then(first, second, third)))
    assert out.status == "failed"
    assert HOSTILE in out.error["message"]  # invalid input syntax for type integer: "..."
    for node in (first, second):
        assert _rows(json.loads(_result_of(db_url, out.id, node))) == [{"v": HOSTILE}]
    _assert_victim_survives(db_url)


def _assert_victim_survives(url: str) -> None:
    with connect(url) as conn:
        try:
            conn.execute("SELECT count(*) FROM victim")
        except psycopg.errors.UndefinedTable:
            pytest.fail("the victim table was dropped")
