"""The virtual clock drives the real runtime: sleeps, cron waits, timeouts and retry backoff
fire when the clock is skipped or advanced, in milliseconds of wall time."""

from __future__ import annotations

import time
from datetime import UTC, timedelta

import pytest

from dfc.client import InstanceFailed
from dfc.testing import Env, EnvError

pytestmark = [pytest.mark.db, pytest.mark.timeout(120)]

DAY_AND_WEEKLY_CRON = """
df.start(
    'SELECT 1 AS first'
    ~> df.sleep(86400)
    ~> df.wait_for_schedule('0 9 * * 1')
    ~> 'SELECT 2 AS last',
    'weekly'
);
"""


def test_a_day_of_sleep_and_a_weekly_cron_run_in_well_under_a_second(dfc_env: Env) -> None:
    dfc_env.deploy(DAY_AND_WEEKLY_CRON)
    began = dfc_env.now
    iid = dfc_env.start("weekly")
    wall = time.perf_counter()
    result = dfc_env.result(iid)
    wall = time.perf_counter() - wall
    print(f"a day of sleep and a weekly cron wait: {wall * 1000:.0f} ms of wall time")
    assert result == {"rows": [{"last": 2}], "row_count": 1}
    now = dfc_env.now.astimezone(UTC)
    assert now - began >= timedelta(days=1)
    assert (now.weekday(), now.hour, now.minute) == (0, 9, 0)  # Monday 09:00, the cron's time
    events = [e.event for e in dfc_env.history(iid)]
    assert events[0] == "started" and events[-1] == "completed"
    assert events.count("node_waiting") == 2


def test_advance_fires_a_sleep_when_its_time_comes(dfc_env: Env) -> None:
    dfc_env.deploy("df.start(df.sleep(7200) ~> 'SELECT 1 AS woke', 'nap');")
    iid = dfc_env.start("nap")
    dfc_env.advance("1h")
    info = dfc_env.status(iid)
    assert info.status == "running" and "timer" in (info.waiting_for or "")
    dfc_env.advance("59m 59s")
    assert dfc_env.status(iid).status == "running"
    dfc_env.advance("2s")
    assert dfc_env.status(iid).status == "completed"
    assert dfc_env.result(iid) == {"rows": [{"woke": 1}], "row_count": 1}


def test_a_timeout_fires_on_advance(dfc_env: Env) -> None:
    dfc_env.deploy("df.start(df.timeout(df.wait_for_signal('go'), 3600), 'bounded');")
    iid = dfc_env.start("bounded")
    dfc_env.advance("59m")
    assert dfc_env.status(iid).status == "running"
    dfc_env.advance("2m")
    info = dfc_env.status(iid)
    assert info.status == "failed"
    assert "3600" in str(info.error) or "timed out" in str(info.error)
    with pytest.raises(InstanceFailed):
        dfc_env.result(iid)


def test_retry_backoff_waits_on_the_virtual_clock(dfc_env: Env) -> None:
    # The step fails (division by zero) until the test puts a row in the table.
    dfc_env.sql("CREATE TABLE gate (open boolean)")
    dfc_env.deploy(
        "df.start(\n"
        "    df.retry('SELECT 1 / count(*) AS ok FROM gate',\n"
        "             attempts => 3, backoff => 60, factor => 2, jitter => false),\n"
        "    'flaky'\n"
        ");"
    )
    iid = dfc_env.start("flaky")
    dfc_env.advance("50s")  # the first attempt failed; its backoff is a minute
    assert dfc_env.status(iid).status == "running"
    dfc_env.advance("20s")  # the second failed; the next backoff is two minutes
    assert dfc_env.status(iid).status == "running"
    dfc_env.sql("INSERT INTO gate VALUES (true)")
    began = dfc_env.now
    assert dfc_env.result(iid) == {"rows": [{"ok": 1}], "row_count": 1}
    assert dfc_env.now - began >= timedelta(seconds=110)
    (retry,) = [e for e in dfc_env.history(iid) if e.event == "node_completed" and e.key == "n1"]
    assert retry.detail["delays"] == [60.0, 120.0]


def test_signals_come_from_the_test(dfc_env: Env) -> None:
    dfc_env.deploy(
        "df.start(df.wait_for_signal('approval') |=> 'd' ~> 'SELECT $d.data AS data', 'approve');"
    )
    iid = dfc_env.start("approve")
    with pytest.raises(EnvError, match="signal approval"):
        dfc_env.result(iid)
    dfc_env.signal(iid, "approval", {"by": "maria"})
    assert dfc_env.result(iid) == {"rows": [{"data": '{"by":"maria"}'}], "row_count": 1}


def test_a_signal_wait_times_out_on_the_clock(dfc_env: Env) -> None:
    dfc_env.deploy("df.start(df.wait_for_signal('approval', 86400), 'patient');")
    iid = dfc_env.start("patient")
    assert dfc_env.result(iid) == {"signal_name": "approval", "timed_out": True, "data": None}


def test_run_until_idle_runs_every_instance_and_leaves_signal_waits(dfc_env: Env) -> None:
    dfc_env.deploy("df.start(df.sleep(3600) ~> 'SELECT 1 AS one', 'sleeper');")
    dfc_env.deploy("df.start(df.wait_for_signal('go'), 'waiter');")
    sleepers = [dfc_env.start("sleeper") for _ in range(3)]
    waiter = dfc_env.start("waiter")
    dfc_env.run_until_idle()
    assert {dfc_env.status(i).status for i in sleepers} == {"completed"}
    assert dfc_env.status(waiter).status == "running"


def test_advance_fires_a_schedule_at_each_of_its_times(dfc_env: Env) -> None:
    dfc_env.deploy(
        "schedule '0 9 * * *' timezone 'Europe/Paris';\ndf.start('SELECT 1 AS tick', 'daily');"
    )
    dfc_env.advance("3d")
    started = dfc_env.client.list(workflow="daily")
    assert len(started) == 3 and {i.status for i in started} == {"completed"}
    fired = sorted(
        e.detail["fire_at"]
        for i in started
        for e in dfc_env.history(i.id)
        if e.event == "scheduled"
    )
    assert len(set(fired)) == 3
    assert all(t.endswith(("T08:00:00+00:00", "T07:00:00+00:00")) for t in fired)  # 09:00 Paris


def test_run_until_idle_does_not_skip_to_schedules_alone(dfc_env: Env) -> None:
    dfc_env.deploy("schedule '0 9 * * *';\ndf.start('SELECT 1 AS tick', 'daily2');")
    began = dfc_env.now
    dfc_env.run_until_idle()
    assert dfc_env.client.list(workflow="daily2") == []
    assert dfc_env.now - began < timedelta(hours=1)


def test_sql_runs_in_real_time_and_a_blocked_call_fails_at_its_wall_clock_limit(
    dfc_env: Env,
) -> None:
    dfc_env.deploy("df.start('SELECT pg_sleep(30)', 'slow');")
    iid = dfc_env.start("slow")
    with pytest.raises(EnvError, match="still busy after the wall-clock limit"):
        dfc_env.result(iid, timeout=0.5)
    # The fixture's teardown stops the worker, cancelling the running statement.


def test_an_instance_started_from_sql_runs_on_the_virtual_clock(dfc_env: Env) -> None:
    ((iid,),) = dfc_env.sql(
        "SELECT df.start(df.seq(df.sleep(3600), 'SELECT 42 AS answer'), 'from-sql')::text"
    )
    assert dfc_env.result(iid) == {"rows": [{"answer": 42}], "row_count": 1}
