"""Live trees: how a node's mark reads (timer dates, composite durations, node ids)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dfc.plan.explain import explain_lines
from dfc.runtime.live import marks
from dfc.runtime.state import NodeRecord
from plan_builder import Build

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def waiting(wake_at: datetime) -> NodeRecord:
    return NodeRecord(key="n1", node_id="n1", status="waiting", wake_at=wake_at)


def test_a_timer_due_today_shows_its_time_and_one_due_another_day_its_date() -> None:
    today = NOW.replace(hour=18)
    tomorrow = NOW + timedelta(days=1)
    for wake, shown in (
        (today, today.astimezone().strftime("%H:%M:%S")),
        (tomorrow, tomorrow.astimezone().strftime("%Y-%m-%d %H:%M:%S")),
    ):
        m = marks({"n1": "waiting"}, {"n1": waiting(wake)}, now=NOW)
        assert m["n1"].note == f"until {shown}"
    assert "-" in str(marks({"n1": "waiting"}, {"n1": waiting(tomorrow)}, now=NOW)["n1"].note)


def test_a_race_lasts_from_its_first_branch_start_to_its_decision() -> None:
    b = Build()
    fast, slow = b.sql("SELECT pg_sleep(2)"), b.sleep(60)
    race = b.race(fast, slow)
    plan = b.plan(b.then(race, b.sql("SELECT 1")))
    t = NOW
    timings = {
        fast: (t, t + timedelta(seconds=2)),
        slow: (t, None),
        # the race's record is written when it is decided, in one short transaction
        race: (t + timedelta(seconds=2), t + timedelta(seconds=2, milliseconds=1)),
        # the same race in an iteration of a loop n9 is timed within that iteration only
        f"n9#2/{fast}": (t + timedelta(seconds=10), t + timedelta(seconds=11)),
        f"n9#2/{race}": (t + timedelta(seconds=11), t + timedelta(seconds=11, milliseconds=1)),
    }
    statuses = {fast: "completed", slow: "cancelled", race: "completed"}
    m = marks(statuses, timings=timings, plan=plan)
    assert m[race].duration_ms == pytest.approx(2001)
    assert m[fast].duration_ms == 2000
    m = marks({f"n9#2/{race}": "completed"}, timings=timings, plan=plan)
    assert m[race].duration_ms == pytest.approx(1001)


def test_explain_lines_start_with_node_ids_when_asked() -> None:
    b = Build()
    plan = b.plan(b.then(b.sql("SELECT 1", name="one"), b.sleep(1)))
    assert explain_lines(plan, ids=True) == [
        "n3  THEN",
        "n1  ├── SQL SELECT 1 |=> one",
        "n2  └── SLEEP 1s",
    ]
    long = "SELECT " + ", ".join(f"{i} AS c{i}" for i in range(30))
    b = Build()
    plan = b.plan(b.sql(long))
    assert explain_lines(plan)[0].endswith("…")
    assert explain_lines(plan, width=None) == [f"SQL {long}"]
