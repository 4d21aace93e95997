"""What a metrics scrape reads from the database: the queue and the instances by status, in one
statement (`dfc.runtime.metrics` turns it into Prometheus gauges)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

Conn = psycopg.Connection[Any]


@dataclass(frozen=True, slots=True)
class Gauges:
    """The database's side of a scrape.

    ``due``: queued instances whose time has come and that no worker holds (``run_at`` is moved
    a lease ahead when one is claimed); ``oldest_due_s``: how long the longest-waiting of them has
    waited (0 when none); ``instances``: how many instances have each status.
    """

    due: int
    oldest_due_s: float
    instances: dict[str, int]


_GAUGES = """
SELECT q.due, q.oldest, s.status, s.n
  FROM (SELECT count(*) AS due,
               coalesce(extract(epoch FROM now() - min(run_at)), 0)::float8 AS oldest
          FROM dfc.queue WHERE run_at <= now()) AS q
  LEFT JOIN (SELECT status, count(*) AS n FROM dfc.instances GROUP BY status) AS s ON true
"""


def gauges_txn(conn: Conn) -> Gauges:
    """Read `Gauges` (one statement: one snapshot of the queue and the instances)."""
    rows = conn.execute(_GAUGES).fetchall()
    due, oldest = (int(rows[0][0]), float(rows[0][1])) if rows else (0, 0.0)
    return Gauges(due, oldest, {str(r[2]): int(r[3]) for r in rows if r[2] is not None})
