"""Steps run as the role that started their instance, through its executors (SPEC §7): with
its privileges, unable to leave it, with results converted exactly as for the worker's own
steps, and exactly once."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from runtime_support import B, info, run_until_done

from dfc.plan.model import Plan
from dfc.store.db import connect
from dfc.store.instances import InstanceInfo
from dfc.store.registry import deploy

pytestmark = [pytest.mark.db, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def role(db_url: str) -> Iterator[str]:
    """A role with executors, a schema of its own and rights on the module's tables."""
    name = f"dfc_t_{secrets.token_hex(4)}"
    ident = sql.Identifier(name)
    with connect(db_url) as c:
        c.execute(sql.SQL("CREATE ROLE {}").format(ident))
        c.execute("SELECT dfc.create_executor(%s::regrole)", (name,))
        c.execute(sql.SQL("CREATE SCHEMA AUTHORIZATION {}").format(ident))
        c.execute(sql.SQL("CREATE TABLE {}.mine (v int)").format(ident))
        c.execute(sql.SQL("INSERT INTO {}.mine VALUES (7)").format(ident))
        c.execute(sql.SQL("ALTER TABLE {}.mine OWNER TO {}").format(ident, ident))
        c.execute("CREATE DOMAIN posint AS int CHECK (VALUE > 0)")
        c.execute(
            "CREATE TABLE shared (id posint, n numeric(10,2), b bit(8), c char(5), "
            "v varchar(3), d posint[])"
        )
        c.execute("INSERT INTO shared VALUES (1, 1.5, B'10101010', 'ab', 'xyz', '{1,2}')")
        c.execute("CREATE TABLE secret (s text)")
        c.execute("CREATE TABLE log (k text PRIMARY KEY)")
        for table in ("shared", "log"):
            c.execute(sql.SQL("GRANT ALL ON {} TO {}").format(sql.Identifier(table), ident))
    yield name
    with connect(db_url) as c:
        c.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(ident))
        c.execute(sql.SQL("DROP ROLE {}").format(ident))


def worker_role(url: str) -> str:
    with connect(url) as c:
        row = c.execute("SELECT current_user").fetchone()
        assert row is not None
        return str(row[0])


def start_as(url: str, plan: Plan, created_by: str) -> str:
    """Deploy ``plan`` and start an instance of it for ``created_by`` (as df.start does)."""
    with connect(url) as c:
        version = deploy(c, plan).version
        row = c.execute(
            "SELECT dfc.start_instance(%s, %s, NULL, '{}', %s)", (plan.name, version, created_by)
        ).fetchone()
        assert row is not None
        return str(row[0])


def run_as(url: str, plan: Plan, created_by: str) -> InstanceInfo:
    iid = start_as(url, plan, created_by)
    asyncio.run(run_until_done(url, [iid]))
    return info(url, iid)


def one_step(query: str, *, autocommit: bool = False) -> Plan:
    b = B(f"w{secrets.token_hex(3)}")
    return b.plan(b.sql(query, autocommit=autocommit))


def test_a_step_runs_as_its_role(db_url: str, role: str) -> None:
    done = run_as(db_url, one_step("SELECT current_user AS u, session_user AS s"), role)
    assert done.status == "completed", done.error
    (row,) = done.result["rows"]
    assert row["u"] == role
    assert row["s"] == worker_role(db_url)  # the session stays the worker's


def test_the_roles_own_schema_is_found_by_name(db_url: str, role: str) -> None:
    # "$user" in the search path is the role: its table needs no schema name.
    done = run_as(db_url, one_step("SELECT v FROM mine"), role)
    assert done.status == "completed", done.error
    assert done.result == {"rows": [{"v": 7}], "row_count": 1}


def test_a_table_the_role_cannot_read_fails_the_step(db_url: str, role: str) -> None:
    done = run_as(db_url, one_step("SELECT s FROM secret"), role)
    assert done.status == "failed"
    assert done.error["message"] == "permission denied for table secret"
    assert done.error["sqlstate"] == "42501"
    # The worker itself may read it: the same step started by the worker's role completes.
    assert run_as(db_url, one_step("SELECT s FROM secret"), worker_role(db_url)).status == (
        "completed"
    )


@pytest.mark.parametrize(
    "escape",
    [
        "RESET ROLE",
        "SET ROLE NONE",
        "SET ROLE {worker}",
        "SET LOCAL ROLE {worker}",
        "SET SESSION AUTHORIZATION {worker}",
        "RESET SESSION AUTHORIZATION",
        "SELECT set_config('role', '{worker}', false)",
        "DO $$BEGIN RESET ROLE; END$$",
        "DO $$BEGIN EXECUTE 'SET ROLE {worker}'; END$$",
        "DO $$BEGIN SET SESSION AUTHORIZATION {worker}; END$$",
        "RESET ROLE; SELECT current_user AS u",
        "SELECT 1; SET ROLE {worker}; SELECT current_user AS u",
    ],
)
def test_a_step_cannot_leave_its_role(db_url: str, role: str, escape: str) -> None:
    query = escape.format(worker=worker_role(db_url)) + "; SELECT s FROM secret"
    done = run_as(db_url, one_step(query), role)
    assert done.status == "failed", done.result
    assert done.error["message"] in (
        'cannot set parameter "role" within security-definer function',
        'cannot set parameter "session_authorization" within security-definer function',
    )


QUERIES = {
    "numeric": "SELECT 123456.78900000::numeric AS n, 0.1::numeric(10,4) AS m, n FROM shared",
    "timestamptz": "SELECT '2024-05-01 12:00:00.5+02'::timestamptz AS t, now() - now() AS i",
    "arrays": "SELECT ARRAY[1, NULL, 3] AS a, ARRAY[[1.5, 2]]::numeric[] AS b, d FROM shared",
    "json": """SELECT '{"a": [1, 2.5, null]}'::jsonb AS j, '"s"'::json AS k""",
    "bytea": "SELECT '\\x0a1b'::bytea AS b, ''::bytea AS e",
    "domain": "SELECT id, id + 1 AS next, 5::posint AS lit FROM shared",
    "typmods": "SELECT b, c, v, c::varchar(2) AS cut FROM shared",
    "duplicate names": "SELECT 1 AS a, 'two' AS a, 3 AS b",
    "no rows": "SELECT id FROM shared WHERE false",
    "values": "VALUES (1, 'x'), (2, 'y')",
    "dml": "UPDATE shared SET n = n WHERE false",
    "returning a domain": "UPDATE shared SET n = n RETURNING id, n",
    "with dml": "WITH u AS (UPDATE shared SET n = n RETURNING n) SELECT count(*) AS c FROM u",
    "several statements": "CREATE TEMP TABLE t_tmp (x int); INSERT INTO t_tmp VALUES (4), (5); "
    "SELECT x FROM t_tmp ORDER BY x DESC",
    "show": "SHOW standard_conforming_strings",
    "statements without rows": "CREATE TEMP TABLE t2 (x int) ON COMMIT DROP; "
    "INSERT INTO t2 VALUES (1), (2); UPDATE t2 SET x = x + 1",
    "null": "SELECT NULL::int AS z, NULL AS u",
}


def results_of(url: str, created_by: str) -> dict[str, Any]:
    out = {}
    for name, query in QUERIES.items():
        done = run_as(url, one_step(query), created_by)
        assert done.status == "completed", (name, done.error)
        out[name] = done.result
    return out


def test_results_convert_exactly_as_for_the_workers_own_steps(db_url: str, role: str) -> None:
    mine, theirs = results_of(db_url, worker_role(db_url)), results_of(db_url, role)
    for name in QUERIES:
        assert theirs[name] == mine[name], name
    assert theirs["domain"]["rows"] == [{"id": 1, "next": 2, "lit": 5}]
    assert theirs["typmods"]["rows"] == [{"b": "10101010", "c": "ab   ", "v": "xyz", "cut": "ab"}]
    assert theirs["duplicate names"]["rows"] == [{"a": "two", "b": 3}]
    assert theirs["several statements"]["rows"] == [{"x": 5}, {"x": 4}]
    assert theirs["statements without rows"]["rows"] == []


def test_an_error_points_into_the_steps_text(db_url: str, role: str) -> None:
    query = "SELECT 1; SELECT nosuch FROM shared"
    mine = run_as(db_url, one_step(query), worker_role(db_url))
    theirs = run_as(db_url, one_step(query), role)
    assert theirs.status == mine.status == "failed"
    assert theirs.error["message"] == mine.error["message"] == 'column "nosuch" does not exist'
    assert theirs.error["position"] == query.index("nosuch") + 1
    earlier = "SELECT nosuch FROM shared; SELECT 1"
    failed = run_as(db_url, one_step(earlier), role)
    assert failed.error["message"] == 'column "nosuch" does not exist'
    assert failed.error["position"] == earlier.index("nosuch") + 1
    in_rows = "SELECT 1 / (id - 1) FROM shared"
    assert run_as(db_url, one_step(in_rows), role).error["message"] == "division by zero"
    dml = "SELECT 1; INSERT INTO nosuch VALUES (1)"
    failed = run_as(db_url, one_step(dml), role)
    assert failed.error["message"] == 'relation "nosuch" does not exist'
    assert failed.error["position"] == dml.index("nosuch") + 1
    domain = "INSERT INTO shared (id) VALUES (-1)"
    mine, theirs = (run_as(db_url, one_step(domain), who) for who in (worker_role(db_url), role))
    assert theirs.error["message"] == mine.error["message"]
    assert theirs.error["sqlstate"] == mine.error["sqlstate"] == "23514"


def test_autocommit_steps_go_through_the_executor_too(db_url: str, role: str) -> None:
    done = run_as(db_url, one_step("VACUUM shared", autocommit=True), role)
    assert done.status == "failed"
    assert done.error["message"] == "VACUUM cannot be executed from a function"


def test_a_role_without_executors_fails_its_instance(db_url: str) -> None:
    name = f"dfc_t_{secrets.token_hex(4)}"
    with connect(db_url) as c:
        c.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(name)))
    try:
        done = run_as(db_url, one_step("SELECT 1"), name)
        assert done.status == "failed"
        assert "df.grant_usage" in done.error["message"]
        assert name in done.error["message"]
        gone = run_as(db_url, one_step("SELECT 1"), "dfc_no_such_role")
        assert gone.status == "failed"
        assert "does not exist" in gone.error["message"]
    finally:
        with connect(db_url) as c:
            c.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def test_steps_of_a_sequence_commit_once_each(db_url: str, role: str) -> None:
    b = B(f"seq{secrets.token_hex(3)}")
    steps = [b.sql(f"INSERT INTO log VALUES ('{{sys_instance_id}}-{i}')") for i in range(5)]
    done = run_as(db_url, b.plan(b.then(*steps)), role)
    assert done.status == "completed", done.error
    with connect(db_url) as c:
        rows = c.execute("SELECT count(*) FROM log WHERE k LIKE %s", (f"{done.id}-%",)).fetchone()
        assert rows == (5,)
        history = c.execute(
            "SELECT count(*) FROM dfc.events WHERE instance_id = %s AND event = 'node_completed'",
            (done.id,),
        ).fetchone()
        assert history == (5,)


def test_the_session_is_clean_after_a_step(db_url: str, role: str) -> None:
    b = B(f"clean{secrets.token_hex(3)}")
    first = b.sql("SET search_path = nowhere; SET work_mem = '1234kB'; SELECT 1")
    second = b.sql("SELECT current_setting('work_mem') AS w, current_user AS u")
    done = run_as(db_url, b.plan(b.then(first, second)), role)
    assert done.status == "completed", done.error
    assert done.result["rows"][0]["w"] != "1234kB"
    assert done.result["rows"][0]["u"] == role


def test_worker_sessions_say_they_run_a_workflow(db_url: str, role: str) -> None:
    b = B(f"flag{secrets.token_hex(3)}")
    first = b.sql("SET dfc.in_workflow = off; SELECT current_setting('dfc.in_workflow') AS f")
    second = b.sql("SELECT current_setting('dfc.in_workflow') AS f", name=None)
    for who in (role, worker_role(db_url)):
        done = run_as(db_url, b.plan(b.then(first, second)), who)
        assert done.status == "completed", done.error
        assert done.result == {"rows": [{"f": "on"}], "row_count": 1}


def test_plain_connections_do_not(conn: psycopg.Connection[Any]) -> None:
    row = conn.execute("SELECT current_setting('dfc.in_workflow', true)").fetchone()
    assert row is not None and row[0] in (None, "")


def test_a_worker_that_may_not_set_role_describes_as_itself(
    db_url: str, role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from dfc.store import roles

    real = roles.lookup

    async def without_set_role(conn: Any, names: Any) -> dict[str, roles.RunAs]:
        return {k: replace(v, can_set_role=False) for k, v in (await real(conn, names)).items()}

    monkeypatch.setattr(roles, "lookup", without_set_role)
    done = run_as(db_url, one_step("SELECT id, current_user AS u FROM shared"), role)
    assert done.result == {"rows": [{"id": 1, "u": role}], "row_count": 1}
    # Names are then read as the worker reads them: the role's own schema is not searched.
    missing = run_as(db_url, one_step("SELECT v FROM mine"), role)
    assert missing.error["message"] == 'relation "mine" does not exist'
