"""Child workflows: performing a `StartChild` (``df.call``, ``df.spawn``) and cancelling the
children of steps a parent no longer waits for (docs/runtime.md, "Child workflows").

Starting a child and recording the step commit together: the callee's plan is looked up (the
latest version unless the step pins one), the parameters checked against its ``param``
declarations as any start checks them, the child started through ``dfc.start_instance`` with an
idempotency key made of the parent's id and the step's key, linked to its parent, and the
step's record written, in one transaction. A crash before the commit starts nothing (the step
runs again); after it, the record says which child the step started. The idempotency key makes
a step that runs again anyway (``dfc retry`` of the parent) find the child it started rather
than start another, and take its outcome if it has ended.

A call's record is ``waiting`` with ``detail.child``; the child's end reaches the parent as a
signal (migration 0013) that the state machine turns into the step's result or failure. A
spawn's record is ``completed`` at once, with ``{"id": child}``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

import psycopg

from dfc.diagnostics import DfcError
from dfc.json_types import JSON
from dfc.runtime import codes, faults
from dfc.runtime.arguments import max_concurrent, validate_vars
from dfc.runtime.errors import node_error
from dfc.runtime.machine import child_ended
from dfc.runtime.state import NodeRecord, StartChild, child_signal
from dfc.runtime.steps import Lease, Written, checkpoint, classify, rollback, with_seq
from dfc.store import children, node_state
from dfc.store.inline import AConn
from dfc.store.registry import find_plan

_ENDED = ("completed", "failed", "cancelled")


async def start(conn: AConn, lease: Lease, action: StartChild) -> Written:
    """Start the child of ``action`` and record the step, in one transaction (see the module
    docstring); a child that cannot be started fails the step instead, starting nothing."""
    started = time.perf_counter()
    try:
        async with conn.transaction():
            rec = await _start(conn, lease, action)
            faults.fault("after_child_start")
            history = {"child": rec.detail["child"]} if "child" in rec.detail else None
            (row,) = await node_state.run_checkpoints(conn, [checkpoint(lease, rec, history)])
    except psycopg.Error as e:
        await rollback(conn)
        raise classify(e) or e from e
    seq, pokes = row
    return Written(with_seq(rec, seq), pokes, (time.perf_counter() - started) * 1000)


async def _start(conn: AConn, lease: Lease, action: StartChild) -> NodeRecord:
    what = f"cannot start workflow {action.workflow}"
    try:
        found = await find_plan(conn, action.workflow, action.version)
        if found is None:
            missing = (
                f"no workflow named {action.workflow!r} is deployed"
                if action.version is None
                else f"workflow {action.workflow!r} has no version {action.version}"
            )
            return _failed(lease, action, f"{what}: {missing}")
        version, plan = found
        if plan.expressions:
            return _failed(
                lease,
                action,
                f"{what}: it computes start-time SQL expressions, which a df.call cannot "
                "evaluate; start it with dfc start",
            )
        values = validate_vars(plan, action.vars)
    except DfcError as e:
        return _failed(lease, action, f"{what}: {e.message}")
    label = plan.options.get("label")
    child, existing = await children.start_txn(
        conn,
        action.workflow,
        version,
        label if isinstance(label, str) else None,
        values,
        # A parent whose steps run as the role that started it gives its children that role.
        created_by=lease.run_as.name if lease.run_as is not None else None,
        idempotency_key=action.idempotency_key,
        max_concurrent=max_concurrent(plan),
    )
    detail: dict[str, JSON] = {"child": child, "workflow": action.workflow, "version": version}
    if not existing:
        signal = child_signal(action.key) if action.wait else None
        await children.link_txn(conn, child, lease.instance_id, action.key, signal)
    if not action.wait:
        return NodeRecord(
            key=action.key,
            node_id=action.node_id,
            status="completed",
            result={"id": child},
            detail=detail,
        )
    ended = await children.outcome_txn(conn, child) if existing else None
    if ended is not None and ended["status"] in _ENDED:
        # A step run again (dfc retry) whose child has ended: its signal was consumed then.
        outcome = {**ended, "child": child}
        return child_ended(lease.plan, action.key, action.node_id, action.workflow, outcome, detail)
    return NodeRecord(key=action.key, node_id=action.node_id, status="waiting", detail=detail)


def _failed(lease: Lease, action: StartChild, message: str) -> NodeRecord:
    error = node_error(
        lease.plan, action.key, action.node_id, message, code=codes.CHILD_NOT_STARTED
    )
    return NodeRecord(key=action.key, node_id=action.node_id, status="failed", error=error)


def waited_children(records: Mapping[str, NodeRecord], keys: Iterable[str]) -> list[str]:
    """The children that the call steps at ``keys`` wait for (their records say so)."""
    out: list[str] = []
    for key in keys:
        rec = records.get(key)
        child = rec.detail.get("child") if rec is not None else None
        if rec is not None and rec.status == "waiting" and isinstance(child, str):
            out.append(child)
    return out


async def cancel(conn: AConn, instance_id: str, child_ids: list[str]) -> None:
    """Cancel children whose call steps were cancelled (a race lost, a timeout expired)."""
    await children.cancel(
        conn, child_ids, f"the step of {instance_id} that called it was cancelled"
    )
