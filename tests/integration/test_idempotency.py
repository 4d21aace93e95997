"""Idempotent starts: a second start with the same idempotency key returns the first instance
(docs/runtime.md, "Idempotent starts and flow control"), from the client, the CLI and SQL."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result
from runtime_support import run_until_done

from dfc.cli.main import main
from dfc.client import connect
from dfc.compiler import graph_compiler, graph_workflow_name
from dfc.diagnostics import DfcError
from dfc.runtime import instances
from dfc.store.db import connect as db_connect
from dfc.store.retention import purge_finished

pytestmark = [pytest.mark.db, pytest.mark.timeout(60)]


@pytest.fixture
def flows(tmp_path: Path, db_url: str) -> Path:
    (tmp_path / "charge.df").write_text("param n int = 1;\n'SELECT {n} AS n'\n")
    (tmp_path / "ship.df").write_text("'SELECT 2 AS n'\n")
    with connect(db_url) as client:
        client.deploy(tmp_path / "charge.df")
        client.deploy(tmp_path / "ship.df")
    return tmp_path


def test_a_repeated_start_returns_the_first_instance_even_when_finished(
    db_url: str, flows: Path
) -> None:
    with connect(db_url) as client:
        first = client.start("charge", vars={"n": 5}, idempotency_key="order-17")
        assert client.start("charge", vars={"n": "5"}, idempotency_key="order-17") == first
        asyncio.run(run_until_done(db_url, [first]))
        assert client.status(first).status == "completed"
        assert client.start("charge", vars={"n": 5}, idempotency_key="order-17") == first
        assert client.status(first).idempotency_key == "order-17"
        # The key's scope is the workflow: the same order id keys a `ship` instance too.
        shipped = client.start("ship", idempotency_key="order-17")
        assert shipped != first
        # Without a key every start is a new instance.
        assert client.start("charge") != client.start("charge")
        assert len(client.list(workflow="charge")) == 3


def test_a_key_reused_for_another_start_is_refused(db_url: str, flows: Path) -> None:
    with connect(db_url) as client:
        first = client.start("charge", vars={"n": 1}, idempotency_key="k-other")
        with pytest.raises(DfcError, match=rf"instance {first} of charge, with n = '2', not '1'"):
            client.start("charge", vars={"n": 2}, idempotency_key="k-other")
        with pytest.raises(DfcError, match="label 'x', not None"):
            client.start("charge", vars={"n": 1}, label="x", idempotency_key="k-other")
        with pytest.raises(DfcError, match="concurrency key 'c', not None"):
            client.start("charge", concurrency_key="c", idempotency_key="k-other")
        with pytest.raises(DfcError, match="an idempotency key must not be empty"):
            client.start("charge", idempotency_key=" ")
        with pytest.raises(DfcError, match="at most 1000 bytes, not 1001"):
            client.start("charge", idempotency_key="k" * 1001)
        # Defaults are not compared: a start that gives less is the same start.
        assert client.start("charge", idempotency_key="k-other") == first


def test_keys_are_forgotten_with_their_instances(db_url: str, flows: Path) -> None:
    with connect(db_url) as client:
        first = client.start("ship", idempotency_key="k-retained")
        asyncio.run(run_until_done(db_url, [first]))
        assert purge_finished(client.conn, days=0) >= 1
        assert client.start("ship", idempotency_key="k-retained") != first


def _start_in_thread(url: str, key: str, out: list[instances.Started]) -> threading.Thread:
    def go() -> None:
        with db_connect(url) as conn, conn.transaction():
            out.append(instances.start_instance(conn, "ship", idempotency_key=key))

    t = threading.Thread(target=go)
    t.start()
    return t


@pytest.mark.parametrize("first_commits", [True, False])
def test_concurrent_starts_with_one_key_make_one_instance(
    db_url: str, flows: Path, first_commits: bool
) -> None:
    key = f"k-race-{first_commits}"
    out: list[instances.Started] = []
    with db_connect(db_url) as a:
        a.execute("BEGIN")
        first = instances.start_instance(a, "ship", idempotency_key=key)
        assert not first.existing
        other = _start_in_thread(db_url, key, out)
        other.join(1.0)
        assert other.is_alive(), "the second start waits for the first transaction"
        a.execute("COMMIT" if first_commits else "ROLLBACK")
        other.join(10)
    (second,) = out
    assert second.existing is first_commits
    assert (second.id == first.id) is first_commits
    with db_connect(db_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM dfc.instances WHERE idempotency_key = %s", (key,)
        ).fetchone()
    assert row == (1,)


def dfc(*args: str) -> Result:
    return CliRunner().invoke(main, ["--no-color", *args], catch_exceptions=False)


def test_cli_start_with_a_key(db_url: str, flows: Path) -> None:
    r = dfc("start", "charge", "--idempotency-key", "cli-1", "--db", db_url)
    assert r.exit_code == 0, r.output
    first = r.stdout.strip()
    r = dfc("start", "charge", "--idempotency-key", "cli-1", "--db", db_url)
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == first
    assert f"idempotency key 'cli-1' already started instance {first}" in r.stderr
    r = dfc("start", "charge", "--idempotency-key", "cli-1", "--db", db_url, "--json")
    assert json.loads(r.stdout) == {"id": first, "workflow": "charge", "existing": True}
    r = dfc("start", "charge", "--idempotency-key", "cli-1", "--var", "n=3", "--db", db_url)
    assert r.exit_code == 1
    assert "n = '3', not '1'" in r.stderr
    assert "key      cli-1" in dfc("status", first, "--db", db_url).stdout
    status = json.loads(dfc("status", first, "--db", db_url, "--json").stdout)
    assert status["idempotency_key"] == "cli-1"
    assert "key cli-1" in dfc("ls", "--workflow", "charge", "--db", db_url).stdout


def test_df_start_with_a_key(db_url: str) -> None:
    with db_connect(db_url) as conn:

        def start(graph: str, label: str | None, key: str) -> str:
            row = conn.execute(
                "SELECT df.start(%s, %s, idempotency_key => %s)", (graph, label, key)
            ).fetchone()
            assert row is not None
            return str(row[0])

        first = start("SELECT 1", "nightly", "2026-12-03")
        assert start("SELECT 1", "nightly", "2026-12-03") == first
        # pg_durable's positional calls still reach the same function.
        row = conn.execute(
            "SELECT df.start('SELECT 1', 'nightly', NULL, 'caller', 1, '16 seconds', 'fail', "
            "'2026-12-03')"
        ).fetchone()
        assert row == (first,)
        # The scope is the label's workflow, sql:<label>.
        assert start("SELECT 1", "weekly", "2026-12-03") != first
        with pytest.raises(psycopg.errors.UniqueViolation, match="with another workflow"):
            start("SELECT 2", "nightly", "2026-12-03")
        conn.execute("SELECT df.setvar('day', 'thursday')")
        with pytest.raises(psycopg.errors.UniqueViolation, match="another set of variables"):
            start("SELECT 1", "nightly", "2026-12-03")
        conn.execute("SELECT df.clearvars()")
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="must not be empty"):
            start("SELECT 1", "nightly", "")
        info = conn.execute(
            "SELECT status, idempotency_key FROM df.instance_info(%s)", (first,)
        ).fetchone()
        assert info == ("pending", "2026-12-03")
        asyncio.run(run_until_done(db_url, [first], compile_graph=graph_compiler))
        assert start("SELECT 1", "nightly", "2026-12-03") == first
        # The scope written by SQL is the workflow the worker deployed the graph as.
        row = conn.execute(
            "SELECT workflow, idempotency_scope FROM dfc.instances WHERE id = %s", (first,)
        ).fetchone()
        assert row == (graph_workflow_name("nightly"), graph_workflow_name("nightly"))
