"""Instances started from SQL carry a pg_durable graph; a worker compiles it, deploys it as
``sql:<label>``, pins the instance and runs it (SPEC §7). The rows are written as the SQL
surface's df.start writes them (migration 0005): workflow and version NULL, the graph's
canonical text, df.start's options, the caller's role and variables."""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result
from psycopg.types.json import Jsonb
from runtime_support import info, run_until_done

from dfc.cli.main import main
from dfc.compiler import graph_compiler
from dfc.runtime.logs import StepLog
from dfc.store.db import connect

pytestmark = [pytest.mark.db, pytest.mark.timeout(120)]

Conn = psycopg.Connection[Any]


def dfc(*args: str) -> Result:
    return CliRunner().invoke(main, ["--no-color", *args], catch_exceptions=False)


def sql_node(query: str, name: str | None = None) -> str:
    bound = "" if name is None else f',"result_name":{json.dumps(name)}'
    return f'{{"node_type":"SQL","query":{json.dumps(query)}{bound}}}'


def then(a: str, b: str) -> str:
    return f'{{"node_type":"THEN","left_node":{a},"right_node":{b}}}'


def start_graph(
    conn: Conn,
    graph: str,
    label: str | None = None,
    *,
    created_by: str | None = None,
    options: dict[str, Any] | None = None,
    vars: dict[str, str] | None = None,
) -> str:
    """What df.start does once it has checked the graph (migration 0005, dfc.start_instance)."""
    iid = secrets.token_hex(4)
    with conn.transaction():
        conn.execute(
            "INSERT INTO dfc.instances (id, workflow, version, label, vars, status, created_by, "
            "graph, options) VALUES (%s, NULL, NULL, %s, %s, 'pending', "
            "coalesce(%s, current_user), %s, %s)",
            (
                iid,
                label,
                Jsonb(vars or {}),
                created_by,
                graph,
                None if options is None else Jsonb(options),
            ),
        )
        conn.execute("INSERT INTO dfc.queue (instance_id, run_at) VALUES (%s, now())", (iid,))
        conn.execute(
            "INSERT INTO dfc.history (instance_id, event, detail) VALUES (%s, 'started', "
            "jsonb_build_object('workflow', NULL, 'version', NULL, 'label', %s::text))",
            (iid, label),
        )
        conn.execute("SELECT pg_notify('dfc_work', %s)", (iid,))
    return iid


def run(url: str, *ids: str, **kw: Any) -> None:
    asyncio.run(run_until_done(url, list(ids), compile_graph=graph_compiler, **kw))


def label() -> str:
    return f"job_{secrets.token_hex(3)}"


def test_a_graph_is_compiled_deployed_pinned_and_run(db_url: str, conn: Conn) -> None:
    lab = label()
    graph = then(sql_node("SELECT 41 AS v", "x"), sql_node("SELECT $x + 1 AS answer"))
    iid = start_graph(conn, graph, lab, vars={"who": "me"})
    run(db_url, iid)
    done = info(db_url, iid)
    assert done.status == "completed", done.error
    assert done.result == {"rows": [{"answer": 42}], "row_count": 1}
    assert (done.workflow, done.version) == (f"sql:{lab}", 1)
    source = conn.execute(
        "SELECT source FROM dfc.workflows WHERE name = %s", (f"sql:{lab}",)
    ).fetchone()
    assert source == ("'SELECT 41 AS v' |=> 'x' ~> 'SELECT $x + 1 AS answer';\n",)
    events = [
        e
        for (e,) in conn.execute(
            "SELECT event FROM dfc.history WHERE instance_id = %s ORDER BY seq", (iid,)
        )
    ]
    assert events[:3] == ["started", "running", "compiled"]
    # The CLI shows it like any instance.
    r = dfc("ls", "--db", db_url, "--workflow", f"sql:{lab}")
    assert r.exit_code == 0 and iid in r.stdout and f"sql:{lab} v1" in r.stdout, r.output
    r = dfc("status", iid, "--db", db_url)
    assert r.exit_code == 0 and "completed" in r.stdout and f"sql:{lab} v1" in r.stdout
    r = dfc("explain", iid, "--db", db_url)
    assert r.exit_code == 0, r.output
    assert "✓ SQL SELECT 41 AS v |=> x" in r.stdout
    r = dfc("history", iid, "--db", db_url)
    assert r.exit_code == 0 and "compiled" in r.stdout


def test_equal_graphs_share_a_version(db_url: str, conn: Conn) -> None:
    lab = label()
    one, two = sql_node("SELECT 1 AS a"), sql_node("SELECT 2 AS a")
    ids = [start_graph(conn, g, lab) for g in (one, one, two, one)]
    unlabelled = start_graph(conn, one)
    run(db_url, *ids, unlabelled)
    versions = [info(db_url, i).version for i in ids]
    assert versions == [1, 1, 2, 1]
    assert info(db_url, unlabelled).workflow == "sql:unlabelled"
    # Another worker (no memory of what was compiled) finds the deployed version too.
    again = start_graph(conn, two, lab)
    run(db_url, again)
    assert info(db_url, again).version == 2


def test_a_graph_the_checker_refuses_fails_with_its_diagnostics(db_url: str, conn: Conn) -> None:
    iid = start_graph(conn, then(sql_node("SELECT 1 AS a", "x"), sql_node("SELECT $y")), label())
    run(db_url, iid)
    done = info(db_url, iid)
    assert done.status == "failed"
    assert done.workflow is None
    message = done.error["message"]
    assert message.startswith("error[DFC201]: `$y` refers to a result that is never bound\n")
    assert "1 | 'SELECT 1 AS a' |=> 'x' ~> 'SELECT $y';" in message
    r = dfc("status", iid, "--db", db_url)
    assert r.exit_code == 0 and "failed" in r.stdout and "DFC201" in r.stdout, r.output
    assert "sql graph (not compiled)" in dfc("ls", "--db", db_url).stdout
    r = dfc("explain", iid, "--db", db_url)
    assert r.exit_code != 0 and "does not compile" in r.output and "DFC201" in r.output


def test_a_malformed_graph_fails_its_instance(db_url: str, conn: Conn) -> None:
    iid = start_graph(conn, '{"node_type":"THEN","left_node":{"node_type":"SQL","query":"x"}}')
    run(db_url, iid)
    done = info(db_url, iid)
    assert done.status == "failed"
    assert (
        "Malformed Durofut JSON with node_type 'THEN': needs left_node and right_node"
        in (done.error["message"])
    )


def test_max_attempts_retries_every_step(db_url: str, conn: Conn) -> None:
    conn.execute("CREATE SEQUENCE flaky")
    graph = sql_node("SELECT 6 + 1 / (nextval('flaky') - 1)::int AS v")  # fails once
    iid = start_graph(conn, graph, label(), options={"max_attempts": 3, "max_backoff": 16})
    run(db_url, iid)
    done = info(db_url, iid)
    assert done.status == "completed", done.error
    assert done.result == {"rows": [{"v": 7}], "row_count": 1}
    plan = conn.execute(
        "SELECT w.plan FROM dfc.workflows w JOIN dfc.instances i "
        "ON (w.name, w.version) = (i.workflow, i.version) WHERE i.id = %s",
        (iid,),
    ).fetchone()
    assert plan is not None
    retry = next(n for n in plan[0]["nodes"].values() if n["type"] == "RETRY")
    assert retry["config"] == {
        "attempts": 3,
        "backoff": 1,
        "factor": 2,
        "max_backoff": 16,
        "jitter": False,
    }


def test_explain_shows_a_graph_not_compiled_yet(db_url: str, conn: Conn) -> None:
    iid = start_graph(conn, then(sql_node("SELECT 1"), sql_node("SELECT 2")), "pending_one")
    r = dfc("explain", iid, "--db", db_url)
    assert r.exit_code == 0, r.output
    assert "sql:pending_one (not compiled yet)" in r.stdout
    assert "SQL SELECT 2" in r.stdout
    assert "sql graph (not compiled)" in dfc("status", iid, "--db", db_url).stdout
    conn.execute("SELECT dfc.cancel_instance(%s, 'test')", (iid,))


def test_a_worker_without_a_compiler_leaves_graphs_to_others(
    db_url: str, conn: Conn, capsys: pytest.CaptureFixture[str]
) -> None:
    iid = start_graph(conn, sql_node("SELECT 'later' AS w"), label())

    async def without_compiler() -> None:
        from dfc.runtime.worker import Worker, WorkerOptions

        w = Worker(db_url, WorkerOptions(poll_seconds=0.1, retention_every=0), log=StepLog())
        task = asyncio.create_task(w.run())
        await asyncio.sleep(1.5)
        w.request_stop()
        await task

    asyncio.run(without_compiler())
    err = capsys.readouterr().err
    assert err.count("wait for a worker that can compile their graphs") == 1, err
    assert info(db_url, iid).status == "pending"
    run(db_url, iid)
    assert info(db_url, iid).result == {"rows": [{"w": "later"}], "row_count": 1}


def test_a_graph_runs_as_the_role_that_started_it(db_url: str, conn: Conn) -> None:
    name = f"dfc_t_{secrets.token_hex(4)}"
    conn.execute(f'CREATE ROLE "{name}"')
    try:
        conn.execute("SELECT dfc.create_executor(%s::regrole)", (name,))
        iid = start_graph(conn, sql_node("SELECT current_user AS u"), label(), created_by=name)
        run(db_url, iid)
        assert info(db_url, iid).result == {"rows": [{"u": name}], "row_count": 1}
    finally:
        conn.execute(f'DROP OWNED BY "{name}"')
        conn.execute(f'DROP ROLE "{name}"')


def test_the_worker_command_compiles_graphs(db_url: str, conn: Conn) -> None:
    from dfc.cli.cmd_run import _execute  # `dfc run`'s in-process worker

    iid = start_graph(conn, sql_node("SELECT 'ran' AS r"), label())
    connect(db_url).close()
    assert _execute(db_url, lambda owner: iid, live=False) == (iid, 0)
    assert info(db_url, iid).result == {"rows": [{"r": "ran"}], "row_count": 1}
