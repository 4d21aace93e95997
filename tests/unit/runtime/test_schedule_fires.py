"""Which fire times a look at a schedule starts (`due_fires`): catch-up policies, a long outage,
and cron in a time zone across daylight saving time."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dfc.plan.model import PlanSchedule
from dfc.runtime.schedules import due_fires
from dfc.scheduling import MAX_CATCHUP, CatchupPolicy

PARIS = ZoneInfo("Europe/Paris")


def _at(h: int, m: int, s: int = 0, day: int = 1) -> datetime:
    return datetime(2026, 6, day, h, m, s, tzinfo=UTC)


def _every_5(catchup: CatchupPolicy = "latest") -> PlanSchedule:
    return PlanSchedule(cron="*/5 * * * *", catchup=catchup)


def test_a_new_schedule_counts_from_now_and_starts_nothing() -> None:
    due = due_fires(_every_5(), None, _at(12, 3, 20))
    assert due.start == () and due.missed == 0
    assert due.next_fire_at == _at(12, 5)


def test_nothing_is_due_before_the_next_fire_time() -> None:
    due = due_fires(_every_5(), _at(12, 5), _at(12, 4, 59))
    assert due.start == () and due.next_fire_at == _at(12, 5)


@pytest.mark.parametrize("catchup", ["none", "latest", "all"])
def test_a_fire_time_reached_on_time_starts_under_every_policy(catchup: CatchupPolicy) -> None:
    due = due_fires(_every_5(catchup), _at(12, 5), _at(12, 5, 0))
    assert due.start == (_at(12, 5),) and due.missed == 0
    assert due.next_fire_at == _at(12, 10)
    # A worker a few seconds late is still on time.
    assert due_fires(_every_5(catchup), _at(12, 5), _at(12, 5, 40)).start == (_at(12, 5),)


@pytest.mark.parametrize(
    ("catchup", "started", "missed"),
    [
        ("none", (), 4),  # 12:05 .. 12:20, all more than a minute old at 12:21:30
        ("latest", (_at(12, 20),), 3),
        ("all", (_at(12, 5), _at(12, 10), _at(12, 15), _at(12, 20)), 0),
    ],
)
def test_after_an_outage_the_catchup_policy_decides(
    catchup: CatchupPolicy, started: tuple[datetime, ...], missed: int
) -> None:
    due = due_fires(_every_5(catchup), _at(12, 5), _at(12, 21, 30))
    assert due.start == started and due.missed == missed and not due.more
    assert due.next_fire_at == _at(12, 25)


def test_catchup_none_keeps_the_fire_time_that_is_on_time() -> None:
    due = due_fires(_every_5("none"), _at(12, 5), _at(12, 10, 30))
    assert due.start == (_at(12, 10),) and due.missed == 1


def test_a_long_outage_starts_at_most_the_newest_fire_times() -> None:
    every_minute = PlanSchedule(cron="* * * * *", catchup="all")
    now = _at(12, 0, 30, day=20)  # 19 days down: 27,000 fire times
    due = due_fires(every_minute, _at(12, 0, day=1), now)
    assert len(due.start) == MAX_CATCHUP and due.more
    assert due.start[-1] == _at(12, 0, day=20)
    assert due.start[0] == _at(12, 0, day=20) - timedelta(minutes=MAX_CATCHUP - 1)
    assert list(due.start) == sorted(due.start)
    assert due.next_fire_at == _at(12, 1, day=20)
    latest = due_fires(PlanSchedule(cron="* * * * *"), _at(12, 0, day=1), now)
    assert latest.start == (_at(12, 0, day=20),) and latest.more


def _paris(y: int, mo: int, d: int, h: int, m: int, fold: int = 0) -> datetime:
    return datetime(y, mo, d, h, m, tzinfo=PARIS, fold=fold).astimezone(UTC)


def _fires(schedule: PlanSchedule, start: datetime, n: int) -> list[datetime]:
    """The next ``n`` fire times after ``start``, as a scheduler finds them look after look."""
    out: list[datetime] = []
    t = due_fires(schedule, None, start).next_fire_at
    for _ in range(n):
        out.append(t)
        due = due_fires(schedule, t, t)
        assert due.start == (t,)
        t = due.next_fire_at
    return out


def test_dst_gap_a_fixed_time_in_the_gap_fires_at_the_first_minute_after_it() -> None:
    # 2026-03-29: Paris clocks jump from 02:00 to 03:00; 02:30 does not exist that day.
    daily = PlanSchedule(cron="30 2 * * *", timezone="Europe/Paris")
    fires = _fires(daily, _paris(2026, 3, 28, 12, 0), 3)
    assert fires == [
        _paris(2026, 3, 29, 3, 0),
        _paris(2026, 3, 30, 2, 30),
        _paris(2026, 3, 31, 2, 30),
    ]


def test_dst_overlap_a_fixed_time_fires_once_and_an_interval_at_every_instant() -> None:
    # 2026-10-25: Paris clocks go back from 03:00 to 02:00; 02:30 happens twice.
    daily = PlanSchedule(cron="30 2 * * *", timezone="Europe/Paris")
    assert _fires(daily, _paris(2026, 10, 24, 12, 0), 2) == [
        _paris(2026, 10, 25, 2, 30),
        _paris(2026, 10, 26, 2, 30),
    ]
    half_hourly = PlanSchedule(cron="*/30 * * * *", timezone="Europe/Paris")
    fires = _fires(half_hourly, _paris(2026, 10, 25, 1, 45), 5)
    assert fires == [
        _paris(2026, 10, 25, 2, 0),
        _paris(2026, 10, 25, 2, 30),
        _paris(2026, 10, 25, 2, 0, fold=1),
        _paris(2026, 10, 25, 2, 30, fold=1),
        _paris(2026, 10, 25, 3, 0),
    ]
    assert all(b - a == timedelta(minutes=30) for a, b in itertools.pairwise(fires))


def test_a_zone_shifts_the_fire_times() -> None:
    daily = PlanSchedule(cron="0 9 * * *", timezone="Europe/Paris")
    assert due_fires(daily, None, _at(0, 0)).next_fire_at == _at(7, 0)  # CEST is UTC+2
