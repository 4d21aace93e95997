"""Child workflows end to end with real workers: ``df.call`` waits for a child's result,
``df.spawn`` starts one and goes on (docs/runtime.md, "Child workflows")."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result
from runtime_support import info as status
from runtime_support import run_until_done

from dfc.cli.main import main
from dfc.client import connect
from dfc.runtime import instances

pytestmark = [pytest.mark.db, pytest.mark.timeout(120)]


def dfc(*args: str) -> Result:
    return CliRunner().invoke(main, ["--no-color", *args], catch_exceptions=False)


def sql(url: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def children_of(url: str, parent: str) -> list[tuple[Any, ...]]:
    """(id, workflow, status, parent_key) of the children of ``parent``."""
    return sql(
        url,
        "SELECT id, workflow, status, parent_key FROM dfc.instances WHERE parent_id = %s "
        "ORDER BY parent_key",
        (parent,),
    )


def deploy(url: str, folder: Path, **files: str) -> None:
    for name, text in files.items():
        (folder / f"{name}.df").write_text(text)
        out = dfc("deploy", str(folder / f"{name}.df"), "--db", url)
        assert out.exit_code == 0, out.output


def start(url: str, name: str, **vars: Any) -> str:
    with connect(url) as client:
        return client.start(name, vars=vars)


def run_all(url: str, *ids: str, timeout: float = 60) -> None:
    """Run a worker that serves every instance (children too) until ``ids`` have ended."""
    asyncio.run(run_until_done(url, list(ids), only=False, timeout=timeout))


def wait_until(what: str, ready: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.05)


DOUBLE = "param n int;\n'SELECT {n} * 2 AS doubled'\n"
FAILING = "param n int = 1;\n'SELECT {n} / 0 AS boom'\n"
WAITING = "df.wait_for_signal('go') ~> 'SELECT 1 AS done'\n"


def test_a_parent_calling_two_children_in_a_join_gets_their_results(
    db_url: str, tmp_path: Path
) -> None:
    deploy(
        db_url,
        tmp_path,
        double=DOUBLE,
        parent="'SELECT 20 AS n' |=> 'a'\n"
        "~> df.join(df.call('double', n => '$a.n') |=> 'x', df.call('double', n => 2) |=> 'y')\n"
        "~> 'SELECT $x.doubled + $y.doubled AS total'\n",
    )
    parent = start(db_url, "parent")
    run_all(db_url, parent)
    with connect(db_url) as client:
        assert client.result(parent) == {"rows": [{"total": 44}], "row_count": 1}
        kids = children_of(db_url, parent)
        assert len(kids) == 2
        assert all(k[1] == "double" and k[2] == "completed" for k in kids)
        results = sorted(client.result(k[0])["rows"][0]["doubled"] for k in kids)
        assert results == [4, 40]
        # The child knows its parent; the parent's explain links to its children.
        assert client.status(kids[0][0]).parent_id == parent
    shown = dfc("explain", parent, "--db", db_url)
    assert shown.exit_code == 0, shown.output
    for kid in kids:
        assert f"→ child {kid[0]} completed" in shown.output
    status = dfc("status", kids[0][0], "--db", db_url)
    assert (
        f"parent   {parent}" in status.output
        or f"parent: {parent}" in status.output
        or (parent in status.output)
    )


def test_a_child_failure_fails_the_parent_with_the_childs_error(
    db_url: str, tmp_path: Path
) -> None:
    deploy(db_url, tmp_path, failing=FAILING, caller="df.call('failing', n => 3)\n")
    parent = start(db_url, "caller")
    run_all(db_url, parent)
    info = status(db_url, parent)
    assert info.status == "failed"
    (kid,) = children_of(db_url, parent)
    assert kid[2] == "failed"
    message = info.error["message"]
    assert message.startswith(f"child {kid[0]} (failing) failed: ")
    assert "division by zero" in message
    assert info.error["code"] == "DFC661"
    assert info.error["child"] == kid[0]
    assert info.error["at"].endswith("caller.df:1:1")


def test_a_callee_that_cannot_start_fails_the_step_and_starts_nothing(
    db_url: str, tmp_path: Path
) -> None:
    deploy(
        db_url,
        tmp_path,
        double=DOUBLE,
        nobody="df.call('not_deployed_anywhere')\n",
        # Known only when it runs: the checker cannot refuse it.
        wrongly="$$SELECT 'many' AS n$$ |=> 'v' ~> df.call('double', n => '$v.n')\n",
    )
    for name, expected in [
        ("nobody", "no workflow named 'not_deployed_anywhere' is deployed"),
        ("wrongly", "parameter n must be an integer, got 'many'"),
    ]:
        parent = start(db_url, name)
        run_all(db_url, parent)
        info = status(db_url, parent)
        assert info.status == "failed"
        assert expected in info.error["message"], info.error
        assert info.error["code"] == "DFC660"
        assert children_of(db_url, parent) == []


def test_spawn_returns_at_once_and_the_child_runs_on(db_url: str, tmp_path: Path) -> None:
    deploy(
        db_url,
        tmp_path,
        waiting=WAITING,
        spawner="df.spawn('waiting') |=> 'kid' ~> 'SELECT $kid.id AS started'\n",
    )
    parent = start(db_url, "spawner")
    run_all(db_url, parent)
    with connect(db_url) as client:
        (kid,) = children_of(db_url, parent)
        assert client.result(parent)["rows"] == [{"started": kid[0]}]
        # The parent completed while its child still waits for its signal.
        assert client.status(kid[0]).status == "running"
        client.signal(kid[0], "go")
    run_all(db_url, kid[0])
    assert children_of(db_url, parent)[0][2] == "completed"


def test_a_cancelled_parent_leaves_no_child_running(db_url: str, tmp_path: Path) -> None:
    deploy(
        db_url,
        tmp_path,
        waiting=WAITING,
        middle="df.call('waiting') ~> 'SELECT 1'\n",
        top="df.join(df.call('middle'), df.call('waiting')) ~> df.spawn('waiting')\n",
    )
    parent = start(db_url, "top")

    async def scenario() -> None:
        worker = asyncio.create_task(run_until_done(db_url, [parent], only=False))

        def everyone_waits() -> bool:
            rows = sql(
                db_url,
                "SELECT count(*) FROM dfc.instances i JOIN dfc.waits w ON w.instance_id = i.id "
                "WHERE i.workflow = 'waiting' AND w.kind = 'signal'",
            )
            return rows[0][0] >= 2

        await asyncio.to_thread(wait_until, "both grandchildren waiting", everyone_waits)
        middle = sql(db_url, "SELECT id FROM dfc.instances WHERE workflow = 'middle'")[0][0]
        (waited,) = children_of(db_url, middle)
        # What the middle instance waits for is its child, by id.
        waits = sql(db_url, "SELECT waiting_for FROM dfc.waits WHERE instance_id = %s", (middle,))
        assert waits == [(f"child {waited[0]}",)]
        with psycopg.connect(db_url, autocommit=True) as conn:
            assert instances.cancel(conn, parent) == f"instance {parent} cancelled"
        await worker

    asyncio.run(scenario())
    kids = children_of(db_url, parent)
    assert sorted(k[1] for k in kids) == ["middle", "waiting"]
    grandchildren = [g for k in kids for g in children_of(db_url, k[0])]
    assert len(grandchildren) == 1
    for child in [*kids, *grandchildren]:
        assert child[2] == "cancelled", child
    reason = sql(db_url, "SELECT cancel_reason FROM dfc.instances WHERE id = %s", (kids[0][0],))
    assert reason == [(f"its parent {parent} ended cancelled",)]


def test_a_race_lost_by_a_call_cancels_its_child(db_url: str, tmp_path: Path) -> None:
    deploy(
        db_url,
        tmp_path,
        waiting=WAITING,
        racer="df.call('waiting') | 'SELECT 7 AS fast'\n",
    )
    parent = start(db_url, "racer")
    run_all(db_url, parent)
    with connect(db_url) as client:
        assert client.result(parent)["rows"] == [{"fast": 7}]
    wait_until(
        "the loser's child cancelled",
        lambda: [k[2] for k in children_of(db_url, parent)] in ([], ["cancelled"]),
    )


# -- crash between starting the child and recording the step ---------------------------------


@pytest.fixture
def worker_processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait(10)


@pytest.mark.slow
def test_a_worker_killed_between_starting_a_child_and_recording_it_starts_it_once(
    db_url: str, tmp_path: Path, worker_processes: list[subprocess.Popen[bytes]]
) -> None:
    deploy(db_url, tmp_path, double=DOUBLE, once="df.call('double', n => 21)\n")
    parent = start(db_url, "once")
    cmd = [sys.executable, "-m", "dfc", "worker", "--db", db_url, "--quiet"]
    # The fault point dies like SIGKILL: after the child's INSERT, before the step's commit.
    crashing = subprocess.Popen(
        cmd,
        env={**os.environ, "DFC_FAULT": "after_child_start:crash"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker_processes.append(crashing)
    assert crashing.wait(60) == 137
    assert children_of(db_url, parent) == []  # rolled back with the step
    healthy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker_processes.append(healthy)
    wait_until(
        "the parent completed",
        lambda: (
            sql(db_url, "SELECT status FROM dfc.instances WHERE id = %s", (parent,))
            == [("completed",)]
        ),
        timeout=60,
    )
    (kid,) = children_of(db_url, parent)
    assert kid[2] == "completed"
    with connect(db_url) as client:
        assert client.result(parent)["rows"] == [{"doubled": 42}]
    healthy.send_signal(signal.SIGTERM)
    healthy.wait(30)


def test_check_with_a_database_checks_calls_against_deployed_workflows(
    db_url: str, tmp_path: Path
) -> None:
    deploy(db_url, tmp_path, double=DOUBLE)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    caller = elsewhere / "caller.df"
    caller.write_text(
        "df.call('double', m => 1) ~> df.call('ghost') ~> df.spawn('double', n => 2)\n"
    )
    offline = dfc("check", str(caller))
    assert offline.exit_code == 0, offline.output
    assert offline.output.count("hint[DFC460]") == 3
    live = dfc("check", str(caller), "--db", db_url)
    assert live.exit_code == 1, live.output
    assert "error[DFC461]: workflow double (deployed version 1) has no parameter m" in live.output
    assert "error[DFC462]: df.call does not give n" in live.output
    assert "warning[DFC460]: workflow 'ghost' is not deployed in this database" in live.output
    assert "hint[DFC460]" not in live.output


def test_retrying_a_parent_after_retrying_its_failed_child_takes_the_childs_result(
    db_url: str, tmp_path: Path
) -> None:
    sql(db_url, "DROP TABLE IF EXISTS stock; CREATE TABLE stock (n int CHECK (n >= 0))")
    sql(db_url, "INSERT INTO stock VALUES (0)")
    deploy(
        db_url,
        tmp_path,
        take="'UPDATE stock SET n = n - 1 RETURNING n AS left_over'\n",
        buyer="df.call('take') |=> 't' ~> 'SELECT $t.left_over AS left_over'\n",
    )
    parent = start(db_url, "buyer")
    run_all(db_url, parent)
    (kid,) = children_of(db_url, parent)
    assert status(db_url, parent).status == "failed" and kid[2] == "failed"
    sql(db_url, "UPDATE stock SET n = 5")
    with connect(db_url) as client:
        client.retry(kid[0])
        run_all(db_url, kid[0])
        client.retry(parent)
        run_all(db_url, parent)
        assert client.result(parent)["rows"] == [{"left_over": 4}]
    # No second child: the retried call found the one it had started.
    assert [k[0] for k in children_of(db_url, parent)] == [kid[0]]


def test_the_child_of_a_parent_run_as_a_role_runs_as_that_role(db_url: str, tmp_path: Path) -> None:
    role = "dfc_t_caller"
    sql(db_url, f"DROP ROLE IF EXISTS {role}")
    sql(db_url, f"CREATE ROLE {role}")
    sql(db_url, "SELECT dfc.create_executor(%s::regrole)", (role,))
    try:
        deploy(
            db_url,
            tmp_path,
            whoami="'SELECT current_user AS who'\n",
            asker="df.call('whoami') |=> 'w' ~> 'SELECT $w.who AS who'\n",
        )
        ((version,),) = sql(db_url, "SELECT max(version) FROM dfc.workflows WHERE name = 'asker'")
        ((parent,),) = sql(
            db_url, "SELECT dfc.start_instance('asker', %s, NULL, '{}', %s)", (version, role)
        )
        run_all(db_url, parent)
        (kid,) = children_of(db_url, parent)
        assert sql(db_url, "SELECT created_by FROM dfc.instances WHERE id = %s", (kid[0],)) == [
            (role,)
        ]
        with connect(db_url) as client:
            assert client.result(parent)["rows"] == [{"who": role}]
    finally:
        sql(db_url, "SELECT dfc.drop_executor(%s::regrole)", (role,))
        sql(db_url, f"DROP OWNED BY {role} CASCADE")
        sql(db_url, f"DROP ROLE {role}")
