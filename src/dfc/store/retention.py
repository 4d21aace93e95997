"""Database-wide settings (``dfc.settings``) and the retention of finished instances (SPEC §6).

``retention_days`` (default 30, set by migration 0001; null keeps everything) says how long a
finished instance — completed, failed or cancelled — stays with its node states, signals and
history. `purge_finished` deletes what is older, in batches of short transactions so that it
never holds many locks at once; ``dfc worker`` calls it periodically.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[TupleRow]

RETENTION_DAYS = "retention_days"

_GET = "SELECT value FROM dfc.settings WHERE key = %s"


def get_setting_txn(conn: Conn, key: str, default: Any = None) -> Any:
    """The JSON value of setting ``key``, or ``default`` when it is not set."""
    row = conn.execute(_GET, (key,)).fetchone()
    return default if row is None else row[0]


def get_setting(conn: Conn, key: str, default: Any = None) -> Any:
    """`get_setting_txn` in a transaction of its own."""
    with conn.transaction():
        return get_setting_txn(conn, key, default)


_SET = """
INSERT INTO dfc.settings (key, value) VALUES (%s, %s)
ON CONFLICT (key) DO UPDATE SET value = excluded.value
"""


def set_setting_txn(conn: Conn, key: str, value: Any) -> None:
    """Set ``key`` to the JSON ``value`` (None stores JSON null)."""
    conn.execute(_SET, (key, Jsonb(value)))


def set_setting(conn: Conn, key: str, value: Any) -> None:
    """`set_setting_txn` in a transaction of its own."""
    with conn.transaction():
        set_setting_txn(conn, key, value)


# The instances to purge are picked and locked first (SKIP LOCKED: one being purged by another
# worker is left to it), then every per-instance table is cleared for exactly those ids.
_PURGE_BATCH = """
WITH doomed AS (
    SELECT id FROM dfc.instances
    WHERE finished_at < clock_timestamp() - %(days)s * interval '1 day'
      AND status IN ('completed', 'failed', 'cancelled')
    ORDER BY finished_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), h AS (
    DELETE FROM dfc.history WHERE instance_id IN (SELECT id FROM doomed)
), n AS (
    DELETE FROM dfc.node_state WHERE instance_id IN (SELECT id FROM doomed)
)
DELETE FROM dfc.instances WHERE id IN (SELECT id FROM doomed)
"""


def purge_finished(conn: Conn, *, days: float | None = None, batch: int = 1000) -> int:
    """Delete finished instances older than ``days`` (default: the ``retention_days`` setting).

    Signals and queue rows go with their instance (ON DELETE CASCADE). Returns the number of
    instances deleted; 0 when retention is disabled (the setting is null).
    """
    if days is None:
        value = get_setting(conn, RETENTION_DAYS, None)
        if value is None:
            return 0
        days = float(value)
    total = 0
    while True:
        with conn.transaction():
            cur = conn.execute(_PURGE_BATCH, {"days": days, "limit": batch})
            deleted = cur.rowcount
        total += deleted
        if deleted < batch:
            return total
