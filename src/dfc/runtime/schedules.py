"""Schedules at run time (SPEC §5.9): which fire times are due, and starting their instances.

`due_fires` is pure: from a schedule, the first fire time not yet handled and the time now, it
tells which fire times to start (the catch-up policy) and the next one. `look` is the effect:
in one transaction it locks the schedules that are due (``FOR UPDATE SKIP LOCKED``, so several
workers share them and none fires one twice), starts the instances the overlap policy allows,
records each fire time and moves the schedule's next fire time past them. Any worker may look;
`Scheduler` is the worker's, with a connection of its own.

Cron times are wall-clock times in the schedule's zone, read as cronsim reads them (Debian
cron's rules): a job at a fixed time that falls in a spring-forward gap fires at the first
minute after it, and once on the day the clocks go back; a job with a wildcard minute or hour
fires at every matching instant (twice through a repeated hour).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, assert_never

import psycopg
from cronsim import CronSim, CronSimError

from dfc.diagnostics import DfcError
from dfc.plan.model import PlanSchedule
from dfc.runtime import instances
from dfc.runtime.clock import SYSTEM, Clock
from dfc.runtime.logs import StepLog
from dfc.runtime.timers import next_fire, zone
from dfc.scheduling import MAX_CATCHUP, ON_TIME_SECONDS, is_timezone
from dfc.store import schedules as stored
from dfc.store.db import connect
from dfc.store.registry import load_plan_txn
from dfc.store.schedules import ScheduleRow

Conn = psycopg.Connection[psycopg.rows.TupleRow]
Outcome = Literal["started", "queued", "skipped", "missed", "failed"]


@dataclass(frozen=True, slots=True)
class Due:
    """What a look at a schedule finds: the fire times to start (oldest first), how many
    earlier ones the catch-up policy drops (``missed``, at least that many when ``more``),
    and the next fire time after now."""

    start: tuple[datetime, ...]
    missed: int
    next_fire_at: datetime
    more: bool = False


def due_fires(schedule: PlanSchedule, next_fire_at: datetime | None, now: datetime) -> Due:
    """The fire times due at ``now`` for a schedule whose first unhandled fire time is
    ``next_fire_at`` (None: just set, nothing is due; it counts from now)."""
    if next_fire_at is None:
        return Due((), 0, _after(schedule, now))
    times: list[datetime] = []
    t = next_fire_at
    while t <= now and len(times) <= MAX_CATCHUP:
        times.append(t)
        t = _after(schedule, t)
    more = t <= now
    if more:  # a long outage: only the newest fire times can be started, find them from now
        times = _newest(schedule, now, MAX_CATCHUP + 1)
        t = _after(schedule, now)
    match schedule.catchup:
        case "none":
            start = [x for x in times if (now - x).total_seconds() <= ON_TIME_SECONDS]
        case "latest":
            start = times[-1:]
        case "all":
            start = times[-MAX_CATCHUP:]
        case _:
            assert_never(schedule.catchup)
    return Due(tuple(start), len(times) - len(start), t, more)


def _after(schedule: PlanSchedule, t: datetime) -> datetime:
    return next_fire(schedule.cron, t, schedule.timezone)


def _newest(schedule: PlanSchedule, now: datetime, n: int) -> list[datetime]:
    """The ``n`` newest fire times at or before ``now``, oldest first."""
    local = now.astimezone(zone(schedule.timezone))
    # cronsim's reverse iteration counts a datetime with microseconds as after its whole second.
    it = CronSim(schedule.cron, local.replace(microsecond=max(local.microsecond, 1)), reverse=True)
    return sorted(next(it).astimezone(UTC) for _ in range(n))


@dataclass(frozen=True, slots=True)
class Fired:
    """What one fire time did: ``instance_id`` when it started one."""

    workflow: str
    fire_at: datetime
    outcome: Outcome
    instance_id: str | None = None
    detail: str | None = None


def look(conn: Conn, *, limit: int = 100, now: datetime | None = None) -> list[Fired]:
    """Fire every schedule due now (up to ``limit``) in one transaction; what each fire time
    did. Now is the database's time, or ``now`` when given (a virtual clock's). A schedule
    whose workflow cannot start (not deployed, a start-time expression fails) loses the fire
    times due, says why, and is due again at its next fire time."""
    out: list[Fired] = []
    with conn.transaction():
        if now is None:
            now = stored.now_txn(conn)
        for row in stored.claim_due_txn(conn, limit, now):
            due = due_fires(row.schedule, row.next_fire_at, now)
            try:
                with conn.transaction():
                    out.extend(_fire(conn, row, due))
            except DfcError as e:
                stored.advance_txn(conn, row.workflow, due.next_fire_at)
                out.extend(Fired(row.workflow, t, "failed", detail=e.message) for t in due.start)
    return out


def _fire(conn: Conn, row: ScheduleRow, due: Due) -> list[Fired]:
    wf, overlap = row.workflow, row.schedule.overlap
    out: list[Fired] = []
    if due.missed:
        out.append(
            Fired(
                wf,
                due.start[0] if due.start else due.next_fire_at,
                "missed",
                detail=f"{'more than ' if due.more else ''}{due.missed} earlier fire time"
                f"{'s' if due.missed != 1 or due.more else ''} dropped (catchup "
                f"{row.schedule.catchup})",
            )
        )
    waiting = stored.waiting_txn(conn, wf)
    busy = overlap != "allow" and stored.unfinished_txn(conn, wf)
    for t in [*waiting, *due.start]:
        if not busy:
            iid = instances.start(conn, wf)
            stored.record_fire_txn(conn, wf, t, iid)
            busy = overlap != "allow"
            out.append(Fired(wf, t, "started", iid))
        elif t in waiting:
            continue  # still behind the unfinished instance
        elif overlap == "queue" and len(waiting) < MAX_CATCHUP:
            stored.record_fire_txn(conn, wf, t, None)
            waiting.append(t)
            out.append(Fired(wf, t, "queued"))
        else:
            out.append(Fired(wf, t, "skipped", detail="an earlier instance is unfinished"))
    stored.advance_txn(conn, wf, due.next_fire_at)
    return out


class Scheduler:
    """A worker's scheduler (`dfc.runtime.worker.Scheduler`): `look` on a connection of its
    own, opened again after a failure; on a virtual clock, due means by its time."""

    def __init__(self, url: str, clock: Clock = SYSTEM) -> None:
        self.url = url
        self.clock = clock
        self._conn: Conn | None = None

    def look(self, log: StepLog) -> float | None:
        """Fire what is due (the module's `look`) and log what each fire time did; returns the
        seconds until the next fire time (None: no schedule is armed). Raises on a database
        failure."""
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.url)
        now = None if self.clock.real else self.clock.now()
        try:
            fired = look(self._conn, now=now)
            with self._conn.transaction():
                until_next = stored.seconds_to_next_txn(self._conn, now)
        except (psycopg.Error, OSError):
            self.close()
            raise
        for f in fired:
            _log(log, f)
        return until_next

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                self._conn.close()
            self._conn = None


def _log(log: StepLog, fired: Fired) -> None:
    at = fired.fire_at.isoformat()
    if fired.outcome == "failed":
        log.error(
            None,
            f"schedule of {fired.workflow} could not start the instance of {at}: {fired.detail}",
        )
    elif fired.instance_id is not None:
        log.info(
            f"schedule {fired.outcome}",
            workflow=fired.workflow,
            fire_at=at,
            instance=fired.instance_id,
        )
    else:
        log.info(
            f"schedule {fired.outcome}", workflow=fired.workflow, fire_at=at, detail=fired.detail
        )


# -- setting by command ---------------------------------------------------------------------


def set_schedule(conn: Conn, workflow: str, schedule: PlanSchedule) -> None:
    """Set or replace the schedule of deployed ``workflow`` (``dfc schedule NAME CRON``), in
    the caller's transaction; raises `DfcError` saying what to fix when the cron expression,
    the zone or the workflow does not fit."""
    fields = schedule.cron.split()
    try:
        if len(fields) != 5:
            raise CronSimError(f"it has {len(fields)} fields")
        CronSim(schedule.cron, datetime(2000, 1, 1))
    except CronSimError as e:
        raise DfcError(
            f"invalid cron expression {schedule.cron!r}: {e}",
            hint="5 fields: minute hour day-of-month month day-of-week, e.g. '0 3 * * *'",
        ) from None
    if not is_timezone(schedule.timezone):
        raise DfcError(
            f"unknown time zone {schedule.timezone!r}",
            hint="name a zone of the IANA database, such as UTC or Europe/Paris",
        )
    _, plan = load_plan_txn(conn, workflow)
    missing = [p.name for p in plan.params if not p.has_default]
    if missing:
        raise DfcError(
            f"workflow {workflow!r} has parameters without a default ({', '.join(missing)}), "
            "and a scheduled start gives no values",
            hint="give them defaults in the file and deploy it again",
        )
    stored.set_txn(conn, workflow, schedule)


def next_fire_of(row: ScheduleRow, now: datetime) -> datetime:
    """When ``row`` fires next: its next fire time, or for a schedule no worker has armed yet,
    the one the next look will arm."""
    return row.next_fire_at or _after(row.schedule, now)
