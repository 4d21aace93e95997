"""Schedules on a real database: two worker processes start one instance per fire time; the
overlap and catch-up policies; which schedule is in force after a deploy; ``dfc schedule``."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import psycopg
import pytest
from click.testing import CliRunner
from psycopg.rows import TupleRow
from runtime_support import stop_gracefully

from dfc.cli.main import main
from dfc.compiler import compile_source
from dfc.diagnostics import DfcError
from dfc.plan.model import Plan, PlanSchedule
from dfc.runtime.schedules import Fired, look, set_schedule
from dfc.source import SourceFile
from dfc.store import schedules as stored
from dfc.store.registry import deploy

Conn = psycopg.Connection[TupleRow]


def _plan(name: str, text: str) -> Plan:
    comp = compile_source(SourceFile(f"{name}.df", text))
    assert comp.plan is not None, [d.message for d in comp.diagnostics]
    return comp.plan


def _row(conn: Conn, workflow: str) -> stored.ScheduleRow | None:
    return next((r for r in stored.list_txn(conn) if r.workflow == workflow), None)


def _due_from(conn: Conn, workflow: str, ago: int, unit: str = "hour") -> datetime:
    """Make the schedule's next fire time the ``unit`` (minute or hour) ``ago`` units before
    this one. Tests that look themselves use hourly schedules: a minute turning between this
    and the look would add a fire time."""
    row = conn.execute(
        "UPDATE dfc.schedules SET next_fire_at = date_trunc(%s, now()) - %s * %s::interval"
        " WHERE workflow = %s RETURNING next_fire_at",
        (unit, ago, f"1 {unit}", workflow),
    ).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def _look(conn: Conn) -> list[Fired]:
    return look(conn)


def _outcomes(fired: list[Fired], workflow: str) -> list[str]:
    return [f.outcome for f in fired if f.workflow == workflow]


# -- exactly once with two workers ----------------------------------------------------------


@pytest.fixture
def two_workers(db_url: str) -> Iterator[list[subprocess.Popen[str]]]:
    env = {**os.environ, "DFC_DATABASE_URL": db_url}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "dfc", "--no-color", "worker", "--quiet"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        yield procs
    finally:
        stop_gracefully(procs)
        for p in procs:
            if p.stderr is not None:
                p.stderr.close()


def _wait(conn: Conn, sql: str, args: tuple[object, ...] = (), timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = conn.execute(sql, args).fetchone()
        if row is not None and row[0]:
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for: {sql} {args}")


def test_two_workers_start_exactly_one_instance_per_fire_time(
    conn: Conn, two_workers: list[subprocess.Popen[str]]
) -> None:
    plan = _plan("every_minute", "schedule '* * * * *' overlap allow catchup all;\n'SELECT 1'\n")
    deploy(conn, plan)
    _wait(conn, "SELECT count(*) = 2 FROM dfc.workers")
    # Both workers look every second; five fire times, minute by minute up to this one, are
    # due at once (as after an outage), and both find them.
    first = _due_from(conn, "every_minute", 4, "minute")
    _wait(
        conn,
        "SELECT next_fire_at > now() FROM dfc.schedules WHERE workflow = 'every_minute'",
    )
    _wait(
        conn,
        "SELECT bool_and(status = 'completed') FROM dfc.instances WHERE workflow = 'every_minute'",
    )
    fires = stored.fires_txn(conn, "every_minute")
    times = [t for t, _ in fires]
    # One fire time per minute, none twice, none missing (a minute may have turned meanwhile).
    assert times[0] == first and len(times) >= 5
    assert all(b - a == timedelta(minutes=1) for a, b in itertools.pairwise(times))
    ids = [iid for _, iid in fires]
    assert None not in ids and len(set(ids)) == len(ids)
    # In one snapshot: as many instances as fire times (a minute may turn between two reads).
    counts = conn.execute(
        "SELECT (SELECT count(*) FROM dfc.instances WHERE workflow = 'every_minute'),"
        " (SELECT count(*) FROM dfc.schedule_fires WHERE workflow = 'every_minute')"
    ).fetchone()
    assert counts is not None and counts[0] == counts[1] >= len(fires)
    for p in two_workers:
        assert p.poll() is None, p.stderr.read() if p.stderr else ""


# -- overlap and catch-up -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overlap", "outcomes"),
    [
        ("skip", ["started", "skipped", "skipped"]),
        ("queue", ["started", "queued", "queued"]),
        ("allow", ["started", "started", "started"]),
    ],
)
def test_overlap_policies_while_an_instance_is_unfinished(
    conn: Conn, overlap: str, outcomes: list[str]
) -> None:
    name = f"overlap_{overlap}"
    deploy(conn, _plan(name, f"schedule '0 * * * *' overlap {overlap} catchup all;\n'SELECT 1'"))
    _due_from(conn, name, 2)  # three fire times due; no worker runs, so instances stay pending
    assert _outcomes(_look(conn), name) == outcomes
    fires = [(t, iid) for t, iid in stored.fires_txn(conn, name) if iid is not None]
    assert len(fires) == outcomes.count("started")
    for t, iid in fires:  # each says in its history which fire time started it
        events = conn.execute(
            "SELECT event, detail ->> 'fire_at' FROM dfc.history WHERE instance_id = %s"
            " ORDER BY seq",
            (iid,),
        ).fetchall()
        assert [e for e, _ in events] == ["started", "scheduled"]
        assert datetime.fromisoformat(str(events[1][1])) == t


def test_queued_fire_times_start_one_by_one_as_instances_finish(conn: Conn) -> None:
    name = "queued"
    deploy(conn, _plan(name, "schedule '0 * * * *' overlap queue catchup all;\n'SELECT 1'"))
    first = _due_from(conn, name, 2)
    _look(conn)
    assert _outcomes(_look(conn), name) == []  # still behind the first instance
    for k in (1, 2):
        running = [iid for _, iid in stored.fires_txn(conn, name) if iid is not None][-1]
        conn.execute("SELECT dfc.cancel_instance(%s, 'test')", (running,))
        fired = [f for f in _look(conn) if f.workflow == name]
        assert [(f.outcome, f.fire_at) for f in fired] == [("started", first + timedelta(hours=k))]
    assert stored.waiting_txn(conn, name) == []


def test_catchup_none_drops_the_missed_fire_times(conn: Conn) -> None:
    name = "no_catchup"
    deploy(conn, _plan(name, "schedule '0 * * * *' overlap allow catchup none;\n'SELECT 1'"))
    _due_from(conn, name, 5)
    fired = [f for f in _look(conn) if f.workflow == name]
    # The hours more than 60 s old are dropped; this hour's is on time only in its first minute.
    assert fired[0].outcome == "missed"
    assert all(f.outcome in ("missed", "started") for f in fired)
    assert len(stored.fires_txn(conn, name)) == _outcomes(fired, name).count("started") <= 1


def test_a_schedule_that_cannot_start_says_why_and_moves_on(conn: Conn) -> None:
    conn.execute(
        "INSERT INTO dfc.schedules (workflow, cron, timezone, overlap, catchup, origin, "
        "next_fire_at) VALUES ('ghost', '* * * * *', 'UTC', 'skip', 'latest', 'command', "
        "date_trunc('hour', now()))"
    )
    fired = [f for f in _look(conn) if f.workflow == "ghost"]
    assert [f.outcome for f in fired] == ["failed"]
    assert fired[0].detail is not None and "ghost" in fired[0].detail
    row = _row(conn, "ghost")
    assert row is not None and row.next_fire_at is not None
    assert row.next_fire_at > fired[0].fire_at
    stored.remove_txn(conn, "ghost")


# -- which schedule is in force --------------------------------------------------------------


def test_the_latest_deployed_version_sets_the_schedule(conn: Conn) -> None:
    name = "in_force"

    def file(sched: str, body: str = "'SELECT 1'") -> Plan:
        return _plan(name, f"{sched}\n{body}")

    deploy(conn, file("schedule '0 3 * * *';"))
    row = _row(conn, name)
    assert row is not None and row.origin == "file" and row.version == 1
    assert row.next_fire_at is None  # armed by the next look, from then on
    _look(conn)
    armed = _row(conn, name)
    assert armed is not None and armed.next_fire_at is not None
    # A new body with the same times keeps the next fire time; new times count afresh.
    deploy(conn, file("schedule '0 3 * * *';", "'SELECT 2'"))
    kept = _row(conn, name)
    assert kept is not None and kept.version == 2 and kept.next_fire_at == armed.next_fire_at
    deploy(conn, file("schedule '0 4 * * *' overlap queue;"))
    changed = _row(conn, name)
    assert changed is not None and changed.next_fire_at is None
    assert changed.schedule == PlanSchedule(cron="0 4 * * *", overlap="queue")
    # `dfc run` tries a file out: its dev version changes no schedule.
    deploy(conn, file("schedule '0 5 * * *';"), dev=True)
    dev = _row(conn, name)
    assert dev is not None and dev.schedule.cron == "0 4 * * *"
    # A version without a schedule removes the file's...
    deploy(conn, file("", "'SELECT 3'"))
    assert _row(conn, name) is None
    # ... but not one set by `dfc schedule`, until a file sets one again.
    set_schedule(conn, name, PlanSchedule(cron="*/5 * * * *"))
    deploy(conn, file("", "'SELECT 4'"))
    by_command = _row(conn, name)
    assert by_command is not None and by_command.origin == "command"
    deploy(conn, file("schedule '0 6 * * *';"))
    again = _row(conn, name)
    assert again is not None and again.origin == "file" and again.schedule.cron == "0 6 * * *"


def test_set_schedule_refuses_what_cannot_fire(conn: Conn) -> None:
    deploy(conn, _plan("needs_n", "param n int;\n'SELECT {n}'"))
    with pytest.raises(DfcError, match=r"parameters without a default \(n\)"):
        set_schedule(conn, "needs_n", PlanSchedule(cron="0 3 * * *"))
    with pytest.raises(DfcError, match="no workflow named"):
        set_schedule(conn, "nobody", PlanSchedule(cron="0 3 * * *"))
    with pytest.raises(DfcError, match="invalid cron expression"):
        set_schedule(conn, "needs_n", PlanSchedule(cron="0 3 * * * *"))


# -- dfc schedule ----------------------------------------------------------------------------


def test_dfc_schedule_sets_lists_and_removes(conn: Conn, db_url: str) -> None:
    deploy(conn, _plan("report", "'SELECT 1'"))
    run = CliRunner().invoke

    def dfc(*args: str) -> tuple[int, str]:
        result = run(main, ["--no-color", *args, "--db", db_url])
        return result.exit_code, result.output

    code, out = dfc("schedule", "report", "30 8 * * MON-FRI", "--timezone", "Europe/Paris")
    assert code == 0, out
    assert out.startswith("scheduled report: '30 8 * * MON-FRI' Europe/Paris, overlap skip")
    assert "next fire " in out and (" +0100" in out or " +0200" in out)
    code, out = dfc("schedule", "--list")
    assert code == 0 and "report  '30 8 * * MON-FRI' Europe/Paris" in out
    assert "(dfc schedule)" in out
    code, out = dfc("schedule", "report", "--off")
    assert code == 0 and out.strip() == "removed the schedule of report"
    code, out = dfc("schedule", "report", "--off")
    assert code == 1 and "workflow 'report' has no schedule" in out
