"""Schedules' vocabulary (SPEC §1.7, §5.9): the overlap and catch-up policies, the defaults of a
``schedule`` statement and of ``dfc schedule``, and what names a valid time zone.

The parser reads the policy words, the checker the zone, the plan stores the values with the
defaults filled in, and the scheduler and the CLI act on them: all from here.
"""

from __future__ import annotations

import zoneinfo
from functools import cache
from typing import Literal, get_args

OverlapPolicy = Literal["skip", "queue", "allow"]
"""What a fire does while an instance started by an earlier fire of the schedule is unfinished:
start nothing (``skip``), wait and start when it has finished (``queue``) or start at once
(``allow``)."""

CatchupPolicy = Literal["none", "latest", "all"]
"""Which fire times missed while no worker ran are started late: none of them, the latest one,
or every one (the newest `MAX_CATCHUP`)."""

OVERLAP_POLICIES: tuple[str, ...] = get_args(OverlapPolicy)
CATCHUP_POLICIES: tuple[str, ...] = get_args(CatchupPolicy)

DEFAULT_TIMEZONE = "UTC"
DEFAULT_OVERLAP: OverlapPolicy = "skip"
DEFAULT_CATCHUP: CatchupPolicy = "latest"

OPTIONS: dict[str, tuple[str, ...] | None] = {
    "timezone": None,
    "overlap": OVERLAP_POLICIES,
    "catchup": CATCHUP_POLICIES,
}
"""The options of a ``schedule`` statement, each with its words (None: a string value)."""

MAX_CATCHUP = 100
"""The most fire times one look starts (catch-up ``all``) or keeps waiting (overlap ``queue``)."""

ON_TIME_SECONDS = 60.0
"""A fire time this recent is on time, not missed: ``catchup none`` still starts it (a worker
that looks a few seconds late, or restarts within the minute, loses no fire)."""


@cache
def is_timezone(name: str) -> bool:
    """Whether ``name`` is a time zone of the IANA database (``Europe/Paris``, ``UTC``)."""
    if not name or name != name.strip():
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True
