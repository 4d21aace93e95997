"""Retry, fork and upgrade: going on from recorded progress (SPEC §5.9, docs/runtime.md).

An instance's state is its node records (`dfc.runtime.state`); the state machine replays them
and runs whatever they do not settle. So going on from a point is a matter of records:

* **retry** forgets what the failure produced — its failed records, the composite records it
  decided (a join's failure, a race its failing branch won, a timeout's deadline, a retry's
  counter around it) and the waits it cut off — and queues the instance again: the completed
  steps stay completed and never run again, the failed step runs again.
* **fork** starts a new instance with copies of the source's completed records written before
  a step: the new instance runs that step and everything after it.
* **upgrade** pins an unfinished instance that no worker holds to another version of its
  workflow when its records keep their meaning there (`dfc.plan.compat`).

The decisions are pure functions of the plan and the records (`forgotten`, `fork_prefix`); the
functions taking a connection check what callers ask, decide, and call `dfc.store.rewind` in
the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from dfc.diagnostics import DfcError
from dfc.plan import compat
from dfc.plan.model import Plan
from dfc.runtime.engine import record_from_row
from dfc.runtime.instances import _check_id as check_id
from dfc.runtime.instances import _unknown as unknown
from dfc.runtime.instances import max_concurrent
from dfc.runtime.keys import node_id
from dfc.runtime.state import NodeRecord
from dfc.store import instances as stored
from dfc.store import rewind as store
from dfc.store.instances import InstanceInfo
from dfc.store.node_state import records_txn
from dfc.store.registry import load_plan_txn

Conn = psycopg.Connection[Any]

_FAILURE = frozenset({"failed", "cancelled", "skipped"})
_OPEN = frozenset({"running", "waiting", "decided"})
_UNDO = "~/"  # in the key of every record of a compensation (dfc.runtime.keys)


# -- what the records say (pure) ---------------------------------------------------------------


class _Tree:
    """Which plan nodes lie under which (children only: undo subtrees are not part of a step)."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self._below: dict[str, frozenset[str]] = {}

    def below(self, nid: str) -> frozenset[str]:
        """``nid`` and every node of its subtree."""
        found = self._below.get(nid)
        if found is None:
            out: set[str] = set()
            stack = [nid]
            while stack:
                n = stack.pop()
                out.add(n)
                node = self.plan.nodes.get(n)
                if node is not None:
                    stack.extend(node.children)
            found = self._below[nid] = frozenset(out)
        return found

    def under(self, inner: str, outer: str) -> bool:
        """Whether the record at key ``inner`` belongs to the run of the node whose record is
        at key ``outer``: it has the outer key's loop and attempt prefix (so the same
        iteration, or one nested in it) and its node is in the outer node's subtree."""
        if inner == outer:
            return False
        outer_node = node_id(outer)
        prefix = outer[: len(outer) - len(outer_node)]
        return inner.startswith(prefix) and node_id(inner) in self.below(outer_node)


def forgotten(plan: Plan, records: Mapping[str, NodeRecord]) -> list[str]:
    """The keys a retry forgets, in the order they were recorded (see the module docstring).

    A failed record counts unless a completed record encloses it (an attempt a retry got past).
    Around and under what the failure touched, the records that are not final (a join or race
    decided by it, a timeout's deadline, a retry's counter, waits it cut off) go with it, so the
    step runs again with fresh deadlines, attempts and waits.
    """
    tree = _Tree(plan)
    done = [
        k
        for k, r in records.items()
        if r.status == "completed" and (n := plan.nodes.get(r.node_id)) and n.children
    ]
    forget = {
        k
        for k, r in records.items()
        if r.status in _FAILURE and not any(tree.under(k, c) for c in done)
    }
    candidates = [k for k, r in records.items() if r.status in _OPEN]
    frontier = list(forget)
    while frontier:
        f = frontier.pop()
        for k in candidates:
            if k not in forget and (tree.under(k, f) or tree.under(f, k)):
                forget.add(k)
                frontier.append(k)
    return sorted(forget, key=lambda k: records[k].seq)


def fork_prefix(plan: Plan, records: Mapping[str, NodeRecord], step: str) -> list[str]:
    """The keys of the records a fork from ``step`` reuses, in the order they were recorded.

    ``step`` is a node id (``n7``) or a record key (``n2#3/n7``, one iteration of a loop), as
    `dfc history` shows them. The fork reuses the completed records written before the first
    record of that step's run (its own or one of a node under it), compensations excepted.
    Raises `DfcError` when the plan has no such step or the instance never reached it.
    """
    tree = _Tree(plan)
    if step in records:
        at = [step, *(k for k in records if tree.under(k, step))]
    elif step in plan.nodes:
        below = tree.below(step)
        at = [k for k, r in records.items() if r.node_id in below]
    else:
        raise DfcError(
            f"the workflow has no step {step}",
            hint="name a step as `dfc history ID` shows it: a node id such as n7, or a key "
            "such as n2#3/n7",
        )
    if not at:
        raise DfcError(
            f"step {step} never ran in this instance, so there is nothing before it to reuse",
            hint="fork from a step that `dfc history ID` lists",
        )
    # Every record of the step's own run is in `at`, so none of them comes before the cut;
    # those of the step in earlier loop iterations do, and are reused.
    cut = min(records[k].seq for k in at)
    keep = [
        k for k, r in records.items() if r.status == "completed" and r.seq < cut and _UNDO not in k
    ]
    return sorted(keep, key=lambda k: records[k].seq)


# -- retry --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Retried:
    """What `retry` did: the step the instance fails at, where it is, and what it forgot."""

    instance_id: str
    node: str | None
    key: str | None
    at: str | None
    forgotten: tuple[str, ...]
    kept: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.instance_id,
            "step": self.node,
            "key": self.key,
            "at": self.at,
            "forgotten": list(self.forgotten),
            "kept": self.kept,
        }


def retry(conn: Conn, instance_id: str) -> Retried:
    """Make a failed instance run again from the step that failed, keeping every completed
    step's result; raises `DfcError` (changing nothing) when it cannot be retried."""
    check_id(instance_id)
    if not store.lock_txn(conn, instance_id):
        raise unknown(instance_id)
    info = stored.info_txn(conn, instance_id)
    assert info is not None
    if info.status != "failed":
        raise DfcError(
            f"instance {instance_id} is {info.status}; only a failed instance can be retried",
            hint=f"to run steps of it again, start a new instance from one: dfc fork "
            f"{instance_id} --from STEP",
        )
    records = _records(conn, instance_id)
    error = info.error if isinstance(info.error, Mapping) else {}
    if info.compensated or "compensated" in error or any(_UNDO in k for k in records):
        raise DfcError(
            f"instance {instance_id} was compensated: its completed steps were undone, so it "
            "cannot resume after them",
            hint=f"start it again from its first step with a fork: dfc fork {instance_id} "
            "--from STEP (`dfc history` names the steps)",
        )
    if info.workflow is None or info.version is None:
        raise DfcError(
            f"instance {instance_id} was started from SQL and its graph does not compile; "
            "nothing of it ran",
            hint="start the corrected graph as a new instance",
        )
    _, plan = load_plan_txn(conn, info.workflow, info.version)
    forget = forgotten(plan, records)
    node, key = error.get("node"), error.get("key")
    at = error.get("at")
    lost = [
        {
            "key": k,
            "node": records[k].node_id,
            "status": records[k].status,
            **({"message": m} if (m := _message(records[k].error)) else {}),
        }
        for k in forget
    ]
    store.retry_txn(
        conn,
        instance_id,
        forget,
        node_id=node if isinstance(node, str) else None,
        key=key if isinstance(key, str) else None,
        detail={"at": at, "message": error.get("message"), "forgotten": lost},
        flow=_flow(info, plan),
    )
    return Retried(
        instance_id,
        node if isinstance(node, str) else None,
        key if isinstance(key, str) else None,
        at if isinstance(at, str) else None,
        tuple(forget),
        sum(1 for r in records.values() if r.status == "completed"),
    )


def _flow(info: InstanceInfo, plan: Plan) -> tuple[str | None, int | None]:
    """The concurrency key and max_concurrent an instance runs under (None, None: none)."""
    if info.workflow is None:
        return None, None
    return info.concurrency_key, max_concurrent(plan)


def _message(error: Any) -> str | None:
    if isinstance(error, Mapping):
        m = error.get("message")
        return m if isinstance(m, str) else None
    return None


def _records(conn: Conn, instance_id: str) -> dict[str, NodeRecord]:
    return {r[1]: record_from_row(r[1:]) for r in records_txn(conn, instance_id)}


# -- fork ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Forked:
    """What `fork` did: the new instance, its version, the step it starts at, what it reused."""

    instance_id: str
    source: str
    workflow: str
    version: int
    step: str
    reused: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.instance_id,
            "from": self.source,
            "workflow": self.workflow,
            "version": self.version,
            "step": self.step,
            "reused": list(self.reused),
        }


def fork(conn: Conn, instance_id: str, step: str, version: int | None = None) -> Forked:
    """Start a new instance of ``instance_id``'s workflow (its version, or ``version``) with
    its variables and label, reusing the recorded results of the steps before ``step``; raises
    `DfcError` (starting nothing) when the step is unknown or never ran, or when the reused
    steps are not the same in ``version``."""
    check_id(instance_id)
    info = stored.info_txn(conn, instance_id)
    if info is None:
        raise unknown(instance_id)
    if info.workflow is None or info.version is None:
        raise DfcError(
            f"instance {instance_id} was started from SQL and was never compiled; it has "
            "nothing to reuse",
            hint="start it again with df.start",
        )
    _, plan = load_plan_txn(conn, info.workflow, info.version)
    records = _records(conn, instance_id)
    reused = fork_prefix(plan, records, step)
    target, target_plan = info.version, plan
    if version is not None and version != info.version:
        target, new_plan = load_plan_txn(conn, info.workflow, version)
        target_plan = new_plan
        found = compat.verdict(plan, new_plan, {records[k].node_id for k in reused})
        if not found.ok:
            raise DfcError(
                f"cannot fork {instance_id} onto version {target}: {found.reason}"
                + _where(plan, found.node),
                hint=f"fork onto version {info.version}, or from an earlier step; "
                f"`dfc diff {info.workflow} {info.version} {target}` shows what changed",
            )
    new, _ = stored.start_keyed_txn(
        conn,
        info.workflow,
        target,
        info.label,
        _vars(info),
        idempotency_key=None,
        concurrency_key=info.concurrency_key,
        max_concurrent=max_concurrent(target_plan),
    )
    store.fork_txn(
        conn,
        instance_id,
        new,
        reused,
        node_id=node_id(step),
        detail={"from": instance_id, "step": step, "version": target, "reused": len(reused)},
    )
    return Forked(new, instance_id, info.workflow, target, step, tuple(reused))


def _vars(info: InstanceInfo) -> dict[str, str]:
    """The source instance's variables as stored: checked and converted when it started."""
    return {k: str(v) for k, v in info.vars.items()}


def _where(plan: Plan, nid: str | None) -> str:
    span = None if nid is None else plan.where(nid)
    return "" if span is None else f" (at {span})"


# -- upgrade ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Compat:
    """One unfinished instance against a target version: can it move, and if not, why."""

    instance_id: str
    version: int
    ok: bool
    reason: str | None = None
    moved: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.instance_id,
            "version": self.version,
            "compatible": self.ok,
            "reason": self.reason,
            "moved": self.moved,
        }


class _Plans:
    """The plans of one workflow's versions, each loaded once."""

    def __init__(self, conn: Conn, name: str) -> None:
        self.conn, self.name = conn, name
        self._plans: dict[int, Plan] = {}

    def get(self, version: int) -> Plan:
        """The plan of ``version``; `DfcError` for a version that does not exist."""
        plan = self._plans.get(version)
        if plan is None:
            _, plan = load_plan_txn(self.conn, self.name, version)
            self._plans[version] = plan
        return plan


def _judge(plans: _Plans, version: int, to: int, recorded: Sequence[str]) -> str | None:
    """Why an instance of ``version`` with these recorded nodes cannot move to ``to``."""
    found = compat.verdict(plans.get(version), plans.get(to), recorded)
    if found.ok:
        return None
    return (found.reason or "it differs") + _where(plans.get(version), found.node)


def compatibility(conn: Conn, name: str, old: int, new: int) -> list[Compat]:
    """Which unfinished instances of ``name`` at version ``old`` could move to ``new`` now (a
    static answer from their records; `upgrade` looks again under a lock)."""
    plans = _Plans(conn, name)
    plans.get(new)  # an unknown version is an error even when no instance runs
    out = []
    for m in store.unfinished_txn(conn, name, version=old):
        reason = _judge(plans, old, new, m.recorded)
        out.append(Compat(m.id, old, reason is None, reason))
    return out


def upgrade(conn: Conn, name: str, to: int, ids: Sequence[str] = ()) -> list[Compat]:
    """Move the unfinished instances of ``name`` (those in ``ids``, or all of them) to version
    ``to`` where their records keep their meaning there, each atomically under its queue row
    lock and only while no worker holds it (between steps); returns what happened to each.

    Runs one transaction per instance (``conn`` must not be in a transaction): one that cannot
    move leaves the others free to.
    """
    for i in ids:
        check_id(i)
    plans = _Plans(conn, name)
    out: list[Compat] = []
    with conn.transaction():
        plans.get(to)  # an unknown version is an error before anything moves
        listed = store.unfinished_txn(conn, name, ids=list(ids) if ids else None)
        seen = {m.id for m in listed}
        for iid in ids:
            if iid not in seen:
                out.append(Compat(iid, 0, False, _not_movable(conn, name, iid)))
    for m in listed:
        with conn.transaction():
            out.append(_move(conn, plans, m.id, to))
    return out


def _move(conn: Conn, plans: _Plans, instance_id: str, to: int) -> Compat:
    held = store.hold_txn(conn, instance_id)
    if held is None:
        return Compat(instance_id, 0, False, "it finished or a worker is claiming it right now")
    version, lease_owner, owned_by = held
    if version == to:
        return Compat(instance_id, version, True, f"it is on version {to} already")
    if lease_owner is not None:
        return Compat(
            instance_id,
            version,
            False,
            f"worker {lease_owner} holds it (a step may be running); run dfc upgrade again "
            "when it waits",
        )
    if owned_by is not None:
        return Compat(instance_id, version, False, f"`dfc run` ({owned_by}) runs it")
    # Read after the lock: no step can commit for an instance that no worker leases.
    reason = _judge(plans, version, to, store.recorded_txn(conn, instance_id))
    if reason is not None:
        return Compat(instance_id, version, False, reason)
    store.move_txn(conn, instance_id, version, to)
    return Compat(instance_id, version, True, None, moved=True)


def _not_movable(conn: Conn, name: str, instance_id: str) -> str:
    """Why an instance named to `upgrade` is not among the unfinished instances of ``name``;
    `DfcError` when there is no such instance."""
    info = stored.info_txn(conn, instance_id)
    if info is None:
        raise unknown(instance_id)
    if info.workflow != name:
        return f"it is an instance of {info.workflow}, not of {name}"
    return f"it is {info.status}"
