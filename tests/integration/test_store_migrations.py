"""Schema migrations: discovery, applying to an empty database, racing, refusing newer schemas."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import TupleRow

from dfc.diagnostics import DfcError
from dfc.store import codes
from dfc.store.db import connect
from dfc.store.migrations import (
    Migration,
    applied_versions,
    available,
    ensure_schema,
    load_migrations,
    migrate,
    schema_status,
)

TABLES = {
    "schema_migrations",
    "workflows",
    "instances",
    "queue",
    "node_state",
    "signals",
    "history",
    "variables",
    "workers",
    "settings",
}


def _tables(conn: psycopg.Connection[TupleRow]) -> set[str]:
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'dfc'"
    ).fetchall()
    return {r[0] for r in rows}


def _with_extra(tmp_path: Path, name: str, text: str) -> tuple[Migration, ...]:
    """The shipped migrations plus one more file, loaded from a copy of the directory."""
    for m in available():
        (tmp_path / f"{m.name}.sql").write_text(m.sql)
    (tmp_path / name).write_text(text)
    return load_migrations(tmp_path)


def test_migrations_ship_as_package_data() -> None:
    shipped = files("dfc.store") / "migrations"
    assert (shipped / "0001_init.sql").is_file()
    migrations = available()
    assert migrations[0].version == 1
    assert migrations[0].name == "0001_init"
    assert [m.version for m in migrations] == sorted(m.version for m in migrations)


def test_migrate_empty_database(make_db: Callable[..., str]) -> None:
    with connect(make_db(template=None)) as conn:
        assert applied_versions(conn) is None
        assert schema_status(conn).pending == available()
        applied = ensure_schema(conn)
        assert applied == list(available())
        assert _tables(conn) >= TABLES
        assert applied_versions(conn) == [m.version for m in available()]
        assert ensure_schema(conn) == []
        status = schema_status(conn)
        assert status.up_to_date and status.version == available()[-1].version
        assert conn.execute(
            "SELECT value FROM dfc.settings WHERE key = 'retention_days'"
        ).fetchone() == (30,)


def test_ensure_schema_when_current_is_one_round_trip(
    conn: psycopg.Connection[TupleRow], tmp_path: Path
) -> None:
    trace = tmp_path / "libpq.trace"
    with trace.open("w") as f:
        conn.pgconn.trace(f.fileno())
        try:
            assert ensure_schema(conn) == []
        finally:
            conn.pgconn.untrace()
    sent = [ln for ln in trace.read_text().splitlines() if "\tF\t" in ln or ln.startswith("F")]
    queries = [ln for ln in sent if "Query" in ln or "Parse" in ln]
    assert len(queries) == 1 and "schema_migrations" in queries[0]


def test_ensure_schema_inside_a_transaction_keeps_it_usable(make_db: Callable[..., str]) -> None:
    with connect(make_db(template=None), autocommit=False) as conn:
        conn.execute("SELECT 1")
        assert applied_versions(conn) is None  # missing table: savepoint, not an aborted txn
        assert conn.execute("SELECT 2").fetchone() == (2,)
        conn.rollback()


def test_racing_migrations_on_a_fresh_database(make_db: Callable[..., str]) -> None:
    url = make_db(template=None)
    # Each process connects, says so, and waits for "go": all then migrate at the same moment.
    script = textwrap.dedent(
        f"""
        import sys
        from dfc.store.db import connect
        from dfc.store.migrations import ensure_schema
        conn = connect({url!r})
        print("ready", flush=True)
        sys.stdin.readline()
        print(len(ensure_schema(conn)), flush=True)
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0]
    # Every migration was applied by exactly one of them.
    assert sum(int(o) for o in outputs) == len(available())
    with connect(url) as conn:
        rows = conn.execute("SELECT version FROM dfc.schema_migrations ORDER BY 1").fetchall()
        assert [r[0] for r in rows] == [m.version for m in available()]
        assert _tables(conn) >= TABLES


def test_a_new_migration_file_is_applied_in_order(
    make_db: Callable[..., str], tmp_path: Path
) -> None:
    migrations = _with_extra(tmp_path, "9001_extra.sql", "CREATE TABLE dfc.extra (x int);")
    with connect(make_db()) as conn:
        status = schema_status(conn, migrations)
        assert [m.name for m in status.pending] == ["9001_extra"]
        assert [m.name for m in ensure_schema(conn, migrations)] == ["9001_extra"]
        assert "extra" in _tables(conn)
        assert schema_status(conn, migrations).up_to_date
        # The dfc that does not know 9001 refuses the database.
        with pytest.raises(DfcError) as err:
            ensure_schema(conn)
        assert err.value.code == codes.SCHEMA_TOO_NEW
        assert "version 9001" in err.value.message


def test_a_failing_migration_rolls_back(make_db: Callable[..., str], tmp_path: Path) -> None:
    migrations = _with_extra(
        tmp_path, "9002_broken.sql", "CREATE TABLE dfc.half (x int);\nSELECT 1 / 0;"
    )
    with connect(make_db()) as conn:
        with pytest.raises(DfcError) as err:
            migrate(conn, migrations)
        assert err.value.code == codes.MIGRATION_FAILED
        assert "9002_broken" in err.value.message and "division by zero" in err.value.message
        assert "half" not in _tables(conn)
        assert applied_versions(conn) == [m.version for m in available()]


def test_percent_signs_in_migrations_are_not_placeholders(
    make_db: Callable[..., str], tmp_path: Path
) -> None:
    migrations = _with_extra(
        tmp_path, "9003_percent.sql", "CREATE TABLE dfc.pct AS SELECT '100%s' AS v;"
    )
    with connect(make_db()) as conn:
        migrate(conn, migrations)
        assert conn.execute("SELECT v FROM dfc.pct").fetchone() == ("100%s",)


def test_an_edited_migration_shows_as_modified(make_db: Callable[..., str], tmp_path: Path) -> None:
    with connect(make_db()) as conn:
        conn.execute("UPDATE dfc.schema_migrations SET checksum = 'x' WHERE version = 1")
        status = schema_status(conn)
        assert [a.version for a in status.modified] == [1]
        assert status.up_to_date


def test_misnamed_migration_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "1_init.sql").write_text("SELECT 1;")
    with pytest.raises(ValueError, match=r"NNNN_name\.sql"):
        load_migrations(tmp_path)
    (tmp_path / "1_init.sql").unlink()
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0001_b.sql").write_text("SELECT 1;")
    with pytest.raises(ValueError, match="0001"):
        load_migrations(tmp_path)


def test_schema_constraints(conn: psycopg.Connection[TupleRow]) -> None:
    with conn.transaction(force_rollback=True):
        conn.execute(
            "INSERT INTO dfc.workflows (name, version, hash, plan) VALUES ('w', 1, 'h', '{}')"
        )
        conn.execute(
            "INSERT INTO dfc.instances (id, workflow, version) VALUES ('0123abcd', 'w', 1)"
        )
        row = conn.execute(
            "SELECT status, vars, compensated, created_by = current_user FROM dfc.instances"
        ).fetchone()
        assert row == ("pending", {}, False, True)
        with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
            conn.execute("INSERT INTO dfc.instances (id, workflow, version) VALUES ('XYZ', 'w', 1)")
        with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
            conn.execute("UPDATE dfc.instances SET status = 'paused'")
        with pytest.raises(psycopg.errors.ForeignKeyViolation), conn.transaction():
            conn.execute(
                "INSERT INTO dfc.instances (id, workflow, version) VALUES ('0123abce', 'w', 2)"
            )
        conn.execute("INSERT INTO dfc.queue (instance_id, run_at) VALUES ('0123abcd', now())")
        conn.execute("INSERT INTO dfc.signals (instance_id, name) VALUES ('0123abcd', 'go')")
        conn.execute("DELETE FROM dfc.instances")
        assert conn.execute("SELECT count(*) FROM dfc.queue").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM dfc.signals").fetchone() == (0,)


def test_0006_reads_final_node_events_from_node_state(make_db: Callable[..., str]) -> None:
    """An upgraded database shows each node event once: those 0005 wrote to dfc.history are
    dropped, and dfc.events derives them from the final node records."""
    before = tuple(m for m in available() if m.version < 6)
    with connect(make_db(template=None)) as conn:
        ensure_schema(conn, before)
        conn.execute(
            "INSERT INTO dfc.instances (id, graph, status) VALUES ('0000000a', 'x', 'running')"
        )
        conn.execute(
            "INSERT INTO dfc.node_state (instance_id, key, node_id, status, started_at,"
            " finished_at) VALUES ('0000000a', 'n1', 'n1', 'completed', now(), now() + interval '1 s')"
        )
        conn.execute(
            "INSERT INTO dfc.history (instance_id, event, node_id, key, detail) VALUES"
            " ('0000000a', 'started', NULL, NULL, NULL),"
            " ('0000000a', 'node_completed', 'n1', 'n1', '{\"ms\": 1}')"
        )
        ensure_schema(conn)
        events = conn.execute(
            "SELECT event, key FROM dfc.events WHERE instance_id = '0000000a' ORDER BY at, seq"
        ).fetchall()
        assert events == [("started", None), ("node_completed", "n1")]
