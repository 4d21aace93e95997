"""The schedules of workflows and the fire times they handled (SPEC §5.9, migration 0011).

A schedule comes from the ``schedule`` statement of the latest deployed version (origin
``file``, set by `follow_deploy_txn`) or from ``dfc schedule`` (origin ``command``, `set_txn`).
Setting or changing one leaves ``next_fire_at`` NULL: the scheduler's next look arms it from
then on. Functions named ``*_txn`` run inside the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import psycopg
from psycopg.rows import TupleRow

from dfc.plan.model import Plan, PlanSchedule

Conn = psycopg.Connection[TupleRow]
Origin = Literal["file", "command"]


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    """A row of ``dfc.schedules``."""

    workflow: str
    schedule: PlanSchedule
    origin: Origin
    version: int | None
    next_fire_at: datetime | None

    def to_dict(self) -> dict[str, object]:
        return {
            "workflow": self.workflow,
            **self.schedule.to_json(),
            "origin": self.origin,
            "version": self.version,
            "next_fire_at": None if self.next_fire_at is None else self.next_fire_at.isoformat(),
        }


_COLUMNS = "workflow, cron, timezone, overlap, catchup, origin, version, next_fire_at"


def _row(r: tuple[object, ...]) -> ScheduleRow:
    workflow, cron, zone, overlap, catchup, origin, version, next_fire_at = r
    return ScheduleRow(
        workflow=str(workflow),
        schedule=PlanSchedule.from_json(
            {"cron": cron, "timezone": zone, "overlap": overlap, "catchup": catchup}
        ),
        origin=origin,  # type: ignore[arg-type]
        version=version,  # type: ignore[arg-type]
        next_fire_at=next_fire_at,  # type: ignore[arg-type]
    )


# -- setting --------------------------------------------------------------------------------

# A changed cron or zone counts again from the next look; the same times keep their next fire
# (deploying a new version of the body neither skips nor repeats one).
_UPSERT = """
INSERT INTO dfc.schedules (workflow, cron, timezone, overlap, catchup, origin, version)
VALUES (%(workflow)s, %(cron)s, %(timezone)s, %(overlap)s, %(catchup)s, %(origin)s, %(version)s)
ON CONFLICT (workflow) DO UPDATE SET
    cron = EXCLUDED.cron, timezone = EXCLUDED.timezone, overlap = EXCLUDED.overlap,
    catchup = EXCLUDED.catchup, origin = EXCLUDED.origin, version = EXCLUDED.version,
    next_fire_at = CASE WHEN (dfc.schedules.cron, dfc.schedules.timezone)
                             = (EXCLUDED.cron, EXCLUDED.timezone)
                        THEN dfc.schedules.next_fire_at END,
    updated_at = now()
"""
_DROP = "DELETE FROM dfc.schedules WHERE workflow = %s AND origin = ANY(%s)"
# Fires waiting for a schedule that is gone wait for nothing.
_DROP_WAITING = "DELETE FROM dfc.schedule_fires WHERE workflow = %s AND instance_id IS NULL"


def _drop(conn: Conn, workflow: str, origins: tuple[Origin, ...]) -> bool:
    if conn.execute(_DROP, (workflow, list(origins))).rowcount == 0:
        return False
    conn.execute(_DROP_WAITING, (workflow,))
    return True


def _upsert(
    conn: Conn, workflow: str, schedule: PlanSchedule, origin: Origin, version: int | None
) -> None:
    conn.execute(
        _UPSERT, {"workflow": workflow, **schedule.to_json(), "origin": origin, "version": version}
    )


def follow_deploy_txn(conn: Conn, plan: Plan, version: int) -> None:
    """Make the schedule of ``plan``, deployed as ``version`` (the latest), the one in force;
    a plan without one removes the schedule its file set (not one set by ``dfc schedule``)."""
    if plan.schedule is None:
        _drop(conn, plan.name, ("file",))
    else:
        _upsert(conn, plan.name, plan.schedule, "file", version)


def set_txn(conn: Conn, workflow: str, schedule: PlanSchedule) -> None:
    """Set or replace the schedule of ``workflow`` (``dfc schedule NAME CRON``)."""
    _upsert(conn, workflow, schedule, "command", None)


def remove_txn(conn: Conn, workflow: str) -> bool:
    """Remove the schedule of ``workflow``; False when it had none."""
    return _drop(conn, workflow, ("file", "command"))


_LIST = f"SELECT {_COLUMNS} FROM dfc.schedules ORDER BY workflow"


def list_txn(conn: Conn) -> list[ScheduleRow]:
    """Every schedule, by workflow name."""
    return [_row(r) for r in conn.execute(_LIST).fetchall()]


# -- firing ---------------------------------------------------------------------------------

_NOW = "SELECT now()"
# Rows another worker holds are skipped: it is firing them, and each row is one transaction's.
_DUE = f"""
SELECT {_COLUMNS} FROM dfc.schedules s
WHERE next_fire_at IS NULL OR next_fire_at <= %(now)s
   OR EXISTS (SELECT 1 FROM dfc.schedule_fires f
              WHERE f.workflow = s.workflow AND f.instance_id IS NULL)
ORDER BY next_fire_at NULLS FIRST
LIMIT %(limit)s
FOR UPDATE OF s SKIP LOCKED
"""


def now_txn(conn: Conn) -> datetime:
    """The database's time of the current transaction (every worker's common clock)."""
    row = conn.execute(_NOW).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def claim_due_txn(conn: Conn, limit: int, now: datetime) -> list[ScheduleRow]:
    """Lock the schedules due at ``now`` (to arm, to fire or with fires waiting), up to
    ``limit``."""
    return [_row(r) for r in conn.execute(_DUE, {"now": now, "limit": limit}).fetchall()]


_UNTIL_NEXT = """
SELECT extract(epoch FROM min(next_fire_at) - coalesce(%s::timestamptz, now()))::float8
  FROM dfc.schedules
"""


def seconds_to_next_txn(conn: Conn, now: datetime | None = None) -> float | None:
    """Seconds from ``now`` (default: the database's) until the earliest next fire time of any
    schedule (negative: one is due; None: no schedule is armed)."""
    row = conn.execute(_UNTIL_NEXT, (now,)).fetchone()
    return None if row is None or row[0] is None else float(row[0])


_ADVANCE = "UPDATE dfc.schedules SET next_fire_at = %s, updated_at = now() WHERE workflow = %s"


def advance_txn(conn: Conn, workflow: str, next_fire_at: datetime) -> None:
    """Record that the fire times before ``next_fire_at`` are handled."""
    conn.execute(_ADVANCE, (next_fire_at, workflow))


_RECORD = """
INSERT INTO dfc.schedule_fires (workflow, fire_at, instance_id) VALUES (%s, %s, %s)
ON CONFLICT (workflow, fire_at) DO UPDATE SET instance_id = EXCLUDED.instance_id
WHERE dfc.schedule_fires.instance_id IS NULL
"""


_SCHEDULED = """
INSERT INTO dfc.history (instance_id, event, detail)
VALUES (%s, 'scheduled', jsonb_build_object('fire_at', %s::timestamptz))
"""


def record_fire_txn(conn: Conn, workflow: str, fire_at: datetime, instance_id: str | None) -> None:
    """Record what fire time ``fire_at`` did: started ``instance_id`` (which says so in its
    history), or (None) waits. A waiting fire may later get its instance; one that started an
    instance never another."""
    cur = conn.execute(_RECORD, (workflow, fire_at, instance_id))
    if cur.rowcount != 1:
        raise AssertionError(f"fire time {fire_at} of {workflow} already started an instance")
    if instance_id is not None:
        conn.execute(_SCHEDULED, (instance_id, fire_at))


_UNFINISHED = """
SELECT EXISTS (
    SELECT 1 FROM dfc.schedule_fires f JOIN dfc.instances i ON i.id = f.instance_id
    WHERE f.workflow = %s AND i.status IN ('pending', 'running')
)
"""


def unfinished_txn(conn: Conn, workflow: str) -> bool:
    """Whether an instance a fire of ``workflow``'s schedule started has not finished."""
    row = conn.execute(_UNFINISHED, (workflow,)).fetchone()
    return bool(row and row[0])


_WAITING = """
SELECT fire_at FROM dfc.schedule_fires WHERE workflow = %s AND instance_id IS NULL
ORDER BY fire_at
"""


def waiting_txn(conn: Conn, workflow: str) -> list[datetime]:
    """The fire times of ``workflow`` waiting behind an unfinished instance, oldest first."""
    return [r[0] for r in conn.execute(_WAITING, (workflow,)).fetchall()]


_FIRES = """
SELECT fire_at, instance_id FROM dfc.schedule_fires WHERE workflow = %s ORDER BY fire_at
"""


def fires_txn(conn: Conn, workflow: str) -> list[tuple[datetime, str | None]]:
    """Every fire time of ``workflow`` still recorded, oldest first, with its instance."""
    return [(r[0], r[1]) for r in conn.execute(_FIRES, (workflow,)).fetchall()]
