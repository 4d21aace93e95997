"""The dashboard's own reads: the instance list, counts per status, health.

Instances are read through ``df._instances``, the security-barrier view every read of the SQL
surface goes through (docs/sql.md, "Roles and what each may do"): connected as an ordinary role,
the dashboard lists only that role's instances, as ``df.list_instances()`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

Conn = psycopg.Connection[Any]

STATUSES = ("pending", "running", "completed", "failed", "cancelled")

PAGE_SIZE = 50


@dataclass(frozen=True, slots=True)
class Filters:
    """What the instance list is narrowed to (None: any)."""

    workflow: str | None = None
    status: str | None = None
    label: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the instance list."""

    id: str
    workflow: str | None
    version: int | None
    label: str | None
    status: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or datetime.now(self.started_at.tzinfo)
        return (end - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "workflow": self.workflow,
            "version": self.version,
            "label": self.label,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "started_at": None if self.started_at is None else self.started_at.isoformat(),
            "finished_at": None if self.finished_at is None else self.finished_at.isoformat(),
            "duration_s": None if self.duration_s is None else round(self.duration_s, 3),
        }


# The label filter matches a part of the label (people remember "order-17", not the whole).
_WHERE = """
 WHERE (%(workflow)s::text IS NULL OR i.workflow = %(workflow)s)
   AND (%(label)s::text IS NULL OR strpos(i.label, %(label)s) > 0)
   AND (%(since)s::timestamptz IS NULL OR i.created_at >= %(since)s)
   AND (%(until)s::timestamptz IS NULL OR i.created_at < %(until)s)
"""

# Keyset pagination (newest first): a page after row (at, id) starts below it, so page 2,000 of
# 100,000 instances costs what page 1 does.
_PAGE = f"""
SELECT i.id, i.workflow, i.version, i.label, i.status, i.created_at, i.started_at, i.finished_at
  FROM df._instances i
{_WHERE}
   AND (%(status)s::text IS NULL OR i.status = %(status)s)
   AND (%(after_at)s::timestamptz IS NULL OR (i.created_at, i.id) < (%(after_at)s, %(after_id)s))
 ORDER BY i.created_at DESC, i.id DESC
 LIMIT %(limit)s
"""

_COUNTS = f"SELECT i.status, count(*) FROM df._instances i {_WHERE} GROUP BY i.status"


def _params(f: Filters) -> dict[str, Any]:
    return {"workflow": f.workflow, "label": f.label, "since": f.since, "until": f.until}


def instances_page(
    conn: Conn, f: Filters, after: tuple[datetime, str] | None = None, limit: int = PAGE_SIZE
) -> tuple[list[Row], tuple[datetime, str] | None]:
    """A page of instances, newest first, and the cursor of the next page (None: last page)."""
    params = _params(f) | {
        "status": f.status,
        "after_at": None if after is None else after[0],
        "after_id": None if after is None else after[1],
        "limit": limit + 1,
    }
    rows = [Row(*r) for r in conn.execute(_PAGE, params).fetchall()]
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], (last.created_at, last.id)


def status_counts(conn: Conn, f: Filters) -> dict[str, int]:
    """How many instances match the filters other than the status, per status (all five)."""
    found = {str(s): int(n) for s, n in conn.execute(_COUNTS, _params(f)).fetchall()}
    return {s: found.get(s, 0) for s in STATUSES}


_WORKFLOW_NAMES = """
SELECT DISTINCT workflow FROM df._instances WHERE workflow IS NOT NULL ORDER BY 1 LIMIT 1000
"""


def workflow_names(conn: Conn) -> list[str]:
    """The workflows the role has instances of (what the list can be filtered by)."""
    return [str(r[0]) for r in conn.execute(_WORKFLOW_NAMES).fetchall()]


_VISIBLE = "SELECT 1 FROM df._instances WHERE id = %s"


def visible(conn: Conn, instance_id: str) -> bool:
    """Whether the connection's role may see this instance (it exists and is its own, or the
    role sees all)."""
    return conn.execute(_VISIBLE, (instance_id,)).fetchone() is not None


# -- health -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Worker:
    """A registered worker, its last heartbeat and the instances it holds leases on."""

    id: str
    host: str | None
    pid: int | None
    started_at: datetime | None
    heartbeat_at: datetime | None
    heartbeat_age_s: float | None
    concurrency: int | None
    leases: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "started_at": None if self.started_at is None else self.started_at.isoformat(),
            "heartbeat_at": None if self.heartbeat_at is None else self.heartbeat_at.isoformat(),
            "heartbeat_age_s": self.heartbeat_age_s,
            "concurrency": self.concurrency,
            "leases": self.leases,
        }


@dataclass(frozen=True, slots=True)
class Health:
    """The queue and the workers at a glance."""

    queue_depth: int
    oldest_due: datetime | None
    oldest_due_age_s: float | None
    running: int
    timers: int
    signals: int
    failed_last_hour: int
    workers: list[Worker]

    def to_dict(self) -> dict[str, Any]:
        return {
            "queue_depth": self.queue_depth,
            "oldest_due": None if self.oldest_due is None else self.oldest_due.isoformat(),
            "oldest_due_age_s": self.oldest_due_age_s,
            "running": self.running,
            "waiting_for_timer": self.timers,
            "waiting_for_signal": self.signals,
            "failed_last_hour": self.failed_last_hour,
            "workers": [w.to_dict() for w in self.workers],
        }


# The queue's states as dfc.waits names them (migration 0002): a live lease is running; a row
# without run_at waits for a signal; one due now waits for a worker; a later one for its timer.
_QUEUE = """
SELECT count(*) FILTER (WHERE NOT leased AND run_at <= now()),
       min(run_at) FILTER (WHERE NOT leased AND run_at <= now()),
       round(extract(epoch FROM now() - min(run_at) FILTER (WHERE NOT leased AND run_at <= now()))::numeric, 1),
       count(*) FILTER (WHERE leased),
       count(*) FILTER (WHERE NOT leased AND run_at > now()),
       count(*) FILTER (WHERE NOT leased AND run_at IS NULL)
  FROM (SELECT q.run_at, q.lease_owner IS NOT NULL AND q.lease_expires > now() AS leased
          FROM dfc.queue q JOIN df._instances i ON i.id = q.instance_id) q
"""
_FAILED = """
SELECT count(*) FROM df._instances
 WHERE status = 'failed' AND finished_at > now() - interval '1 hour'
"""
_WORKERS = """
SELECT w.id, w.host, w.pid, w.started_at, w.heartbeat_at,
       round(extract(epoch FROM now() - w.heartbeat_at)::numeric, 1), w.concurrency,
       (SELECT count(*) FROM dfc.queue q WHERE q.lease_owner = w.id AND q.lease_expires > now())
  FROM dfc.workers w ORDER BY w.started_at, w.id
"""


def health(conn: Conn) -> Health:
    """The queue's depth and age, recent failures and the registered workers (one snapshot)."""
    with conn.transaction():
        if conn.autocommit:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        q = conn.execute(_QUEUE).fetchone()
        assert q is not None
        failed = conn.execute(_FAILED).fetchone()
        assert failed is not None
        workers = [
            Worker(
                r[0], r[1], r[2], r[3], r[4], None if r[5] is None else float(r[5]), r[6], int(r[7])
            )
            for r in conn.execute(_WORKERS).fetchall()
        ]
    return Health(
        queue_depth=int(q[0]),
        oldest_due=q[1],
        oldest_due_age_s=None if q[2] is None else float(q[2]),
        running=int(q[3]),
        timers=int(q[4]),
        signals=int(q[5]),
        failed_last_hour=int(failed[0]),
        workers=workers,
    )
