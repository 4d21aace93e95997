"""Flow control: a workflow's ``max_concurrent`` and per-key concurrency, enforced for any
number of workers (docs/runtime.md, "Idempotent starts and flow control")."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from runtime_support import stop_gracefully

from dfc.cli.main import main
from dfc.client import Client, connect
from dfc.compiler import compile_source
from dfc.diagnostics import DfcError
from dfc.runtime import instances
from dfc.source import SourceFile
from dfc.store.db import connect as db_connect

pytestmark = [pytest.mark.db, pytest.mark.timeout(120)]

LIMITED = "df.start('SELECT pg_sleep(0.2)' ~> df.sleep(1), 'limited', max_concurrent => 2)\n"
SERIAL = "df.start('SELECT 1' ~> df.wait_for_signal('go'), 'serial', max_concurrent => 1)\n"
PER_KEY = "'SELECT pg_sleep(0.2)' ~> df.sleep(1)\n"


@pytest.fixture
def client(db_url: str, tmp_path: Path) -> Iterator[Client]:
    for name, text in (("limited", LIMITED), ("serial", SERIAL), ("per_key", PER_KEY)):
        (tmp_path / f"{name}.df").write_text(text)
    with connect(db_url) as c:
        for name in ("limited", "serial", "per_key"):
            c.deploy(tmp_path / f"{name}.df")
        yield c


def test_max_concurrent_is_a_workflow_file_option() -> None:
    plan = compile_source(SourceFile("limited.df", LIMITED)).plan
    assert plan is not None and plan.options["max_concurrent"] == 2


def queue(conn: psycopg.Connection[Any], iid: str) -> tuple[bool, bool]:
    """(due, waiting for its turn) of the instance's queue row."""
    row = conn.execute(
        "SELECT run_at IS NOT NULL, gated_at IS NOT NULL FROM dfc.queue WHERE instance_id = %s",
        (iid,),
    ).fetchone()
    assert row is not None
    return bool(row[0]), bool(row[1])


def test_over_the_limit_an_instance_waits_for_its_turn(client: Client) -> None:
    first, second, third = (client.start("serial") for _ in range(3))
    assert queue(client.conn, first) == (True, False)
    assert queue(client.conn, second) == (False, True)
    info = client.status(second)
    assert info.status == "pending"
    assert info.waiting_for == "its turn: at most 1 running instances of serial"
    # A signal is kept for it, but does not make it due before its turn.
    client.signal(second, "go")
    assert queue(client.conn, second) == (False, True)
    # Cancelling the instance that holds the slot gives it to the next in line.
    client.cancel(first)
    assert queue(client.conn, second) == (True, False)
    assert queue(client.conn, third) == (False, True)
    # Cancelling one that waits frees nothing.
    fourth = client.start("serial")
    client.cancel(third)
    assert queue(client.conn, fourth) == (False, True)


def test_a_busy_key_holds_up_only_its_own_instances(client: Client) -> None:
    a1 = client.start("per_key", concurrency_key="customer-a")
    a2 = client.start("per_key", concurrency_key="customer-a")
    b1 = client.start("per_key", concurrency_key="customer-b")
    free = client.start("per_key")
    assert [queue(client.conn, i)[0] for i in (a1, a2, b1, free)] == [True, False, True, True]
    assert client.status(a2).waiting_for == (
        "its turn: one running instance with concurrency key customer-a"
    )
    assert client.status(a2).concurrency_key == "customer-a"
    client.cancel(a1)
    assert queue(client.conn, a2) == (True, False)
    with pytest.raises(DfcError, match="a concurrency key must not be empty"):
        client.start("per_key", concurrency_key="")


def _worker(url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "dfc", "worker", "--db", url, "--quiet", "--concurrency", "8"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@contextlib.contextmanager
def two_workers(url: str) -> Iterator[None]:
    """Two `dfc worker` processes serving ``url``."""
    procs = [_worker(url), _worker(url)]
    try:
        yield
    finally:
        stop_gracefully(procs, timeout=20)


class Sampler:
    """Samples, every 20 ms until stopped, the most running instances per (workflow, key)."""

    QUERY = """
        SELECT workflow, coalesce(concurrency_key, ''), count(*) FROM dfc.instances
         WHERE status = 'running' GROUP BY 1, 2
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.most: dict[tuple[str, str], int] = {}
        self.running = True
        self.thread = threading.Thread(target=self.sample)
        self.thread.start()

    def sample(self) -> None:
        with db_connect(self.url) as conn:
            while self.running:
                for workflow, key, n in conn.execute(self.QUERY).fetchall():
                    self.most[(workflow, key)] = max(self.most.get((workflow, key), 0), n)
                time.sleep(0.02)

    def stop(self) -> dict[tuple[str, str], int]:
        self.running = False
        self.thread.join()
        return self.most


def wait_all(client: Client, ids: list[str], timeout: float) -> None:
    for iid in ids:
        client.wait(iid, timeout=timeout, poll=0.2)


def test_two_worker_processes_respect_the_limits(db_url: str, client: Client) -> None:
    limited = [client.start("limited") for _ in range(8)]
    keyed = [client.start("per_key", concurrency_key=k) for k in "aaabbbc"]
    unkeyed = [client.start("per_key") for _ in range(4)]
    sampler = Sampler(db_url)
    try:
        with two_workers(db_url):
            wait_all(client, limited + keyed + unkeyed, timeout=90)
    finally:
        most = sampler.stop()
    assert most[("limited", "")] == 2
    assert most[("per_key", "a")] == most[("per_key", "b")] == 1
    # Without a key nothing holds the instances back: they ran side by side.
    assert most[("per_key", "")] > 1
    # max_concurrent admits in order of start. Two admitted together (two slots freed at once)
    # are claimed by two workers in either order, milliseconds apart; an instance admitted out
    # of turn would start a whole run (1.2 s) before one started earlier.
    started = [client.status(i).started_at for i in limited]
    assert all(s is not None for s in started)
    assert all(
        b >= a - timedelta(seconds=0.5)  # type: ignore[operator]
        for a, b in pairwise(started)
    ), started
    # Every slot was given back.
    slots = client.conn.execute(
        "SELECT (SELECT running FROM dfc.flow_running WHERE workflow = 'limited'),"
        " (SELECT count(*) FROM dfc.flow_keys WHERE workflow = 'per_key')"
    ).fetchone()
    assert slots == (0, 0)


def test_cli_start_with_a_concurrency_key(db_url: str, client: Client) -> None:
    runner = CliRunner()
    r = runner.invoke(
        main, ["--no-color", "start", "per_key", "--concurrency-key", "c-9", "--db", db_url]
    )
    assert r.exit_code == 0, r.output
    iid = r.stdout.strip()
    r = runner.invoke(main, ["--no-color", "status", iid, "--db", db_url, "--json"])
    assert json.loads(r.stdout)["concurrency_key"] == "c-9"
    r = runner.invoke(main, ["--no-color", "status", iid, "--db", db_url])
    assert "concurrency key c-9" in r.stdout


def test_a_start_at_repeatable_read_never_sees_a_stale_slot(
    db_url: str, client: Client, tmp_path: Path
) -> None:
    # A workflow of its own: the other tests leave instances of theirs holding slots.
    (tmp_path / "rr.df").write_text("df.start('SELECT 1', 'rr', max_concurrent => 1)\n")
    client.deploy(tmp_path / "rr.df")
    held = client.start("per_key", concurrency_key="rr")
    serial = client.start("rr")
    with db_connect(db_url) as other:
        other.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        other.execute("SELECT 1")  # the snapshot: the key and the slot are taken
        client.cancel(held)
        client.cancel(serial)
        # The key freed since is free for it (a deleted row does not conflict) ...
        iid = instances.start(other, "per_key", concurrency_key="rr")
        assert queue(other, iid) == (True, False)
        # ... and a counter changed since is a serialization failure, not a slot too many.
        with pytest.raises(psycopg.errors.SerializationFailure):
            instances.start(other, "rr")
        other.execute("ROLLBACK")


# -- rate limits ---------------------------------------------------------------------------------

RATED = "df.start('SELECT 1', 'rated', rate_limit => '4/second')\n"
RATED_SERIAL = "df.start('SELECT pg_sleep(0.3)', 'rated_serial', max_concurrent => 1, rate_limit => '1/minute')\n"


def _deploy(client: Client, tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / f"{name}.df").write_text(text)
    client.deploy(tmp_path / f"{name}.df")


def _slots(conn: psycopg.Connection[Any], ids: list[str]) -> list[float]:
    """Each instance's due time, in seconds after the first one's (None while gated)."""
    rows = dict(
        conn.execute(
            "SELECT instance_id, extract(epoch FROM run_at)::float8 FROM dfc.queue"
            " WHERE instance_id = ANY(%s)",
            (ids,),
        ).fetchall()
    )
    first = rows[ids[0]]
    return [round(rows[i] - first, 3) if rows[i] is not None else None for i in ids]


def test_a_rate_limit_spaces_the_starts(db_url: str, client: Client, tmp_path: Path) -> None:
    _deploy(client, tmp_path, "rated", RATED)
    ids = [client.start("rated") for _ in range(5)]
    # 4 a second: one start every 0.25 s, however fast they were asked for.
    assert _slots(client.conn, ids) == [0.0, 0.25, 0.5, 0.75, 1.0]
    with two_workers(db_url):
        wait_all(client, ids, timeout=60)
    first_runs = [client.status(i).started_at for i in ids]
    assert all(b >= a for a, b in pairwise(first_runs)), first_runs  # type: ignore[operator]
    # A version without the limit lifts it.
    _deploy(client, tmp_path, "rated", "df.start('SELECT 2', 'rated')\n")
    more = [client.start("rated") for _ in range(3)]
    assert all(slot < 0.2 for slot in _slots(client.conn, more))  # due as they start


def test_an_admitted_instance_runs_at_its_rate_slot(client: Client, tmp_path: Path) -> None:
    _deploy(client, tmp_path, "rated_serial", RATED_SERIAL)
    first, second = client.start("rated_serial"), client.start("rated_serial")
    assert queue(client.conn, second) == (False, True)  # waits for its turn
    client.cancel(first)  # its slot goes to the second, whose rate slot is a minute on
    assert _slots(client.conn, [second]) == [0.0]
    gap = client.conn.execute(
        "SELECT extract(epoch FROM run_at - now()) FROM dfc.queue WHERE instance_id = %s",
        (second,),
    ).fetchone()
    assert gap is not None and 55 < float(gap[0]) <= 60


def test_a_rate_limit_is_checked(tmp_path: Path) -> None:
    (tmp_path / "bad.df").write_text("df.start('SELECT 1', 'bad', rate_limit => '10 per minute')\n")
    result = CliRunner().invoke(main, ["check", str(tmp_path / "bad.df")])
    assert result.exit_code == 1
    assert "DFC139" in result.output and "N/second, N/minute" in result.output
