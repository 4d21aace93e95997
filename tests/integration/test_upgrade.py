"""`dfc diff --compat`, `dfc upgrade` and `dfc fork --version` end to end (SPEC §5.9)."""

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
from dfc.runtime.logs import StepLog
from dfc.runtime.worker import Worker, WorkerOptions

pytestmark = [pytest.mark.db, pytest.mark.timeout(120)]

FLOW = """\
'INSERT INTO effects VALUES (''first'')' |=> 'a'
~> 'INSERT INTO effects VALUES (''second'')'
~> df.wait_for_signal('go')
~> 'INSERT INTO effects VALUES (''{last}'')'
"""


def dfc(*args: str) -> Result:
    return CliRunner().invoke(main, ["--no-color", *args], catch_exceptions=False)


def sql(url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query)
        return cur.fetchall() if cur.description else []


async def run_until_waiting(url: str, iid: str) -> None:
    """Serve ``iid`` until it waits for a signal (released, held by no worker)."""
    worker = Worker(
        url,
        WorkerOptions(only=frozenset([iid]), poll_seconds=0.2, retention_every=0),
        log=StepLog(quiet=True),
    )
    task = asyncio.create_task(worker.run())
    try:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            for _ in range(300):
                cur = await conn.execute(
                    "SELECT kind FROM dfc.waits WHERE instance_id = %s", (iid,)
                )
                row = await cur.fetchone()
                if row is not None and row[0] == "signal":
                    return
                await asyncio.sleep(0.1)
        raise AssertionError(f"instance {iid} never waited for its signal")
    finally:
        worker.request_stop()
        await asyncio.wait_for(task, 15)


@pytest.fixture
def versions(db_url: str, tmp_path: Path) -> Path:
    """Workflow ``flow``: v1 ends with 'old'; v2 changes only that later step; v3 changes the
    first step as well."""
    sql(db_url, "DROP TABLE IF EXISTS effects; CREATE TABLE effects (what text)")
    path = tmp_path / "flow.df"
    for text in (
        FLOW.format(last="old"),
        FLOW.format(last="new"),
        FLOW.format(last="new").replace("first", "1st"),
    ):
        path.write_text(text)
        deployed = dfc("deploy", str(path), "--db", db_url)
        assert deployed.exit_code == 0, deployed.output
    return path


def effects(url: str) -> list[str]:
    return sorted(str(r[0]) for r in sql(url, "SELECT what FROM effects"))


def test_a_waiting_instance_moves_to_a_version_that_changed_a_later_step(
    db_url: str, versions: Path
) -> None:
    with connect(db_url) as client:
        iid = client.start("flow", version=1)
        asyncio.run(run_until_waiting(db_url, iid))
        assert effects(db_url) == ["first", "second"]

        compat = dfc("diff", "flow", "1", "2", "--compat", "--db", db_url)
        assert compat.exit_code == 0, compat.output
        assert "flow v1 -> v2: 1 node differs" in compat.output
        assert "n7  the SQL text of n7 changed (" in compat.output
        assert "flow.df:4:4)" in compat.output
        assert f"{iid}  can move" in compat.output
        other = dfc("diff", "flow", "1", "3", "--compat", "--db", db_url, "--json")
        report = json.loads(other.output)
        assert report["instances"] == [
            {
                "id": iid,
                "version": 1,
                "compatible": False,
                "reason": f"the SQL text of n4 changed (at {versions}:1:1)",
                "moved": False,
            }
        ]
        assert set(report["changed"]) == {"n4", "n7"}

        (row,) = client.compatibility("flow", 1, 2)
        assert (row.instance_id, row.ok, row.moved) == (iid, True, False)

        refused = dfc("upgrade", "flow", iid, "--to", "3", "--db", db_url)
        assert refused.exit_code == 1
        assert f"{iid}  v1  stays: the SQL text of n4 changed" in refused.output

        moved = dfc("upgrade", "flow", "--to", "2", "--db", db_url)
        assert moved.exit_code == 0, moved.output
        assert f"{iid}  v1 -> v2  moved" in moved.output
        assert client.status(iid).version == 2

        client.signal(iid, "go")
        asyncio.run(run_until_done(db_url, [iid]))
        assert client.status(iid).status == "completed"
        event = next(e for e in client.history(iid) if e.event == "upgraded")
        assert (event.detail["from"], event.detail["to"]) == (1, 2) and event.detail["by"]
    # The later step's new SQL ran; the steps before the wait ran once, on version 1.
    assert effects(db_url) == ["first", "new", "second"]


def test_an_instance_a_worker_holds_is_not_moved(db_url: str, versions: Path) -> None:
    with connect(db_url) as client:
        iid = client.start("flow", version=1)
        asyncio.run(run_until_waiting(db_url, iid))
        # As if a worker had claimed it and a step were running.
        sql(
            db_url,
            "UPDATE dfc.queue SET lease_owner = 'w-busy', lease_expires = now() + interval '1 min'"
            f" WHERE instance_id = '{iid}'",
        )
        (row,) = client.upgrade("flow", 2, [iid])
        assert not row.ok and not row.moved
        assert row.reason is not None and "worker w-busy holds it" in row.reason
        assert client.status(iid).version == 1
        finished = client.start("flow", version=1)
        client.cancel(finished)
        (done,) = client.upgrade("flow", 2, [finished])
        assert done.reason == "it is cancelled"
        client.cancel(iid)


def test_fork_onto_another_version(db_url: str, versions: Path) -> None:
    with connect(db_url) as client:
        iid = client.start("flow", version=1)
        asyncio.run(run_until_waiting(db_url, iid))
        refused = dfc("fork", iid, "--from", "n6", "--version", "3", "--db", db_url)
        assert refused.exit_code == 1
        assert f"cannot fork {iid} onto version 3: the SQL text of n4 changed" in refused.output
        forked = client.fork(iid, "n6", version=2)
        assert forked.version == 2 and len(forked.reused) == 2
        client.signal(forked.instance_id, "go")
        asyncio.run(run_until_done(db_url, [forked.instance_id]))
        assert client.status(forked.instance_id).status == "completed"
        client.cancel(iid)
    assert effects(db_url) == ["first", "new", "second"]
