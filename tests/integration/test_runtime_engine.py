"""The durable engine end to end: every node type through a real worker on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest
from runtime_support import B, info, run, run_until_done, start

from dfc.plan.model import PlanParam
from dfc.runtime import instances

pytestmark = [pytest.mark.db, pytest.mark.timeout(60)]


def test_sql_result_shape(db_url: str) -> None:
    b = B()
    root = b.sql("SELECT 1 AS a, 'x'::text AS b, 1.50::numeric AS n, NULL::int AS z, true AS t")
    out = run(db_url, b.plan(root))
    assert out.status == "completed"
    assert out.result == {
        "rows": [{"a": 1, "b": "x", "n": "1.50", "z": None, "t": True}],
        "row_count": 1,
    }


def test_text_that_needs_quoting_survives_the_checkpoint(db_url: str) -> None:
    b = B()
    root = b.sql("SELECT '50% it''s \\ \"q\" ü 😀' AS t, E'line\\nbreak' AS n")
    out = run(db_url, b.plan(root))
    assert out.result["rows"] == [{"t": '50% it\'s \\ "q" ü 😀', "n": "line\nbreak"}]


def test_dml_without_returning_returns_no_rows(db_url: str, conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE dml_t (k int)")
    b = B()
    root = b.sql("INSERT INTO dml_t SELECT generate_series(1, 3)")
    assert run(db_url, b.plan(root)).result == {"rows": [], "row_count": 0}
    assert conn.execute("SELECT count(*) FROM dml_t").fetchone() == (3,)


def test_arrays_of_user_types_are_json_arrays(db_url: str, conn: psycopg.Connection) -> None:
    conn.execute("CREATE TYPE engine_mood AS ENUM ('calm', 'busy')")
    b = B()
    root = b.then(
        b.sql("SELECT ARRAY['busy', 'calm']::engine_mood[] AS m", name="x"),
        b.sql("SELECT $x::jsonb AS m, ARRAY['calm']::engine_mood[] AS again"),
    )
    assert run(db_url, b.plan(root)).result == {
        "rows": [{"m": ["busy", "calm"], "again": ["calm"]}],
        "row_count": 1,
    }


def test_several_statements_give_the_last_result(db_url: str) -> None:
    b = B()
    root = b.sql("SELECT 1 AS a; SELECT 2 AS b")
    assert run(db_url, b.plan(root)).result == {"rows": [{"b": 2}], "row_count": 1}


def test_sequence_binds_results(db_url: str) -> None:
    b = B()
    root = b.then(b.sql("SELECT 41 AS v", name="x"), b.sql("SELECT $x + 1 AS v, {who} AS w"))
    plan = b.plan(root, params=[PlanParam(name="who", type="int", default=7, has_default=True)])
    assert run(db_url, plan).result["rows"] == [{"v": 42, "w": 7}]


def test_join_result_is_an_array_in_branch_order(db_url: str) -> None:
    b = B()
    root = b.join(b.sql("SELECT pg_sleep(0.2), 1 AS a"), b.sql("SELECT 2 AS b"))
    out = run(db_url, b.plan(root))
    assert out.result == [
        {"rows": [{"pg_sleep": "", "a": 1}], "row_count": 1},
        {"rows": [{"b": 2}], "row_count": 1},
    ]


def test_join_branches_run_concurrently(db_url: str) -> None:
    b = B()
    root = b.join(*(b.sql("SELECT pg_sleep(0.5)") for _ in range(3)))
    started = time.monotonic()
    out = run(db_url, b.plan(root))
    assert out.status == "completed"
    assert time.monotonic() - started < 1.4


def test_race_cancels_a_running_loser(db_url: str, conn: psycopg.Connection) -> None:
    b = B()
    root = b.race(b.sql("SELECT pg_sleep(30)"), b.sql("SELECT 'fast' AS w"))
    started = time.monotonic()
    out = run(db_url, b.plan(root))
    assert out.result == {"rows": [{"w": "fast"}], "row_count": 1}
    assert time.monotonic() - started < 5
    busy = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%%pg_sleep(30)%%' AND state = 'active' AND pid <> pg_backend_pid()"
    ).fetchone()
    assert busy == (0,)


def test_race_timer_wins(db_url: str) -> None:
    b = B()
    root = b.race(b.sql("SELECT pg_sleep(20)"), b.sleep(1))
    out = run(db_url, b.plan(root))
    assert out.result == {"slept": True, "seconds": 1}


def test_if_and_if_rows(db_url: str) -> None:
    b = B()
    root = b.then(
        b.sql("SELECT 1 AS id WHERE false", name="none"),
        b.if_rows(
            "none",
            b.sql("SELECT 'rows'"),
            b.if_(b.sql("SELECT 'no'"), b.sql("SELECT 'yes'"), b.sql("SELECT 'else' AS r")),
        ),
    )
    assert run(db_url, b.plan(root)).result == {"rows": [{"r": "else"}], "row_count": 1}


def test_loop_with_break_and_history_pruning(db_url: str, conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE loop_t (n int)")
    b = B()
    body = b.then(
        b.sql("INSERT INTO loop_t VALUES (1)"),
        b.sql("SELECT count(*) AS c FROM loop_t", name="c"),
        b.if_(b.sql("SELECT $c >= 25"), b.brk('{"done": $c}'), b.sql("SELECT 0")),
    )
    out = run(db_url, b.plan(b.loop(body)))
    assert out.result == {"done": 25}
    kept = conn.execute(
        "SELECT count(DISTINCT split_part(key, '/', 1)) FROM dfc.node_state WHERE instance_id = %s",
        (out.id,),
    ).fetchone()
    assert kept is not None and kept[0] <= 11  # bounded loop history (10 iterations kept)


def test_while_loop(db_url: str, conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE while_t (n int)")
    b = B()
    loop = b.loop(
        b.sql("INSERT INTO while_t VALUES (1) RETURNING 1 AS one"),
        b.sql("SELECT count(*) < 3 FROM while_t"),
    )
    out = run(db_url, b.plan(loop))
    assert out.status == "completed"
    assert conn.execute("SELECT count(*) FROM while_t").fetchone() == (3,)


def test_sleep_is_a_durable_timer(db_url: str, conn: psycopg.Connection) -> None:
    b = B()
    started = time.monotonic()
    out = run(db_url, b.plan(b.sleep(1)))
    assert out.result == {"slept": True, "seconds": 1}
    assert time.monotonic() - started >= 1.0
    events = [
        r[0]
        for r in conn.execute(
            "SELECT event FROM dfc.events WHERE instance_id = %s ORDER BY at, seq", (out.id,)
        )
    ]
    assert events[0] == "started" and events[-1] == "completed"
    assert "node_waiting" in events and "node_completed" in events


def test_failure_records_sqlstate_and_location(db_url: str) -> None:
    b = B("failing")
    root = b.then(b.sql("SELECT 1"), b.sql("SELECT 1/0"))
    out = run(db_url, b.plan(root))
    assert out.status == "failed"
    assert out.error["sqlstate"] == "22012"
    assert out.error["message"] == "division by zero"
    assert out.error["node"] == "n2"
    assert out.error["at"] == "failing.df:2:3"


def test_failing_step_after_a_chained_commit(db_url: str, conn: psycopg.Connection) -> None:
    """The first step's commit and the second step travel in one query: the first is durable,
    the second fails and rolls back alone."""
    conn.execute("CREATE TABLE chain_t (k text)")
    b = B("chained")
    root = b.then(
        b.sql("INSERT INTO chain_t VALUES ('a')"),
        b.sql("INSERT INTO chain_t VALUES ('b'); SELECT 1/0"),
    )
    out = run(db_url, b.plan(root))
    assert out.status == "failed" and out.error["node"] == "n2"
    assert [r[0] for r in conn.execute("SELECT k FROM chain_t")] == ["a"]
    states = dict(
        conn.execute(
            "SELECT node_id, status FROM dfc.node_state WHERE instance_id = %s", (out.id,)
        ).fetchall()
    )
    assert states == {"n1": "completed", "n2": "failed"}


def test_retry_reruns_a_failed_step(db_url: str, conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE retry_t (n int)")
    b = B()
    flaky = b.then(
        b.sql("INSERT INTO retry_t VALUES (1)", name=None),
        b.sql("SELECT 10 / (count(*) - 1) AS n FROM retry_t"),  # fails on the first attempt
    )
    out = run(db_url, b.plan(b.retry(flaky, attempts=3, backoff=0)))
    assert out.status == "completed", out.error
    assert out.result == {"rows": [{"n": 10}], "row_count": 1}


def test_timeout_fails_a_slow_step_quickly(db_url: str) -> None:
    b = B()
    started = time.monotonic()
    out = run(db_url, b.plan(b.timeout(b.sql("SELECT pg_sleep(20)"), 1)))
    assert out.status == "failed"
    assert time.monotonic() - started < 6


def test_autocommit_step_runs_outside_a_transaction(db_url: str, conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE vac_t (n int)")
    b = B()
    out = run(
        db_url, b.plan(b.then(b.sql("VACUUM vac_t", autocommit=True), b.sql("SELECT 'after' AS s")))
    )
    assert out.status == "completed", out.error
    assert out.result["rows"] == [{"s": "after"}]


def test_compensation_runs_undo_on_failure(db_url: str, conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE comp_t (what text)")
    b = B()
    step = b.undo(
        b.sql("INSERT INTO comp_t VALUES ('done')"), b.sql("INSERT INTO comp_t VALUES ('undone')")
    )
    out = run(db_url, b.plan(b.then(step, b.sql("SELECT 1/0"))))
    assert out.status == "failed"
    assert out.compensated is True
    rows = [r[0] for r in conn.execute("SELECT what FROM comp_t ORDER BY what")]
    assert rows == ["done", "undone"]


def test_substitution_failure_fails_the_node(db_url: str) -> None:
    b = B()
    root = b.then(b.sql("SELECT 1 AS id WHERE false", name="job"), b.sql("SELECT $job"))
    out = run(db_url, b.plan(root))
    assert out.status == "failed"
    assert out.error["code"] == "DFC601"


def test_several_workers_cooperate(db_url: str, conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE coop_t (k text PRIMARY KEY)")
    b = B("coop")
    steps = [b.sql(f"INSERT INTO coop_t VALUES ('{{sys_instance_id}}-{i}')") for i in range(5)]
    ids = start(db_url, b.plan(b.then(*steps)), n=40)
    workers = asyncio.run(
        run_until_done(db_url, ids, workers=3, concurrency=4, only=False, timeout=60)
    )
    assert conn.execute("SELECT count(*) FROM coop_t").fetchone() == (200,)
    statuses = {info(db_url, i).status for i in ids}
    assert statuses == {"completed"}
    assert sum(1 for w in workers if w.finished) >= 2  # the work was actually shared


def test_history_shows_node_events_in_order(db_url: str, conn: psycopg.Connection) -> None:
    """Final node events come from node records (dfc.events), between the instance's own."""
    b = B()
    sqls = [b.sql("SELECT 1"), b.sql("SELECT 2"), b.sql("SELECT 3")]
    out = run(db_url, b.plan(b.then(*sqls)))
    assert out.status == "completed"
    events = instances.history(conn, out.id)
    assert [e.event for e in events] == [
        "started",
        "running",
        "node_completed",
        "node_completed",
        "node_completed",
        "completed",
    ]
    steps = [e for e in events if e.event == "node_completed"]
    assert [e.node_id for e in steps] == sqls
    assert all(isinstance(e.detail, dict) and "ms" in e.detail for e in steps)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
