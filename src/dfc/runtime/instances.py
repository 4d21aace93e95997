"""The instance lifecycle from outside the worker: start, signal, cancel, inspect (SPEC §5.1, §5.4).

Every function takes a psycopg connection and runs in the caller's transaction (an autocommit
connection makes each call its own transaction): starting an instance inside an application
transaction that rolls back starts nothing. This module checks what callers give (instance
ids, variables against the plan's params) and says what went wrong; the statements are
`dfc.store.instances`'.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg

from dfc.diagnostics import DfcError
from dfc.params import substitution_text
from dfc.plan.model import Plan
from dfc.runtime.arguments import convert, show
from dfc.runtime.arguments import max_concurrent as max_concurrent  # moved; still imported here
from dfc.runtime.arguments import validate_vars as validate_vars
from dfc.runtime.engine import record_from_row, signal_from_row
from dfc.runtime.state import NodeRecord, Signal
from dfc.store import instances as stored
from dfc.store.children import Child, children_txn
from dfc.store.instances import HistoryEvent, InstanceInfo
from dfc.store.node_state import records_txn, timings_txn
from dfc.store.registry import load_plan_txn
from dfc.store.signals import unconsumed_txn

if TYPE_CHECKING:
    from dfc.runtime.worker import GraphCompiler

Conn = psycopg.Connection[Any]

_ID = re.compile(r"^[0-9a-f]{8}$")


# -- variables ----------------------------------------------------------------------------------


def parse_var_options(items: Sequence[str]) -> dict[str, str]:
    """``--var k=v`` options as a mapping; raises `DfcError` for an item without ``=``."""
    out: dict[str, str] = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not name.strip():
            raise DfcError(f"--var {item!r} is not NAME=VALUE", hint="write --var batch_size=500")
        out[name.strip()] = value
    return out


# -- lifecycle ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Started:
    """What a start gave: the instance's id, and whether it is an instance that an earlier start
    with the same idempotency key made (then nothing was started)."""

    id: str
    existing: bool = False


def start(
    conn: Conn,
    name: str,
    version: int | None = None,
    vars: Mapping[str, Any] | None = None,
    label: str | None = None,
    *,
    idempotency_key: str | None = None,
    concurrency_key: str | None = None,
) -> str:
    """Start workflow ``name`` (see `start_instance`); returns the new instance id."""
    return start_instance(
        conn,
        name,
        version,
        vars,
        label,
        idempotency_key=idempotency_key,
        concurrency_key=concurrency_key,
    ).id


def start_instance(
    conn: Conn,
    name: str,
    version: int | None = None,
    vars: Mapping[str, Any] | None = None,
    label: str | None = None,
    *,
    idempotency_key: str | None = None,
    concurrency_key: str | None = None,
) -> Started:
    """Start workflow ``name`` (its latest deployed version unless given, a dev version only when
    every version is one: `dfc.store.registry.load_plan_txn`).

    The instance runs only while fewer than its version's ``max_concurrent`` (a workflow file
    option) instances of ``name`` run, and, with a ``concurrency_key``, while no other instance
    of ``name`` with that key runs; until then it stays pending, queued in order.

    With an ``idempotency_key`` that an instance of ``name`` already has (finished or not), no
    instance is started: that one is returned (``existing``), provided this start asks for the
    same thing — `DfcError` when it names another version or label, or gives a variable another
    value (only what the caller gives is compared: defaults and start-time expressions are not).
    """
    if idempotency_key is not None:
        first = stored.keyed_txn(conn, name, idempotency_key)
        if first is not None:
            return _same_start(conn, first, idempotency_key, version, vars, label, concurrency_key)
    found, plan = load_plan_txn(conn, name, version)
    values = validate_vars(plan, vars)
    values.update(expression_values(conn, plan))
    if label is None:
        label = plan.options.get("label") if isinstance(plan.options.get("label"), str) else None
    limit = max_concurrent(plan)
    if idempotency_key is None and concurrency_key is None and limit is None:
        # The form every schema has, also one from before migration 0009.
        return Started(stored.start_txn(conn, name, found, label, values))
    try:
        iid, existing = stored.start_keyed_txn(
            conn,
            name,
            found,
            label,
            values,
            idempotency_key=idempotency_key,
            concurrency_key=concurrency_key,
            max_concurrent=limit,
        )
    except psycopg.errors.InvalidParameterValue as e:  # the key's rules are dfc.start_instance's
        raise DfcError(str(e.diag.message_primary), hint=e.diag.message_hint) from None
    if existing:  # a concurrent start with the key committed while this one waited for it
        assert idempotency_key is not None
        first = stored.info_txn(conn, iid)
        assert first is not None
        return _same_start(conn, first, idempotency_key, version, vars, label, concurrency_key)
    return Started(iid)


def _same_start(
    conn: Conn,
    first: InstanceInfo,
    key: str,
    version: int | None,
    vars: Mapping[str, Any] | None,
    label: str | None,
    concurrency_key: str | None,
) -> Started:
    """``first``, started earlier with ``key``, when this start asks for nothing else; else
    `DfcError` saying what differs. The variables given are read as the first instance's
    version reads them, so ``"5"`` and ``5`` for an int parameter are the same."""
    differences: list[str] = []
    if version is not None and version != first.version:
        differences.append(f"version {version}, not {first.version}")
    if label is not None and label != first.label:
        differences.append(f"label {label!r}, not {first.label!r}")
    if concurrency_key is not None and concurrency_key != first.concurrency_key:
        differences.append(f"concurrency key {concurrency_key!r}, not {first.concurrency_key!r}")
    if vars and first.workflow is not None and first.version is not None:
        _, plan = load_plan_txn(conn, first.workflow, first.version)
        given = {p.name: p for p in plan.params}
        for name, value in vars.items():
            text = (
                convert(given[name], value, given=True)
                if name in given
                else substitution_text("text", value)
            )
            if first.vars.get(name) != text:
                differences.append(f"{name} = {show(value)}, not {show(first.vars.get(name))}")
    if differences:
        raise DfcError(
            f"idempotency key {key!r} already started instance {first.id} of {first.workflow}, "
            "with " + "; ".join(differences),
            hint="a key names one start: repeat the same start to get that instance back, or "
            "use a new key for a different start",
        )
    return Started(first.id, existing=True)


def expression_values(conn: Conn, plan: Plan) -> dict[str, str]:
    """The values of the plan's start-time SQL expressions (``--grammar pg`` arguments such as
    ``jsonb_build_array(...)``), evaluated once, now, in the caller's transaction and as its
    role, as pg_durable evaluates the arguments of ``df.start``. Raises `DfcError` naming the
    expression when the database refuses it or it gives NULL (the transaction is then
    aborted)."""
    out: dict[str, str] = {}
    for e in plan.expressions:
        where = plan.where(e.node)
        what = f"the SQL expression for the {e.argument} of the step at {where or e.node}"
        try:
            value = stored.evaluate_txn(conn, e.sql)
        except psycopg.Error as err:
            message = err.diag.message_primary or str(err).strip()
            raise DfcError(
                f"{what} failed when the instance started: {message}",
                hint=f"it runs as `SELECT ({e.sql})::text` in the starting transaction; fix it "
                "and deploy again",
            ) from None
        if value is None:
            raise DfcError(
                f"{what} is NULL when the instance starts",
                hint="give it a value (coalesce(...)), or leave the argument out",
            )
        out[e.name] = value
    return out


NO_DATA = "{}"
"""The payload of a signal sent without data: pg_durable's default (``df.signal``'s
``signal_data text DEFAULT '{}'``), so the waiting step sees ``"data": {}``."""


def signal(conn: Conn, instance_id: str, name: str, data: str | None = None) -> None:
    """Send signal ``name`` with ``data`` (text; JSON text is delivered as JSON). Without data
    (None) the payload is `NO_DATA`, an empty JSON object; send the text ``null`` for JSON
    null."""
    _check_id(instance_id)
    if not name.strip():
        raise DfcError(
            "the signal name is empty",
            hint="name the signal the instance waits for: dfc signal ID NAME",
        )
    status = stored.signal_txn(conn, instance_id, name, NO_DATA if data is None else data)
    if status is None:
        raise _unknown(instance_id)
    if status not in ("pending", "running"):
        raise DfcError(
            f"instance {instance_id} is {status}; it cannot receive signals",
            hint="signals go to pending or running instances",
        )


def cancel(conn: Conn, instance_id: str, reason: str | None = None) -> str:
    """Cancel an unfinished instance; returns a one-line message of what happened."""
    _check_id(instance_id)
    status = stored.cancel_txn(conn, instance_id, reason)
    if status is None:
        raise _unknown(instance_id)
    if status in ("pending", "running"):
        return f"instance {instance_id} cancelled"
    return f"instance {instance_id} is already {status}; nothing to cancel"


def _check_id(instance_id: str) -> None:
    if not _ID.match(instance_id):
        raise DfcError(
            f"{instance_id!r} is not an instance id",
            hint="instance ids are 8 lowercase hex characters, as printed by dfc start",
        )


def _unknown(instance_id: str) -> DfcError:
    return DfcError(f"no instance {instance_id}", hint="`dfc ls` lists recent instances")


# -- inspection ---------------------------------------------------------------------------------


def status(conn: Conn, instance_id: str) -> InstanceInfo:
    """The instance's row; `DfcError` when there is none."""
    _check_id(instance_id)
    info = stored.info_txn(conn, instance_id)
    if info is None:
        raise _unknown(instance_id)
    return info


def list_instances(
    conn: Conn, *, status: str | None = None, workflow: str | None = None, limit: int = 50
) -> list[InstanceInfo]:
    """The most recently created instances, newest first."""
    return stored.list_txn(conn, status=status, workflow=workflow, limit=limit)


def result(conn: Conn, instance_id: str) -> Any:
    """The result of a completed instance; `DfcError` saying the status otherwise."""
    info = status(conn, instance_id)
    if info.status == "completed":
        return info.result
    if info.status == "failed":
        msg = info.error.get("message") if isinstance(info.error, Mapping) else info.error
        raise DfcError(
            f"instance {instance_id} failed: {msg}", hint=f"`dfc status {instance_id}` shows where"
        )
    if info.status == "cancelled":
        raise DfcError(f"instance {instance_id} was cancelled", hint="it has no result")
    raise DfcError(
        f"instance {instance_id} is {info.status} and has no result yet",
        hint=f"wait for it: `dfc result {instance_id} --wait` (or `dfc wait {instance_id}`)",
    )


def wait(
    conn: Conn, instance_id: str, timeout: float | None = None, *, poll: float = 1.0
) -> InstanceInfo:
    """The instance's row once it is finished, or as it is after ``timeout`` seconds.

    Listens on `dfc.store.instances.FINISHED_CHANNEL` (``conn`` must be in autocommit mode, so
    that the LISTEN takes effect at once) and reads the row again at each notice for this
    instance and every ``poll`` seconds, a safety net for a notice missed while reconnecting:
    no tight polling loop. `DfcError` for an unknown instance.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    stored.listen_finished(conn)
    try:
        while True:
            info = status(conn, instance_id)
            left = poll if deadline is None else min(poll, deadline - time.monotonic())
            if info.finished or left <= 0:
                return info
            for note in conn.notifies(timeout=left, stop_after=1):
                if note.payload == instance_id:
                    break
    finally:
        stored.unlisten_finished(conn)


def children(conn: Conn, instance_id: str) -> list[Child]:
    """The instances started by the ``df.call`` and ``df.spawn`` steps of ``instance_id``,
    oldest first; `DfcError` for an unknown instance."""
    _check_id(instance_id)
    found = children_txn(conn, instance_id)
    if not found and not stored.exists_txn(conn, instance_id):
        raise _unknown(instance_id)
    return found


def history(conn: Conn, instance_id: str) -> list[HistoryEvent]:
    """The instance's events in order; `DfcError` for an unknown instance."""
    _check_id(instance_id)
    events = stored.history_txn(conn, instance_id)
    if not events and not stored.exists_txn(conn, instance_id):
        raise _unknown(instance_id)
    return events


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything needed to replay an instance for display: plan, records, signals, timings."""

    info: InstanceInfo
    plan: Plan
    records: dict[str, NodeRecord]
    signals: list[Signal]
    timings: dict[str, tuple[datetime | None, datetime | None]]  # key -> (started, finished)


def snapshot(conn: Conn, instance_id: str, compile_graph: GraphCompiler | None = None) -> Snapshot:
    """Load an instance's plan and state (one consistent read inside a repeatable-read snapshot).

    An instance started from SQL that no worker compiled yet has only its graph: with
    ``compile_graph`` its plan is compiled for display (not deployed); without, or when the
    graph does not compile, this raises `DfcError`.
    """
    with conn.transaction():
        if conn.autocommit:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        info = status(conn, instance_id)
        if info.workflow is None or info.version is None:
            plan = _graph_plan(info, compile_graph)
        else:
            _, plan = load_plan_txn(conn, info.workflow, info.version)
        records = {r[1]: record_from_row(r[1:]) for r in records_txn(conn, instance_id)}
        sigs = [signal_from_row(r[1:]) for r in unconsumed_txn(conn, instance_id)]
        timings = timings_txn(conn, instance_id)
    return Snapshot(info, plan, records, sigs, timings)


def _graph_plan(info: InstanceInfo, compile_graph: GraphCompiler | None) -> Plan:
    """The plan of an instance started from SQL and not compiled yet (see `snapshot`)."""
    if compile_graph is None or info.graph is None:
        raise DfcError(
            f"instance {info.id} was started from SQL and has not been compiled yet",
            hint="a worker compiles it when it runs it; `dfc status` shows where it stands",
        )
    plan = compile_graph(info.graph, info.label, info.options)
    if isinstance(plan, str):
        raise DfcError(
            f"instance {info.id} was started from SQL and its graph does not compile:\n"
            + plan.rstrip(),
            hint=f"`dfc status {info.id}` shows the instance",
        )
    return plan
