"""Performing the machine's actions against the database: SQL steps, HTTP steps, stored records.

Every write goes through ``dfc.checkpoint`` (migration 0002), which checks that this worker still
holds the instance's lease (else SQLSTATE DF001, `LeaseLost`) and that the node key has no final
record yet (else DF002, `Conflict`). A SQL step's statements and its checkpoint commit in one
transaction, so either error rolls the step's own effects back: that is the exactly-once fence.

Round trips of a transactional SQL step: (1) ``BEGIN; [SET LOCAL statement_timeout]; <step>``
as one simple-protocol query, which also allows several statements in one step; (2) the
checkpoint and ``COMMIT``. The result must reach the worker between the two, because the
checkpoint stores it; nothing else is waited for while the step's row locks are held. When the
state machine says the next thing to do is exactly one more SQL step (a sequence), (2) and the
next step's (1) go together — ``checkpoint; COMMIT; BEGIN; <next step>`` — so a sequence costs
one round trip and one commit per step. A refused checkpoint makes the server skip the rest of
that query, so the next step never runs on top of an uncommitted one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import psycopg
from psycopg import errors

from dfc.plan.model import Plan
from dfc.runtime import faults
from dfc.runtime.state import NodeRecord, RunHttp, RunSql, Store
from dfc.runtime.values import sql_result_async
from dfc.sqlquote import quote_literal

AConn = psycopg.AsyncConnection[Any]

FINAL = frozenset({"completed", "failed", "cancelled", "skipped", "decided"})

# Statements are sent as text with their values inlined as literals (see `literal`): one
# simple-protocol query per round trip, no server-side parameters. For the worker that is the
# cheapest way to talk to PostgreSQL from Python: psycopg's parameter and pipeline machinery
# costs more CPU per step than the server spends parsing these short statements.
CONSUME_SIGNAL = "UPDATE dfc.signals SET consumed_by = {}, consumed_at = now() WHERE instance_id = {} AND seq = {}"
PRUNE_STATE = "DELETE FROM dfc.node_state WHERE instance_id = {} AND key = ANY({}::text[])"
PRUNE_HISTORY = "DELETE FROM dfc.history WHERE instance_id = {} AND key = ANY({}::text[])"


quote = quote_literal


def literal(value: Any, *, as_json: str | None = None) -> str:
    """``value`` as a SQL literal: NULL, an integer, a timestamptz, text, or JSON (``as_json``:
    "json" or "jsonb")."""
    if value is None:
        return "NULL"
    if as_json is not None:
        return quote(dumps(value)) + "::" + as_json
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return quote(value.isoformat()) + "::timestamptz"
    if isinstance(value, list | tuple):
        return quote(
            "{"
            + ",".join('"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in value)
            + "}"
        )
    return quote(str(value))


class LeaseLost(Exception):
    """This worker no longer holds the instance: it was cancelled or taken over."""


class Conflict(Exception):
    """A record this worker tried to write is already final (written by someone else)."""


@dataclass(frozen=True, slots=True)
class Lease:
    """Who writes for which instance, and where its source positions come from."""

    instance_id: str
    owner: str
    plan: Plan


@dataclass(frozen=True, slots=True)
class Outcome:
    """A written record, the queue's signal counter seen at that moment, and the step's time."""

    record: NodeRecord
    pokes: int
    duration_ms: float


# One encoder for every step: `json.dumps` with non-default options builds a new encoder per
# call, which costs about as much as encoding a small step result.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def dumps(value: Any) -> str:
    """Compact JSON text that keeps object keys in their order (a result's column order)."""
    return _ENCODER.encode(value)


def checkpoint_sql(lease: Lease, rec: NodeRecord, history: Mapping[str, Any] | None) -> str:
    """The statement that writes one record through ``dfc.checkpoint`` (migration 0002).

    Written out by hand rather than through `literal`: it is built once per step.
    """
    result = "NULL" if rec.result is None else quote(dumps(rec.result)) + "::json"
    error = "NULL" if rec.error is None else quote(dumps(rec.error)) + "::jsonb"
    wake = "NULL" if rec.wake_at is None else quote(rec.wake_at.isoformat()) + "::timestamptz"
    detail = quote(dumps(dict(rec.detail))) + "::jsonb" if rec.detail else "NULL"
    hist = "NULL" if history is None else quote(dumps(history)) + "::jsonb"
    return (
        f"SELECT seq, pokes FROM dfc.checkpoint({quote(lease.instance_id)},{quote(lease.owner)},"
        f"{quote(rec.key)},{quote(rec.node_id)},{quote(rec.status)},{result},{error},{int(rec.attempt)},"
        f"{wake},{detail},{hist})"
    )


async def execute(conn: AConn, query: str) -> psycopg.AsyncCursor[Any]:
    """Run `query` (simple protocol) on the connection's own cursor and return it.

    Each connection keeps one cursor for the statements sent here: `conn.execute` builds a new
    cursor (adapters copied, a transformer made) per call, about 25 µs of the worker's CPU,
    which for a short step is a tenth of its cost. A connection serves one step at a time, and
    every caller reads its results before the next statement, so one cursor is enough.
    """
    cur: psycopg.AsyncCursor[Any] | None = conn.__dict__.get("_dfc_cursor")
    if cur is None or cur.closed:
        cur = conn.__dict__["_dfc_cursor"] = conn.cursor()
    return await cur.execute(query)


def classify(error: psycopg.Error) -> Exception | None:
    """`LeaseLost` or `Conflict` for dfc's own fence errors; None for anything else."""
    if error.sqlstate == "DF001":
        return LeaseLost(str(error))
    if error.sqlstate == "DF002":
        return Conflict(str(error))
    return None


def location(plan: Plan, node_id: str) -> str | None:
    span = plan.where(node_id)
    return str(span) if span is not None else None


def sql_error(plan: Plan, action: RunSql, error: psycopg.Error) -> dict[str, Any]:
    """The stored error of a failed SQL step: server message and SQLSTATE, node and location."""
    diag = error.diag
    out: dict[str, Any] = {
        "message": diag.message_primary or str(error).strip(),
        "sqlstate": error.sqlstate,
        "node": action.node_id,
        "key": action.key,
    }
    at = location(plan, action.node_id)
    if at is not None:
        out["at"] = at
    if diag.message_detail:
        out["detail"] = diag.message_detail
    if diag.message_hint:
        out["hint"] = diag.message_hint
    if diag.statement_position:
        out["position"] = int(diag.statement_position)
    return out


# -- SQL steps ------------------------------------------------------------------------------


class Chain(Protocol):
    """How a SQL step learns what runs next, so that its commit and the next step's start share
    one round trip (``checkpoint; COMMIT; BEGIN; <next step>``)."""

    def next_step(self, done: NodeRecord) -> RunSql | None:
        """The step that runs right after ``done`` commits, if it is exactly one transactional
        SQL step and nothing else; None to stop chaining."""

    def committed(self, outcome: Outcome, next_key: str) -> None:
        """``outcome`` is durable and ``next_key`` has started (in the same task)."""

    def uncertain(self) -> None:
        """The task was interrupted after a commit may have happened: reload from the database."""


def _begin(action: RunSql) -> str:
    prefix = "BEGIN;"
    if action.timeout_s is not None:
        prefix += f"SET LOCAL statement_timeout = {max(1, int(action.timeout_s * 1000))};"
    return prefix + action.sql


async def run_sql(conn: AConn, lease: Lease, action: RunSql, chain: Chain | None = None) -> Outcome:
    """Run a SQL step and checkpoint its result (or its failure); with a ``chain``, go on with
    the steps that follow it, one round trip each, and return the last one's outcome.

    Raises `LeaseLost`/`Conflict` when the fence refuses the checkpoint (the step's effects are
    rolled back), and lets connection errors through (the transaction dies with the connection).
    """
    if action.autocommit:
        return await _run_autocommit(conn, lease, action)
    started = time.perf_counter()
    try:
        try:
            cur = await execute(conn, _begin(action))
            result = await sql_result_async(cur)  # the last statement's result
        except psycopg.Error as e:
            if not _is_step_error(conn, e):
                raise
            return await _fail(conn, lease, action, e, started)
        while True:
            faults.fault("after_step_sql")
            rec = NodeRecord(
                key=action.key, node_id=action.node_id, status="completed", result=result
            )
            ms = (time.perf_counter() - started) * 1000
            ck = checkpoint_sql(lease, rec, {"ms": round(ms, 2)})
            nxt = chain.next_step(rec) if chain is not None else None
            if nxt is None or nxt.autocommit:
                try:
                    if faults.armed("before_commit"):
                        (row,) = await script(conn, [ck])
                        faults.fault("before_commit")
                        await execute(conn, "COMMIT")
                    else:
                        (row,) = await script(conn, [ck, "COMMIT"])
                except psycopg.Error as e:
                    raise classify(e) or e from e
                seq, pokes = row
                break
            assert chain is not None
            # Commit this step and start the next in one round trip. If the checkpoint is
            # refused, the server skips the rest of the query: the next step never runs.
            next_started = time.perf_counter()
            faults.fault("before_commit")  # nothing of this step is committed yet
            try:
                cur = await execute(conn, f"{ck};COMMIT;{_begin(nxt)}")
                first = await cur.fetchone()  # the checkpoint's (seq, pokes)
                assert first is not None
                done = Outcome(with_seq(rec, int(first[0])), int(first[1]), ms)
                result = await sql_result_async(cur)
            except psycopg.Error as e:
                fence = classify(e)
                if fence is not None:
                    raise fence from e
                await _rollback(conn)
                maybe = await _committed(conn, lease, rec)
                if maybe is None:  # the checkpoint failed (not the next step): not the user's
                    raise
                chain.committed(Outcome(maybe[0], maybe[1], ms), nxt.key)
                if not _is_step_error(conn, e):
                    raise
                return await _fail(conn, lease, nxt, e, next_started)
            except asyncio.CancelledError:
                chain.uncertain()  # the first step may have committed before the cancel
                raise
            faults.fault("after_commit")
            chain.committed(done, nxt.key)
            action, started = nxt, next_started
    except BaseException:
        await _rollback(conn)
        raise
    faults.fault("after_commit")
    return Outcome(with_seq(rec, seq), pokes, (time.perf_counter() - started) * 1000)


_COMMITTED = """
SELECT n.seq, coalesce(q.pokes, 0) FROM dfc.node_state n
  LEFT JOIN dfc.queue q ON q.instance_id = n.instance_id
 WHERE n.instance_id = {} AND n.key = {} AND n.status = 'completed'
"""


async def _committed(conn: AConn, lease: Lease, rec: NodeRecord) -> tuple[NodeRecord, int] | None:
    """After an error in a chained round trip: whether the first step's checkpoint committed
    (then the error is the next step's), with its record and the signal counter."""
    cur = await execute(conn, _COMMITTED.format(literal(lease.instance_id), literal(rec.key)))
    row = await cur.fetchone()
    return None if row is None else (with_seq(rec, int(row[0])), int(row[1]))


def _is_step_error(conn: AConn, e: psycopg.Error) -> bool:
    """Whether the error is the step's own (it fails the node) rather than the infrastructure's
    (the connection or server went away: the step will simply run again)."""
    if conn.closed or e.sqlstate is None or e.sqlstate.startswith("08"):
        return False
    if e.sqlstate in ("57P01", "57P02", "57P03"):  # admin/crash shutdown, cannot connect now
        return False
    if isinstance(e, errors.QueryCanceled):
        # A statement timeout fails the step; any other cancel came from us (a race loser or
        # a cancelled instance) or an operator, and is not the step's failure.
        return "statement timeout" in (e.diag.message_primary or "")
    return True


async def _run_autocommit(conn: AConn, lease: Lease, action: RunSql) -> Outcome:
    """A step that cannot run in a transaction block: at-least-once (SPEC §5.3)."""
    started = time.perf_counter()
    try:
        if action.timeout_s is not None:
            await execute(conn, f"SET statement_timeout = {max(1, int(action.timeout_s * 1000))}")
        try:
            cur = await execute(conn, action.sql)
            result = await sql_result_async(cur)
        except psycopg.Error as e:
            if not _is_step_error(conn, e):
                raise
            return await _fail(conn, lease, action, e, started)
        finally:
            if action.timeout_s is not None and not conn.closed:
                await execute(conn, "RESET statement_timeout")
        faults.fault("after_step_sql")
        rec = NodeRecord(key=action.key, node_id=action.node_id, status="completed", result=result)
        ms = (time.perf_counter() - started) * 1000
        seq, pokes = await _checkpoint_one(
            conn, lease, rec, {"ms": round(ms, 2), "autocommit": True}
        )
    except BaseException:
        await _rollback(conn)
        raise
    faults.fault("after_commit")
    return Outcome(with_seq(rec, seq), pokes, (time.perf_counter() - started) * 1000)


async def _fail(
    conn: AConn, lease: Lease, action: RunSql, error: psycopg.Error, started: float
) -> Outcome:
    """Roll the step back, then store its failure in a transaction of its own."""
    await _rollback(conn)
    err = sql_error(lease.plan, action, error)
    rec = NodeRecord(key=action.key, node_id=action.node_id, status="failed", error=err)
    ms = (time.perf_counter() - started) * 1000
    seq, pokes = await _checkpoint_one(
        conn,
        lease,
        rec,
        {"ms": round(ms, 2), "message": err["message"], "sqlstate": err["sqlstate"]},
    )
    return Outcome(with_seq(rec, seq), pokes, (time.perf_counter() - started) * 1000)


async def _checkpoint_one(
    conn: AConn, lease: Lease, rec: NodeRecord, history: Mapping[str, Any] | None
) -> tuple[int, int]:
    """Write one record in its own (implicit) transaction."""
    try:
        (row,) = await script(conn, [checkpoint_sql(lease, rec, history)])
    except psycopg.Error as e:
        raise classify(e) or e from e
    return row


async def _rollback(conn: AConn) -> None:
    """Leave no transaction open on a pooled connection (best effort: it may be dead)."""
    if conn.closed:
        return
    if conn.info.transaction_status in (
        psycopg.pq.TransactionStatus.INTRANS,
        psycopg.pq.TransactionStatus.INERROR,
    ):
        with contextlib.suppress(psycopg.Error):
            await execute(conn, "ROLLBACK")


def with_seq(rec: NodeRecord, seq: int) -> NodeRecord:
    """`rec` with another seq (spelled out: `dataclasses.replace` costs several times more)."""
    return NodeRecord(
        key=rec.key,
        node_id=rec.node_id,
        status=rec.status,
        result=rec.result,
        error=rec.error,
        wake_at=rec.wake_at,
        attempt=rec.attempt,
        detail=rec.detail,
        seq=seq,
    )


# -- HTTP steps -----------------------------------------------------------------------------


async def checkpoint_http(
    conn: AConn,
    lease: Lease,
    action: RunHttp,
    envelope: Any,
    error: dict[str, Any] | None,
    ms: float,
) -> Outcome:
    """Store an HTTP step's envelope (or its failure) after the request was made."""
    started = time.perf_counter()
    if error is None:
        rec = NodeRecord(
            key=action.key, node_id=action.node_id, status="completed", result=envelope
        )
        history: dict[str, Any] = {"ms": round(ms, 2)}
        if isinstance(envelope, Mapping) and "status" in envelope:
            history["status"] = envelope["status"]
    else:
        error = {**error, "node": action.node_id, "key": action.key}
        at = location(lease.plan, action.node_id)
        if at is not None:
            error.setdefault("at", at)
        rec = NodeRecord(key=action.key, node_id=action.node_id, status="failed", error=error)
        history = {"ms": round(ms, 2), "message": error.get("message")}
    seq, pokes = await _checkpoint_one(conn, lease, rec, history)
    faults.fault("after_commit")
    return Outcome(with_seq(rec, seq), pokes, ms + (time.perf_counter() - started) * 1000)


# -- records decided by the machine ---------------------------------------------------------


async def store_records(
    conn: AConn, lease: Lease, stores: Sequence[Store], prune: Iterable[str] = ()
) -> tuple[list[NodeRecord], int]:
    """Write the machine's records of one evaluation (and apply loop-history pruning) in one
    transaction; returns the records with their sequence numbers and the signal counter."""
    prune_keys = list(prune)
    iid = literal(lease.instance_id)
    parts: list[str] = []
    for st in stores:
        rec = st.record
        parts.append(checkpoint_sql(lease, rec, _history(st)))
        if st.consume_signal is not None:
            parts.append(CONSUME_SIGNAL.format(literal(rec.key), iid, literal(st.consume_signal)))
    if prune_keys:
        parts.append(PRUNE_STATE.format(iid, literal(prune_keys)))
        parts.append(PRUNE_HISTORY.format(iid, literal(prune_keys)))
    if len(parts) > 1:  # one statement is a transaction by itself
        parts = ["BEGIN", *parts, "COMMIT"]
    try:
        rows = await script(conn, parts)
    except psycopg.Error as e:
        await _rollback(conn)
        raise classify(e) or e from e
    except BaseException:
        await _rollback(conn)
        raise
    written = [with_seq(st.record, seq) for st, (seq, _) in zip(stores, rows, strict=True)]
    return written, rows[-1][1] if rows else 0


async def script(conn: AConn, statements: Sequence[str]) -> list[tuple[int, int]]:
    """Run statements as one simple-protocol query (one round trip) and return the first row of
    every statement that returns rows, in order, as (seq, pokes) integers."""
    cur = await execute(conn, ";".join(statements))
    out: list[tuple[int, int]] = []
    while True:
        if cur.description is not None:
            row = await cur.fetchone()
            assert row is not None
            out.append((int(row[0]), int(row[1])))
        if not cur.nextset():
            return out


def _history(st: Store) -> dict[str, Any]:
    rec = st.record
    out: dict[str, Any] = {}
    if rec.wake_at is not None:
        out["wake_at"] = _iso(rec.wake_at)
    if st.consume_signal is not None:
        out["signal"] = st.consume_signal
    if rec.error is not None and isinstance(rec.error, Mapping):
        out["message"] = rec.error.get("message")
    if rec.detail:
        out.update({k: v for k, v in rec.detail.items() if isinstance(v, str | int | float | bool)})
    return out


def _iso(dt: datetime) -> str:
    return dt.isoformat()
