"""Performing the machine's actions against the database: SQL steps, HTTP steps, stored records.

Every write goes through ``dfc.checkpoint`` (migrations 0002 and 0006), which checks that this
worker still holds the instance's lease (else SQLSTATE DF001, `LeaseLost`) and that the node key
has no final record yet (else DF002, `Conflict`). A final record is its own history event (the
view ``dfc.events``), so a step's checkpoint writes one row. A SQL step's statements and its checkpoint commit in one
transaction, so either error rolls the step's own effects back: that is the exactly-once fence.

This is the single-step path; most steps of a worker run in batches with other instances'
steps instead (`dfc.runtime.batch`), which falls back to this path for a step that must run
alone. Round trips of a transactional SQL step: (1) ``BEGIN; [SET LOCAL statement_timeout]; <step>``
as one simple-protocol query, which also allows several statements in one step; (2) the
session reset (below), the checkpoint and ``COMMIT``. The result must reach the worker between
the two, because the checkpoint stores it; nothing else is waited for while the step's row locks
are held. When the state machine says the next thing to do is exactly one more SQL step (a
sequence), (2) and the next step's (1) go together — ``reset; checkpoint; COMMIT; BEGIN; <next
step>`` — so a sequence costs one round trip and one commit per step. A refused checkpoint makes
the server skip the rest of that query, so the next step never runs on top of an uncommitted one.

Every step gets the session as the worker opened it: whatever a step ``SET`` (settings,
``search_path``, ``ROLE``, ``SESSION AUTHORIZATION``) is undone before the worker writes
anything, so the checkpoint runs as the worker with its own settings and nothing reaches the
next step or another instance on the same pooled connection. The reset is
`dfc.store.db.RESET_SESSION`, inside the step's transaction (a rolled-back step needs nothing:
``SET`` is transactional); an autocommit step resets after running. When a step changed how
query text is read (``standard_conforming_strings``, ``client_encoding``), the reset goes alone
first, as the rest of (2) would otherwise be read under the step's setting.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from psycopg import errors

from dfc.plan.model import Plan
from dfc.runtime import faults, observe
from dfc.runtime.state import NodeRecord, RunHttp, RunSql, Store
from dfc.runtime.values import sql_result_async
from dfc.store import node_state, signals
from dfc.store.db import RESET_SESSION, reads_text_as_opened
from dfc.store.inline import AConn, execute
from dfc.store.roles import RunAs


class LeaseLost(Exception):
    """This worker no longer holds the instance: it was cancelled or taken over."""


class Conflict(Exception):
    """A record this worker tried to write is already final (written by someone else)."""


@dataclass(frozen=True, slots=True)
class Lease:
    """Who writes for which instance, where its source positions come from, and the role its
    steps run as when that is not the worker's own (`dfc.runtime.run_as`)."""

    instance_id: str
    owner: str
    plan: Plan
    run_as: RunAs | None = None


@dataclass(frozen=True, slots=True)
class Written:
    """A written record, the queue's signal counter seen at that moment, and the step's time."""

    record: NodeRecord
    pokes: int
    duration_ms: float


def checkpoint(
    lease: Lease,
    rec: NodeRecord,
    history: Mapping[str, Any] | None = None,
    *,
    prepared: bool = False,
) -> str:
    """The statement that writes ``rec`` for ``lease`` (`dfc.store.node_state.checkpoint_sql`;
    ``history`` matters only for a record that is not final: a final one is its own event;
    ``prepared`` on a session that prepared `dfc.store.node_state.PREPARE_CHECKPOINT`)."""
    return node_state.checkpoint_sql(
        lease.instance_id,
        lease.owner,
        rec.key,
        rec.node_id,
        rec.status,
        result=rec.result,
        error=rec.error,
        attempt=rec.attempt,
        wake_at=rec.wake_at,
        detail=rec.detail,
        history=history,
        prepared=prepared,
    )


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


def statement_position(error: psycopg.Error) -> int | None:
    """Where in the step's text the server says the error is (1-based), if it says."""
    pos = error.diag.statement_position
    return int(pos) if pos else None


def sql_error(
    plan: Plan,
    action: RunSql,
    error: psycopg.Error,
    position: Callable[[psycopg.Error], int | None] = statement_position,
) -> dict[str, Any]:
    """The stored error of a failed SQL step: server message and SQLSTATE, node and location
    (``position`` finds where in the step's text the error is)."""
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
    pos = position(error)
    if pos is not None:
        out["position"] = pos
    return out


# -- SQL steps ------------------------------------------------------------------------------


class Chain(Protocol):
    """How a SQL step learns what runs next, so that its commit and the next step's start share
    one round trip (``checkpoint; COMMIT; BEGIN; <next step>``)."""

    def next_step(self, done: NodeRecord) -> RunSql | None:
        """The step that runs right after ``done`` commits, if it is exactly one transactional
        SQL step and nothing else; None to stop chaining."""

    def committed(self, written: Written, next_key: str) -> None:
        """``written`` is durable and ``next_key`` has started (in the same task)."""

    def uncertain(self) -> None:
        """The task was interrupted after a commit may have happened: reload from the database."""

    def unchainable(self, node_id: str) -> None:
        """The step of ``node_id`` must not share a query string with other statements: the
        server could not parse it, which refuses the whole string, checkpoint included."""

    def ending(self, done: NodeRecord) -> str | None:
        """After `next_step` returned None for ``done``: the statement that ends the instance,
        to commit with ``done`` (`dfc.runtime.batch`), when ``done`` is its last record."""

    def ended(self) -> None:
        """The statement of `ending` committed: the instance is finished."""


SYNTAX_ERROR = "42601"  # the server refuses the whole query string before running any of it


def _begin(action: RunSql) -> str:
    prefix = "BEGIN;"
    if action.timeout_s is not None:
        prefix += f"SET LOCAL statement_timeout = {max(1, int(action.timeout_s * 1000))};"
    return prefix + action.sql


async def run_sql(conn: AConn, lease: Lease, action: RunSql, chain: Chain | None = None) -> Written:
    """Run a SQL step and checkpoint its result (or its failure); with a ``chain``, go on with
    the steps that follow it, one round trip each, and return the last one's outcome.

    Raises `LeaseLost`/`Conflict` when the fence refuses the checkpoint (the step's effects are
    rolled back), and lets connection errors through (the transaction dies with the connection).
    """
    if action.autocommit:
        return await run_autocommit(conn, lease, action)
    started = time.perf_counter()
    try:
        try:
            cur = await execute(conn, _begin(action))
            result = await sql_result_async(cur)  # the last statement's result
        except psycopg.Error as e:
            if not is_step_error(conn, e):
                raise
            return await fail(conn, lease, action, e, started)
        while True:
            faults.fault("after_step_sql")
            if not reads_text_as_opened(conn):
                await execute(conn, RESET_SESSION)  # before the text that follows is read
            rec = NodeRecord(
                key=action.key, node_id=action.node_id, status="completed", result=result
            )
            ms = (time.perf_counter() - started) * 1000
            ck = checkpoint(lease, rec)
            nxt = chain.next_step(rec) if chain is not None else None
            if nxt is None or nxt.autocommit:
                seq, pokes = await commit(conn, ck)
                break
            assert chain is not None
            # Commit this step and start the next in one round trip. If the checkpoint is
            # refused, the server skips the rest of the query: the next step never runs.
            next_started = time.perf_counter()
            faults.fault("before_commit")  # nothing of this step is committed yet
            try:
                cur = await execute(conn, f"{RESET_SESSION};{ck};COMMIT;{_begin(nxt)}")
                while cur.description is None and cur.nextset():
                    pass  # past the reset's results
                first = await cur.fetchone()  # the checkpoint's (seq, pokes)
                assert first is not None
                done = Written(with_seq(rec, int(first[0])), int(first[1]), ms)
                result = await sql_result_async(cur)
            except psycopg.Error as e:
                fence = classify(e)
                if fence is not None:
                    raise fence from e
                await rollback(conn)
                maybe = await node_state.committed(conn, lease.instance_id, rec.key)
                if maybe is None:
                    if e.sqlstate == SYNTAX_ERROR:
                        # The next step's text does not parse, and a string that does not parse
                        # runs none of its statements: this step runs again, committed alone,
                        # and the next one then fails alone, as the user's error.
                        chain.unchainable(nxt.node_id)
                    raise  # the checkpoint failed (not the next step): not the user's
                chain.committed(Written(with_seq(rec, maybe[0]), maybe[1], ms), nxt.key)
                if not is_step_error(conn, e):
                    raise
                return await fail(conn, lease, nxt, e, next_started)
            except asyncio.CancelledError:
                chain.uncertain()  # the first step may have committed before the cancel
                raise
            faults.fault("after_commit")
            chain.committed(done, nxt.key)
            action, started = nxt, next_started
    except BaseException:
        await rollback(conn)
        raise
    faults.fault("after_commit")
    return Written(with_seq(rec, seq), pokes, (time.perf_counter() - started) * 1000)


async def commit(conn: AConn, checkpoint_sql: str) -> tuple[int, int]:
    """End a step's transaction: the session reset, its checkpoint, ``COMMIT``, in one round
    trip; returns the checkpoint's (seq, pokes). Raises `LeaseLost`/`Conflict` when the fence
    refuses it."""
    try:
        if faults.armed("before_commit"):
            (row,) = await _checkpoints(conn, [RESET_SESSION, checkpoint_sql])
            faults.fault("before_commit")
            await execute(conn, "COMMIT")
        else:
            (row,) = await _checkpoints(conn, [RESET_SESSION, checkpoint_sql, "COMMIT"])
    except psycopg.Error as e:
        raise classify(e) or e from e
    return row


async def _checkpoints(conn: AConn, statements: Sequence[str]) -> list[tuple[int, int]]:
    """`node_state.run_checkpoints`, timed for the worker's metrics."""
    started = time.perf_counter()
    rows = await node_state.run_checkpoints(conn, statements)
    observe.checkpoint(time.perf_counter() - started)
    return rows


def is_step_error(conn: AConn, e: psycopg.Error) -> bool:
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


async def _run_directly(conn: AConn, action: RunSql) -> dict[str, Any]:
    return await sql_result_async(await execute(conn, action.sql))


async def run_autocommit(
    conn: AConn,
    lease: Lease,
    action: RunSql,
    perform: Callable[[AConn, RunSql], Awaitable[dict[str, Any]]] = _run_directly,
    position: Callable[[psycopg.Error], int | None] = statement_position,
) -> Written:
    """A step that cannot run in a transaction block: at-least-once (SPEC §5.3). ``perform``
    runs it and gives its result (the worker's session runs it directly, by default)."""
    started = time.perf_counter()
    failure: psycopg.Error | None = None
    try:
        try:
            if action.timeout_s is not None:
                await execute(
                    conn, f"SET statement_timeout = {max(1, int(action.timeout_s * 1000))}"
                )
            result = await perform(conn, action)
        except psycopg.Error as e:
            if not is_step_error(conn, e):
                raise
            failure = e
        finally:
            await _restore(conn)  # the timeout's SET and the step's own were not transactional
        if failure is not None:
            return await fail(conn, lease, action, failure, started, position)
        faults.fault("after_step_sql")
        rec = NodeRecord(key=action.key, node_id=action.node_id, status="completed", result=result)
        seq, pokes = await _checkpoint_one(conn, lease, rec)
    except BaseException:
        await rollback(conn)
        raise
    faults.fault("after_commit")
    return Written(with_seq(rec, seq), pokes, (time.perf_counter() - started) * 1000)


async def _restore(conn: AConn) -> None:
    """Give the session back its opening settings after an autocommit step (best effort: the
    connection may be dead, and the pool then discards it)."""
    if conn.closed:
        return
    await rollback(conn)  # a step that opened a transaction and failed in it
    with contextlib.suppress(psycopg.Error):
        await execute(conn, RESET_SESSION)


async def fail(
    conn: AConn,
    lease: Lease,
    action: RunSql,
    error: psycopg.Error,
    started: float,
    position: Callable[[psycopg.Error], int | None] = statement_position,
    message: str | None = None,
) -> Written:
    """Roll the step back, then store its failure (`sql_error`; ``message`` instead of the
    server's) in a transaction of its own."""
    await rollback(conn)
    err = sql_error(lease.plan, action, error, position)
    if message is not None:
        err["message"] = message
    rec = NodeRecord(key=action.key, node_id=action.node_id, status="failed", error=err)
    seq, pokes = await _checkpoint_one(conn, lease, rec)
    return Written(with_seq(rec, seq), pokes, (time.perf_counter() - started) * 1000)


async def _checkpoint_one(conn: AConn, lease: Lease, rec: NodeRecord) -> tuple[int, int]:
    """Write one final record in its own (implicit) transaction."""
    try:
        (row,) = await _checkpoints(conn, [checkpoint(lease, rec)])
    except psycopg.Error as e:
        raise classify(e) or e from e
    return row


async def rollback(conn: AConn) -> None:
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
) -> Written:
    """Store an HTTP step's envelope (or its failure) after the request was made."""
    started = time.perf_counter()
    if error is None:
        rec = NodeRecord(
            key=action.key, node_id=action.node_id, status="completed", result=envelope
        )
    else:
        error = {**error, "node": action.node_id, "key": action.key}
        at = location(lease.plan, action.node_id)
        if at is not None:
            error.setdefault("at", at)
        rec = NodeRecord(key=action.key, node_id=action.node_id, status="failed", error=error)
    seq, pokes = await _checkpoint_one(conn, lease, rec)
    faults.fault("after_commit")
    return Written(with_seq(rec, seq), pokes, ms + (time.perf_counter() - started) * 1000)


# -- records decided by the machine ---------------------------------------------------------


async def store_records(
    conn: AConn, lease: Lease, stores: Sequence[Store], prune: Iterable[str] = ()
) -> tuple[list[NodeRecord], int]:
    """Write the machine's records of one evaluation (and apply loop-history pruning) in one
    transaction; returns the records with their sequence numbers and the signal counter."""
    parts: list[str] = []
    for st in stores:
        rec = st.record
        parts.append(checkpoint(lease, rec, _history(st)))
        if st.consume_signal is not None:
            parts.append(signals.consume_sql(lease.instance_id, st.consume_signal, rec.key))
    prune_keys = list(prune)
    if prune_keys:
        parts.extend(node_state.prune_sql(lease.instance_id, prune_keys))
    if len(parts) > 1:  # one statement is a transaction by itself
        parts = ["BEGIN", *parts, "COMMIT"]
    try:
        rows = await _checkpoints(conn, parts)
    except psycopg.Error as e:
        await rollback(conn)
        raise classify(e) or e from e
    except BaseException:
        await rollback(conn)
        raise
    written = [with_seq(st.record, seq) for st, (seq, _) in zip(stores, rows, strict=True)]
    return written, rows[-1][1] if rows else 0


def _history(st: Store) -> dict[str, Any]:
    rec = st.record
    out: dict[str, Any] = {}
    if rec.wake_at is not None:
        out["wake_at"] = rec.wake_at.isoformat()
    if st.consume_signal is not None:
        out["signal"] = st.consume_signal
    if rec.error is not None and isinstance(rec.error, Mapping):
        out["message"] = rec.error.get("message")
    if rec.detail:
        out.update({k: v for k, v in rec.detail.items() if isinstance(v, str | int | float | bool)})
    return out
