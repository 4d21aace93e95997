"""Settings and the retention of finished instances."""

from __future__ import annotations

import json

import psycopg
from click.testing import CliRunner
from psycopg.rows import TupleRow

from dfc.cli.cmd_db import db
from dfc.store.migrations import available
from dfc.store.retention import RETENTION_DAYS, get_setting, purge_finished, set_setting


def _instance(conn: psycopg.Connection[TupleRow], iid: str, status: str, age_days: float) -> None:
    finished = None if status == "running" else f"now() - interval '{age_days} days'"
    conn.execute(
        "INSERT INTO dfc.instances (id, workflow, version, status, finished_at) "
        f"VALUES (%s, 'keep', 1, %s, {finished or 'NULL'})",
        (iid, status),
    )
    conn.execute(
        "INSERT INTO dfc.node_state (instance_id, key, node_id, status) VALUES (%s, 'n1', 'n1', 'completed')",
        (iid,),
    )
    conn.execute("INSERT INTO dfc.history (instance_id, event) VALUES (%s, 'started')", (iid,))
    conn.execute("INSERT INTO dfc.signals (instance_id, name) VALUES (%s, 'go')", (iid,))


def _count(conn: psycopg.Connection[TupleRow], table: str, iid: str) -> int:
    col = "id" if table == "instances" else "instance_id"
    row = conn.execute(f"SELECT count(*) FROM dfc.{table} WHERE {col} = %s", (iid,)).fetchone()
    assert row is not None
    return int(row[0])


def test_settings_round_trip(conn: psycopg.Connection[TupleRow]) -> None:
    assert get_setting(conn, RETENTION_DAYS) == 30
    assert get_setting(conn, "missing", "dflt") == "dflt"
    set_setting(conn, "example", {"a": [1, 2]})
    assert get_setting(conn, "example") == {"a": [1, 2]}
    set_setting(conn, "example", None)
    assert get_setting(conn, "example", "dflt") is None


def test_purge_finished_deletes_old_finished_instances_with_their_state(
    conn: psycopg.Connection[TupleRow],
) -> None:
    conn.execute(
        "INSERT INTO dfc.workflows (name, version, hash, plan) VALUES ('keep', 1, 'h', '{}')"
    )
    _instance(conn, "0000000a", "completed", 40)
    _instance(conn, "0000000b", "failed", 40)
    _instance(conn, "0000000c", "completed", 1)
    _instance(conn, "0000000d", "running", 40)
    set_setting(conn, RETENTION_DAYS, None)
    assert purge_finished(conn) == 0  # retention disabled
    set_setting(conn, RETENTION_DAYS, 30)
    assert purge_finished(conn, batch=1) == 2
    for iid in ("0000000a", "0000000b"):
        assert [
            _count(conn, t, iid) for t in ("instances", "node_state", "history", "signals")
        ] == [0, 0, 0, 0]
    for iid in ("0000000c", "0000000d"):
        assert [
            _count(conn, t, iid) for t in ("instances", "node_state", "history", "signals")
        ] == [1, 1, 1, 1]
    assert purge_finished(conn, days=0.5) == 1  # the day-old completed one; never a running one
    assert _count(conn, "instances", "0000000d") == 1


def test_db_migrate_and_status_on_an_explicit_database(db_url: str) -> None:
    runner = CliRunner()
    out = runner.invoke(db, ["migrate", "--db", db_url])
    latest = available()[-1].version
    assert out.exit_code == 0 and f"up to date (version {latest})" in out.output
    out = runner.invoke(db, ["status", "--db", db_url, "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)["database"]
    assert not data["embedded"] and data["schema"]["up_to_date"]
    assert [a["name"] for a in data["schema"]["applied"]] == [m.name for m in available()]
