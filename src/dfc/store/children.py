"""Child workflows in the store (migration 0013): the parent link of an instance started by a
``df.call`` or ``df.spawn`` step, and what the parent's worker and the CLI read of it.

A child's end reaches its parent as a signal sent by the trigger of migration 0013; cancelling
a parent's df.call children happens there too. What is here: starting a child (the keyed form
of ``dfc.start_instance``, then the link, in the worker's transaction), reading a child's
outcome, cancelling the children of steps the parent stopped waiting for, and listing an
instance's children.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from dfc.store.inline import AConn

Conn = psycopg.Connection[Any]


# dfc.start_instance's keyed form (0009), as `dfc.store.instances.start_keyed_txn` calls it,
# with the creator given: a child's steps run as its parent's do.
_START = "SELECT * FROM dfc.start_instance(%s, %s, %s, %s, %s, NULL, NULL, %s, %s, NULL, %s)"


async def start_txn(
    conn: AConn,
    workflow: str,
    version: int,
    label: str | None,
    vars: Mapping[str, str],
    *,
    created_by: str | None,
    idempotency_key: str,
    max_concurrent: int | None,
) -> tuple[str, bool]:
    """Start a child on a worker's connection, in its transaction, for ``created_by`` (None:
    the worker's role): its id, and whether an instance with this key already existed (then
    nothing was started)."""
    params = (workflow, version, label, Jsonb(dict(vars)), created_by, idempotency_key, workflow)
    cur = await conn.execute(_START, (*params, max_concurrent))
    row = await cur.fetchone()
    assert row is not None
    return str(row[0]), bool(row[1])


_LINK = """
UPDATE dfc.instances SET parent_id = %s, parent_key = %s, parent_signal = %s WHERE id = %s
"""
# A child its parent waits for belongs to the worker that owns the parent (`dfc run`), which
# claims it as it claims the parent; the others (and every child of an unowned parent) are
# anyone's.
_OWN = """
UPDATE dfc.queue SET owned_by = p.owned_by
  FROM dfc.queue p
 WHERE dfc.queue.instance_id = %s AND p.instance_id = %s AND p.owned_by IS NOT NULL
"""


async def link_txn(conn: AConn, child: str, parent: str, key: str, signal: str | None) -> None:
    """Record that step ``key`` of ``parent`` started ``child``; ``signal`` (df.call) is the
    signal the child's end sends the parent, None for a child nobody waits for (df.spawn)."""
    await conn.execute(_LINK, (parent, key, signal, child))
    if signal is not None:
        await conn.execute(_OWN, (child, parent))


_OUTCOME = "SELECT status, result, error, cancel_reason FROM dfc.instances WHERE id = %s"


async def outcome_txn(conn: AConn, child: str) -> dict[str, Any] | None:
    """The child's status and, once it ended, its result, error and cancel reason: the payload
    the trigger of migration 0013 sends the parent (without the id)."""
    cur = await conn.execute(_OUTCOME, (child,))
    row = await cur.fetchone()
    if row is None:
        return None
    status, result, error, reason = row
    return {"status": status, "result": result, "error": error, "reason": reason}


_CANCEL = """
SELECT dfc.cancel_instance(c, %s) FROM unnest(%s::text[]) AS c
"""


async def cancel(conn: AConn, children: Collection[str], reason: str) -> None:
    """Cancel these children (finished ones are left as they are), each with its own df.call
    children."""
    await conn.execute(_CANCEL, (reason, list(children)))


@dataclass(frozen=True, slots=True)
class Child:
    """An instance started by a step of another: its id, the step's key, its workflow, whether
    its parent waits for it (df.call) and its status."""

    id: str
    key: str
    workflow: str | None
    waited: bool
    status: str


_CHILDREN = """
SELECT id, parent_key, workflow, parent_signal IS NOT NULL, status FROM dfc.instances
 WHERE parent_id = %s ORDER BY created_at, id
"""


def children_txn(conn: Conn, parent: str) -> list[Child]:
    """The children of ``parent``, oldest first."""
    return [Child(*row) for row in conn.execute(_CHILDREN, (parent,)).fetchall()]
