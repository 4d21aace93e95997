"""Instances (``dfc.instances``) and their event log (the view ``dfc.events``: ``dfc.history``
plus the events of final node records, migration 0006) (SPEC §5.1, §6).

The lifecycle changes are SQL functions of migration 0002 (``dfc.start_instance``,
``dfc.signal_instance``, ``dfc.cancel_instance``, ``dfc.finish_instance``), shared with the SQL
surface; each notifies the workers. Functions named ``*_txn`` run in the caller's transaction;
the asynchronous ones are the worker's, on its own connections. Checking what callers pass
(instance ids, variables) is the runtime's business (`dfc.runtime.instances`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from dfc.store.inline import AConn, execute, literal

Conn = psycopg.Connection[Any]


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    """An instance as stored, plus what it waits for when unfinished.

    ``workflow`` and ``version`` are None for an instance started from SQL whose ``graph`` was
    not compiled yet (or could not be: it then failed with the reasons).
    """

    id: str
    workflow: str | None
    version: int | None
    label: str | None
    status: str
    vars: Mapping[str, Any]
    result: Any
    error: Any
    compensated: bool
    cancel_reason: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    waiting_for: str | None = None
    created_by: str | None = None
    graph: str | None = None
    options: Mapping[str, Any] | None = None
    idempotency_key: str | None = None
    concurrency_key: str | None = None
    parent_id: str | None = None  # the instance whose df.call or df.spawn started this one
    parent_key: str | None = None  # ... and the node key of that step

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or datetime.now(self.started_at.tzinfo)
        return (end - self.started_at).total_seconds()

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "workflow": self.workflow,
            "version": self.version,
            "label": self.label,
            "status": self.status,
            "vars": dict(self.vars),
            "result": self.result,
            "error": self.error,
            "compensated": self.compensated,
            "cancel_reason": self.cancel_reason,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "duration_s": None if self.duration_s is None else round(self.duration_s, 3),
            "waiting_for": self.waiting_for,
            "created_by": self.created_by,
            "idempotency_key": self.idempotency_key,
            "concurrency_key": self.concurrency_key,
            "parent_id": self.parent_id,
        }


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """One row of an instance's event log."""

    seq: int
    at: datetime
    event: str
    node_id: str | None
    key: str | None
    detail: Any

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "event": self.event,
            "node": self.node_id,
            "key": self.key,
            "detail": self.detail,
        }


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.isoformat()


# -- lifecycle ----------------------------------------------------------------------------------

_START = "SELECT dfc.start_instance(%s, %s, %s, %s, NULL)"


def start_txn(
    conn: Conn, workflow: str, version: int, label: str | None, vars: Mapping[str, str]
) -> str:
    """Create a pending instance of ``workflow`` at ``version`` and queue it; returns its id.
    ``vars`` must already be checked against the plan's params."""
    row = conn.execute(_START, (workflow, version, label, Jsonb(dict(vars)))).fetchone()
    assert row is not None
    return str(row[0])


_START_KEYED = "SELECT * FROM dfc.start_instance(%s, %s, %s, %s, NULL, NULL, NULL, %s, %s, %s, %s)"


def start_keyed_txn(
    conn: Conn,
    workflow: str,
    version: int,
    label: str | None,
    vars: Mapping[str, str],
    *,
    idempotency_key: str | None,
    concurrency_key: str | None,
    max_concurrent: int | None,
) -> tuple[str, bool]:
    """`start_txn` with migration 0009's keys and limits; returns the id and False. With an
    idempotency key that an instance of ``workflow`` already has (committed by now: a
    concurrent start with it is waited for), writes nothing and returns that instance's id and
    True. ``concurrency_key`` and ``max_concurrent`` put the instance under flow control: it
    is due when its slots are free."""
    params = (workflow, version, label, Jsonb(dict(vars)), idempotency_key, workflow)
    row = conn.execute(_START_KEYED, (*params, concurrency_key, max_concurrent)).fetchone()
    assert row is not None
    return str(row[0]), bool(row[1])


# The newline ends a `--` comment the expression may end with.
_EVALUATE = "SELECT ({}\n)::text"


def evaluate_txn(conn: Conn, expression: str) -> str | None:
    """The text value of a SQL expression (a plan's start-time expression), evaluated in the
    caller's transaction, as its role; the server's errors pass through as psycopg's."""
    row = conn.execute(_EVALUATE.format(expression)).fetchone()  # the user's own SQL, as written
    assert row is not None
    return None if row[0] is None else str(row[0])


_SIGNAL = "SELECT dfc.signal_instance(%s, %s, %s)"


def signal_txn(conn: Conn, instance_id: str, name: str, payload: str | None) -> str | None:
    """Buffer signal ``name`` for the instance and wake it. Returns the instance's status before
    the call (only pending or running means the signal was stored), None for no instance."""
    row = conn.execute(_SIGNAL, (instance_id, name, payload)).fetchone()
    return row[0] if row else None


_CANCEL = "SELECT dfc.cancel_instance(%s, %s)"


def cancel_txn(conn: Conn, instance_id: str, reason: str | None) -> str | None:
    """Cancel the instance if unfinished. Returns its status before the call (only pending or
    running means it was cancelled now), None for no instance."""
    row = conn.execute(_CANCEL, (instance_id, reason)).fetchone()
    return row[0] if row else None


_FINISH = "SELECT dfc.finish_instance({}, {}, {}, {}, {}, {})"


def finish_sql(
    instance_id: str, owner: str, status: str, result: Any, error: Any, compensated: bool
) -> str:
    """The statement that ends an instance held by ``owner`` with its outcome (raises DF001,
    like a checkpoint, when the lease is gone). A completed instance's missing result is JSON
    null."""
    stored = "'null'::json" if result is None and status == "completed" else None
    return _FINISH.format(
        literal(instance_id),
        literal(owner),
        literal(status),
        stored or literal(result, as_json="json"),
        literal(error, as_json="jsonb"),
        literal(compensated),
    )


async def finish(
    conn: AConn,
    instance_id: str,
    owner: str,
    status: str,
    result: Any,
    error: Any,
    compensated: bool,
) -> None:
    """Run `finish_sql` (its own transaction on an autocommit connection)."""
    await execute(conn, finish_sql(instance_id, owner, status, result, error, compensated))


_FAIL = "SELECT dfc.finish_instance(%s, %s, 'failed', NULL, %s, false)"


async def fail(conn: AConn, instance_id: str, owner: str, error: Mapping[str, Any]) -> None:
    """End an instance held by ``owner`` as failed before it ran (its plan cannot be read)."""
    await conn.execute(_FAIL, (instance_id, owner, Jsonb(dict(error))))


_PIN = """
WITH i AS (
    UPDATE dfc.instances SET workflow = {workflow}, version = {version}, updated_at = now()
     WHERE id = {id} AND workflow IS NULL
 RETURNING id
)
INSERT INTO dfc.history (instance_id, event, detail)
SELECT id, 'compiled', jsonb_build_object('workflow', {workflow}, 'version', {version}) FROM i
"""


async def pin(conn: AConn, instance_id: str, workflow: str, version: int) -> None:
    """Give an instance started from SQL the workflow version its graph was deployed as (the
    FK to ``dfc.workflows`` refuses a version that does not exist)."""
    await execute(
        conn,
        _PIN.format(id=literal(instance_id), workflow=literal(workflow), version=literal(version)),
    )


_UNFINISHED = (
    "SELECT count(*) FROM dfc.instances WHERE id = ANY(%s) AND status IN ('pending', 'running')"
)


async def unfinished(conn: AConn, instance_ids: Collection[str]) -> int:
    """How many of these instances are pending or running."""
    row = await (await conn.execute(_UNFINISHED, (list(instance_ids),))).fetchone()
    return 0 if row is None else int(row[0])


# -- reading ------------------------------------------------------------------------------------

_COLUMNS = """
i.id, i.workflow, i.version, i.label, i.status, i.vars, i.result, i.error, i.compensated,
i.cancel_reason, i.created_at, i.started_at, i.finished_at, w.waiting_for, i.created_by, i.graph,
i.options, i.idempotency_key, i.concurrency_key, i.parent_id, i.parent_key
"""
_INFO = f"SELECT {_COLUMNS} FROM dfc.instances i LEFT JOIN dfc.waits w ON w.instance_id = i.id WHERE i.id = %s"


def info_txn(conn: Conn, instance_id: str) -> InstanceInfo | None:
    """The instance's row, or None when there is no such instance."""
    row = conn.execute(_INFO, (instance_id,)).fetchone()
    return None if row is None else InstanceInfo(*row)


_KEYED = f"""
SELECT {_COLUMNS} FROM dfc.instances i LEFT JOIN dfc.waits w ON w.instance_id = i.id
 WHERE i.idempotency_scope = %s AND i.idempotency_key = %s
"""


def keyed_txn(conn: Conn, workflow: str, idempotency_key: str) -> InstanceInfo | None:
    """The instance of ``workflow`` started with this idempotency key, if any."""
    row = conn.execute(_KEYED, (workflow, idempotency_key)).fetchone()
    return None if row is None else InstanceInfo(*row)


_LIST = f"""
SELECT {_COLUMNS} FROM dfc.instances i LEFT JOIN dfc.waits w ON w.instance_id = i.id
 WHERE (%(status)s::text IS NULL OR i.status = %(status)s)
   AND (%(workflow)s::text IS NULL OR i.workflow = %(workflow)s)
 ORDER BY i.created_at DESC, i.id
 LIMIT %(limit)s
"""


def list_txn(
    conn: Conn, *, status: str | None = None, workflow: str | None = None, limit: int = 50
) -> list[InstanceInfo]:
    """The most recently created instances (of this status, of this workflow), newest first."""
    rows = conn.execute(_LIST, {"status": status, "workflow": workflow, "limit": limit}).fetchall()
    return [InstanceInfo(*r) for r in rows]


# Events in the order they happened; seq numbers them (dfc.events draws from two sequences).
_HISTORY = """
SELECT row_number() OVER (ORDER BY at, seq), at, event, node_id, key, detail
  FROM dfc.events WHERE instance_id = %s ORDER BY at, seq
"""


def history_txn(conn: Conn, instance_id: str) -> list[HistoryEvent]:
    """The instance's events in order (empty for an unknown instance: see `exists_txn`)."""
    return [HistoryEvent(*r) for r in conn.execute(_HISTORY, (instance_id,)).fetchall()]


_EXISTS = "SELECT 1 FROM dfc.instances WHERE id = %s"


def exists_txn(conn: Conn, instance_id: str) -> bool:
    """Whether the instance exists."""
    return conn.execute(_EXISTS, (instance_id,)).fetchone() is not None


FINISHED_CHANNEL = "dfc_done"
"""Where ``dfc.finish_instance`` and ``dfc.cancel_instance`` announce an instance that ended
(the payload is its id)."""


def listen_finished(conn: Conn) -> None:
    """Subscribe ``conn`` to `FINISHED_CHANNEL` (at commit, on a connection in a transaction)."""
    conn.execute(f"LISTEN {FINISHED_CHANNEL}")


def unlisten_finished(conn: Conn) -> None:
    """Undo `listen_finished`."""
    conn.execute(f"UNLISTEN {FINISHED_CHANNEL}")
