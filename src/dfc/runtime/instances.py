"""The instance lifecycle from outside the worker: start, signal, cancel, inspect (SPEC §5.1, §5.4).

Every function takes a psycopg connection and runs in the caller's transaction (an autocommit
connection makes each call its own transaction): starting an instance inside an application
transaction that rolls back starts nothing. The mutations are SQL functions of migration 0002
(``dfc.start_instance``, ``dfc.signal_instance``, ``dfc.cancel_instance``), shared with the SQL
surface, and each notifies ``dfc_work`` so that idle workers react at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from dfc.diagnostics import DfcError
from dfc.params import ParamValueError, substitution_text
from dfc.plan.model import Plan, PlanParam
from dfc.references import SYSTEM_VARS
from dfc.runtime.engine import LOAD_RECORDS, record_from_row
from dfc.runtime.state import NodeRecord, Signal
from dfc.store.registry import load_plan_txn

Conn = psycopg.Connection[Any]

_ID = re.compile(r"^[0-9a-f]{8}$")


# -- variables --------------------------------------------------------------------------------


def validate_vars(plan: Plan, given: Mapping[str, Any] | None) -> dict[str, str]:
    """The instance's variables as substitution text, checked against the plan's params.

    Raises `DfcError` naming the parameter for a missing value without default, a value that
    does not fit its type, an unknown name (when the workflow declares params) or a system name.
    """
    given = dict(given or {})
    declared = {p.name: p for p in plan.params}
    out: dict[str, str] = {}
    for name in given:
        if name in SYSTEM_VARS:
            raise DfcError(f"{name} is set by dfc and cannot be given", hint="choose another name")
        if declared and name not in declared:
            raise DfcError(
                f"workflow {plan.name} has no parameter {name}",
                hint="its parameters are " + ", ".join(sorted(declared)),
            )
    for p in plan.params:
        if p.name in given:
            out[p.name] = _convert(p, given.pop(p.name), given=True)
        elif p.has_default:
            out[p.name] = _convert(p, p.default, given=False)
        else:
            raise DfcError(
                f"parameter {p.name} of workflow {plan.name} has no value",
                hint=f"give it with --var {p.name}=VALUE",
            )
    for name, value in given.items():  # undeclared variables (pg_durable style)
        out[name] = substitution_text("text", value)
    return out


def _convert(p: PlanParam, value: Any, *, given: bool) -> str:
    try:
        return substitution_text(p.type, value)
    except ParamValueError as e:
        raise DfcError(
            f"parameter {p.name} must be {e.expected}, got {_show(value)}"
            + (f": {e.reason}" if e.reason else ""),
            hint=f"fix the {'value' if given else 'default'} of {p.name}",
        ) from None


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return repr(text if len(text) <= 40 else text[:39] + "…")


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

_START = "SELECT dfc.start_instance(%s, %s, %s, %s, NULL)"
_SIGNAL = "SELECT dfc.signal_instance(%s, %s, %s)"
_CANCEL = "SELECT dfc.cancel_instance(%s, %s)"


def start(
    conn: Conn,
    name: str,
    version: int | None = None,
    vars: Mapping[str, Any] | None = None,
    label: str | None = None,
) -> str:
    """Start workflow ``name`` (latest version unless given); returns the new instance id."""
    found, plan = load_plan_txn(conn, name, version)
    values = validate_vars(plan, vars)
    if label is None:
        label = plan.options.get("label") if isinstance(plan.options.get("label"), str) else None
    row = conn.execute(_START, (name, found, label, Jsonb(values))).fetchone()
    assert row is not None
    return str(row[0])


def signal(conn: Conn, instance_id: str, name: str, data: str | None = None) -> None:
    """Send signal ``name`` with ``data`` (text; JSON text is delivered as JSON)."""
    _check_id(instance_id)
    row = conn.execute(_SIGNAL, (instance_id, name, data)).fetchone()
    status = row[0] if row else None
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
    row = conn.execute(_CANCEL, (instance_id, reason)).fetchone()
    status = row[0] if row else None
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


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    """An instance as stored, plus what it waits for when unfinished."""

    id: str
    workflow: str
    version: int
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
        }


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.isoformat()


_COLUMNS = """
i.id, i.workflow, i.version, i.label, i.status, i.vars, i.result, i.error, i.compensated,
i.cancel_reason, i.created_at, i.started_at, i.finished_at, w.waiting_for
"""
_STATUS = f"SELECT {_COLUMNS} FROM dfc.instances i LEFT JOIN dfc.waits w ON w.instance_id = i.id WHERE i.id = %s"
_LIST = f"""
SELECT {_COLUMNS} FROM dfc.instances i LEFT JOIN dfc.waits w ON w.instance_id = i.id
 WHERE (%(status)s::text IS NULL OR i.status = %(status)s)
   AND (%(workflow)s::text IS NULL OR i.workflow = %(workflow)s)
 ORDER BY i.created_at DESC, i.id
 LIMIT %(limit)s
"""


def status(conn: Conn, instance_id: str) -> InstanceInfo:
    """The instance's row; `DfcError` when there is none."""
    _check_id(instance_id)
    row = conn.execute(_STATUS, (instance_id,)).fetchone()
    if row is None:
        raise _unknown(instance_id)
    return InstanceInfo(*row)


def list_instances(
    conn: Conn, *, status: str | None = None, workflow: str | None = None, limit: int = 50
) -> list[InstanceInfo]:
    """The most recently created instances, newest first."""
    rows = conn.execute(_LIST, {"status": status, "workflow": workflow, "limit": limit}).fetchall()
    return [InstanceInfo(*r) for r in rows]


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
        hint=f"wait for it with the Python client, or look again later (`dfc status {instance_id}`)",
    )


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


_HISTORY = """
SELECT seq, at, event, node_id, key, detail FROM dfc.history WHERE instance_id = %s ORDER BY seq
"""


def history(conn: Conn, instance_id: str) -> list[HistoryEvent]:
    """The instance's events in order; `DfcError` for an unknown instance."""
    _check_id(instance_id)
    rows = conn.execute(_HISTORY, (instance_id,)).fetchall()
    if (
        not rows
        and conn.execute("SELECT 1 FROM dfc.instances WHERE id = %s", (instance_id,)).fetchone()
        is None
    ):
        raise _unknown(instance_id)
    return [HistoryEvent(*r) for r in rows]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything needed to replay an instance for display: plan, records, signals, timings."""

    info: InstanceInfo
    plan: Plan
    records: dict[str, NodeRecord]
    signals: list[Signal]
    timings: dict[str, tuple[datetime | None, datetime | None]]  # key -> (started, finished)


_TIMINGS = "SELECT key, started_at, finished_at FROM dfc.node_state WHERE instance_id = %s"
_SIGNALS = """
SELECT seq, name, payload FROM dfc.signals WHERE instance_id = %s AND consumed_by IS NULL ORDER BY seq
"""


def snapshot(conn: Conn, instance_id: str) -> Snapshot:
    """Load an instance's plan and state (one consistent read inside a repeatable-read snapshot)."""
    with conn.transaction():
        if conn.autocommit:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        info = status(conn, instance_id)
        _, plan = load_plan_txn(conn, info.workflow, info.version)
        records = {
            r[1]: record_from_row(r[1:]) for r in conn.execute(LOAD_RECORDS, ([instance_id],))
        }
        signals = [
            Signal(seq=s, name=n, payload=p) for s, n, p in conn.execute(_SIGNALS, (instance_id,))
        ]
        timings = {k: (s, f) for k, s, f in conn.execute(_TIMINGS, (instance_id,))}
    return Snapshot(info, plan, records, signals, timings)
