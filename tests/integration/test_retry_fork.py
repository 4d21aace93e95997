"""`dfc retry` and `dfc fork` end to end, with real workers (SPEC §5.9)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result
from runtime_support import run_until_done

from dfc.cli.main import main
from dfc.client import connect

pytestmark = [pytest.mark.db, pytest.mark.timeout(90)]


def dfc(*args: str) -> Result:
    return CliRunner().invoke(main, ["--no-color", *args], catch_exceptions=False)


def run(url: str, *ids: str) -> None:
    asyncio.run(run_until_done(url, list(ids)))


def sql(url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query)
        return cur.fetchall() if cur.description else []


def deploy_and_start(url: str, path: Path) -> str:
    assert dfc("deploy", str(path), "--db", url).exit_code == 0
    started = dfc("start", path.stem, "--db", url)
    assert started.exit_code == 0, started.output
    return started.output.strip()


# The third step fails until the data is fixed; every step leaves an effect to count.
TRANSFER = """\
'INSERT INTO effects VALUES (''debit requested'')'
~> $$INSERT INTO effects VALUES ('fee booked') RETURNING 5 AS fee$$ |=> 'fee'
~> 'UPDATE accounts SET balance = balance - 50 - $fee.fee WHERE id = 1'
~> 'INSERT INTO effects VALUES (''done'')'
"""

# The third step fails until the order it points at exists.
LINES = """\
'INSERT INTO effects VALUES (''one'')'
~> 'INSERT INTO effects VALUES (''two'')'
~> 'INSERT INTO order_lines (order_id, item) VALUES (7, ''book'') RETURNING order_id' |=> 'line'
~> 'SELECT $line.order_id AS id'
"""


@pytest.fixture
def tables(db_url: str) -> None:
    sql(
        db_url,
        "DROP TABLE IF EXISTS effects, accounts, order_lines, orders;"
        "CREATE TABLE effects (what text);"
        "CREATE TABLE accounts (id int PRIMARY KEY, balance int CHECK (balance >= 0));"
        "INSERT INTO accounts VALUES (1, 10);"
        "CREATE TABLE orders (id int PRIMARY KEY);"
        "CREATE TABLE order_lines (order_id int REFERENCES orders, item text)",
    )


def effects(url: str) -> list[str]:
    return sorted(str(r[0]) for r in sql(url, "SELECT what FROM effects"))


def test_retry_after_fixing_a_check_constraint_keeps_completed_steps(
    db_url: str, tables: None, tmp_path: Path
) -> None:
    (tmp_path / "transfer.df").write_text(TRANSFER)
    iid = deploy_and_start(db_url, tmp_path / "transfer.df")
    run(db_url, iid)
    with connect(db_url) as client:
        failed = client.status(iid)
        assert failed.status == "failed" and failed.error["sqlstate"] == "23514"
    assert effects(db_url) == ["debit requested", "fee booked"]

    sql(db_url, "UPDATE accounts SET balance = 100 WHERE id = 1")  # the fix
    retried = dfc("retry", iid, "--db", db_url)
    assert retried.exit_code == 0, retried.output
    assert f"instance {iid} queued again: it resumes at step n" in retried.output
    assert "keeping 2 completed steps" in retried.output
    run(db_url, iid)

    with connect(db_url) as client:
        done = client.status(iid)
        assert done.status == "completed" and done.error is None
        events = client.history(iid)
    # The first two steps ran once: their effects exist exactly once, and $fee still binds.
    assert effects(db_url) == ["debit requested", "done", "fee booked"]
    assert sql(db_url, "SELECT balance FROM accounts") == [(45,)]
    names = [e.event for e in events]
    assert names.count("retried") == 1 and names[-1] == "completed"
    retried_event = next(e for e in events if e.event == "retried")
    assert retried_event.node_id == failed.error["node"]
    assert retried_event.detail["by"]
    assert retried_event.detail["forgotten"][0]["status"] == "failed"
    assert "check constraint" in retried_event.detail["forgotten"][0]["message"]
    # The completed steps' records were not written again: one completion each.
    assert names.count("node_completed") == 4


def test_retry_after_adding_a_missing_row_from_the_client(
    db_url: str, tables: None, tmp_path: Path
) -> None:
    (tmp_path / "lines.df").write_text(LINES)
    iid = deploy_and_start(db_url, tmp_path / "lines.df")
    run(db_url, iid)
    with connect(db_url) as client:
        assert client.status(iid).error["sqlstate"] == "23503"
        sql(db_url, "INSERT INTO orders VALUES (7)")
        done = client.retry(iid)
        assert done.instance_id == iid and len(done.forgotten) == 1
        run(db_url, iid)
        assert client.result(iid)["rows"] == [{"id": 7}]
    assert effects(db_url) == ["one", "two"]


def test_retry_refusals(db_url: str, tables: None, tmp_path: Path) -> None:
    (tmp_path / "ok.df").write_text("'SELECT 1 AS one'\n")
    (tmp_path / "saga.df").write_text(
        "'INSERT INTO effects VALUES (''reserved'')' <-> 'INSERT INTO effects VALUES (''released'')'\n"
        "~> 'SELECT 1/0'\n"
    )
    ok = deploy_and_start(db_url, tmp_path / "ok.df")
    saga = deploy_and_start(db_url, tmp_path / "saga.df")
    pending = dfc("retry", ok, "--db", db_url)
    assert pending.exit_code == 1
    assert f"instance {ok} is pending; only a failed instance can be retried" in pending.output
    run(db_url, ok, saga)
    completed = dfc("retry", ok, "--db", db_url)
    assert "is completed; only a failed instance can be retried" in completed.output
    assert f"dfc fork {ok} --from STEP" in completed.output
    compensated = dfc("retry", saga, "--db", db_url)
    assert compensated.exit_code == 1
    assert f"instance {saga} was compensated: its completed steps were undone" in compensated.output
    assert "dfc fork" in compensated.output
    unknown = dfc("retry", "0badc0de", "--db", db_url)
    assert unknown.exit_code == 1 and "no instance 0badc0de" in unknown.output
    with connect(db_url) as client:
        assert client.status(saga).status == "failed"  # refused: nothing changed


def test_retry_inside_df_retry_and_a_join_runs_only_the_failed_branch(
    db_url: str, tables: None, tmp_path: Path
) -> None:
    # Branch 1 completes; branch 2 fails after its retries; the instance fails with the join.
    (tmp_path / "fan.df").write_text(
        "'INSERT INTO effects VALUES (''start'')'\n"
        "~> ('INSERT INTO effects VALUES (''left'')'\n"
        "    & df.timeout(df.retry('UPDATE accounts SET balance = balance - 20 WHERE id = 1',"
        " attempts => 2, backoff => 0.1, jitter => false), 60))\n"
        "~> 'INSERT INTO effects VALUES (''end'')'\n"
    )
    iid = deploy_and_start(db_url, tmp_path / "fan.df")
    run(db_url, iid)
    with connect(db_url) as client:
        assert client.status(iid).status == "failed"
        sql(db_url, "UPDATE accounts SET balance = 100")
        done = client.retry(iid)
        # the failed attempts, the retry's counter, the timeout's deadline, the join's decision
        assert len(done.forgotten) == 5, done.forgotten
        run(db_url, iid)
        assert client.status(iid).status == "completed"
    assert effects(db_url) == ["end", "left", "start"]
    assert sql(db_url, "SELECT balance FROM accounts") == [(80,)]


def test_fork_from_a_step_reuses_the_steps_before_it(
    db_url: str, tables: None, tmp_path: Path
) -> None:
    (tmp_path / "lines.df").write_text(LINES)
    iid = deploy_and_start(db_url, tmp_path / "lines.df")
    sql(db_url, "INSERT INTO orders VALUES (7)")
    run(db_url, iid)
    history = json.loads(dfc("history", iid, "--db", db_url, "--json").output)
    steps = [e["key"] for e in history if e["event"] == "node_completed"]
    second = steps[1]
    forked = dfc("fork", iid, "--from", second, "--db", db_url)
    assert forked.exit_code == 0, forked.output
    new = forked.stdout.strip()
    assert new != iid and f"forked from {iid} at {second}" in forked.stderr
    assert "reusing 1 recorded result" in forked.stderr
    run(db_url, new)
    with connect(db_url) as client:
        src, copy = client.status(iid), client.status(new)
        assert copy.status == "completed" and copy.result == src.result
        assert (copy.workflow, copy.version, copy.label, copy.vars) == (
            src.workflow,
            src.version,
            src.label,
            src.vars,
        )
        event = next(e for e in client.history(new) if e.event == "forked")
        assert event.detail["from"] == iid and event.detail["step"] == second
        assert event.node_id == second
    # The first step was reused, the second and later ones ran again.
    assert effects(db_url) == ["one", "two", "two"]
    assert sql(db_url, "SELECT count(*) FROM order_lines") == [(2,)]


def test_fork_refusals(db_url: str, tables: None, tmp_path: Path) -> None:
    (tmp_path / "lines.df").write_text(LINES)
    iid = deploy_and_start(db_url, tmp_path / "lines.df")
    run(db_url, iid)  # fails at the third step: the fourth never ran
    before = sql(db_url, "SELECT count(*) FROM dfc.instances")
    never = dfc("fork", iid, "--from", "n7", "--db", db_url)
    assert never.exit_code == 1
    assert "step n7 never ran in this instance" in never.output
    nothing = dfc("fork", iid, "--from", "n99", "--db", db_url)
    assert "the workflow has no step n99" in nothing.output
    unknown = dfc("fork", "0badc0de", "--from", "n1", "--db", db_url)
    assert "no instance 0badc0de" in unknown.output
    assert sql(db_url, "SELECT count(*) FROM dfc.instances") == before  # nothing started


# One running instance at a time; the second step fails until an order exists, the third waits.
SERIAL = """\
df.start(
    'INSERT INTO effects VALUES (''serial'')'
    ~> 'INSERT INTO order_lines (order_id, item) VALUES (7, ''pen'')'
    ~> df.wait_for_signal('go'),
    'serial_lines',
    max_concurrent => 1
)
"""


def _due(url: str, iid: str) -> tuple[bool, bool]:
    """(due, waiting for its turn) of the instance's queue row."""
    ((due, gated),) = sql(
        url,
        f"SELECT run_at IS NOT NULL, gated_at IS NOT NULL FROM dfc.queue WHERE instance_id = '{iid}'",
    )
    return bool(due), bool(gated)


def test_a_retried_or_forked_instance_waits_for_its_turn_under_max_concurrent(
    db_url: str, tables: None, tmp_path: Path
) -> None:
    (tmp_path / "serial_lines.df").write_text(SERIAL)
    with connect(db_url) as client:
        client.deploy(tmp_path / "serial_lines.df")
        failed = client.start("serial_lines")
        run(db_url, failed)
        assert client.status(failed).status == "failed"  # its failure gave its slot back
        holder = client.start("serial_lines")
        assert _due(db_url, holder) == (True, False)
        sql(db_url, "INSERT INTO orders VALUES (7)")
        client.retry(failed)
        forked = client.fork(failed, "n2").instance_id
        # The one slot is the holder's: the retried and the forked instance wait for it.
        assert _due(db_url, failed) == (False, True)
        assert _due(db_url, forked) == (False, True)
        client.cancel(holder)
        assert _due(db_url, failed) == (True, False)
        assert _due(db_url, forked) == (False, True)
        client.cancel(failed)
        assert _due(db_url, forked) == (True, False)
