"""Steps of several instances in one transaction: one round trip and one commit carry the next
step of many ready instances (SPEC §9; docs/performance.md, "The step path").

A worker's instance runs hand their ready SQL steps to `StepBatches` instead of running them
on a connection of their own. A *lane* (a connection of the batcher's) takes up to
``max_steps`` of them and sends, as one simple-protocol query::

    <checkpoints of the steps run in the previous round trip>; COMMIT;
    BEGIN; SAVEPOINT s; <step 1>; RELEASE s; <reset>; SAVEPOINT s; <step 2>; RELEASE s; <reset>; ...

Each step's results come back in the same round trip; the next one commits them with their
checkpoints (and, after an instance's last step, ``dfc.finish_instance``: `Chain.ending`) and
starts the next steps — the ones that follow in the same instances (the
run's look-ahead, `dfc.runtime.steps.Chain`) and fresh ones from other instances. A sequence of
steps of N instances thus costs one round trip and one commit per N steps.

What keeps each step exactly once and isolated:

- a step's statements and its checkpoint commit in one transaction, as on the single-step path
  (`dfc.runtime.steps.run_sql`); the checkpoint is ``dfc.checkpoint``, with its fence;
- each step runs in a subtransaction, so **a failing step rolls back alone**: its savepoint is
  rolled back, the steps before it stay, the steps after it are sent again, and the failing step
  runs again *alone* (`Alone`), on the single-step path, which stores its failure (or its
  success: a lock timeout inside a batch is no failure of the step). Nothing of that first try
  commits. Its node is not batched again (``_solo``);
- a step sees the effects of the steps before it in the batch, which commit together with it:
  as if they had run one after the other, each committed (READ COMMITTED, one session);
- a refused checkpoint (`LeaseLost`, `Conflict`) aborts the whole transaction: that step's run
  gets the error, as on the single-step path, and the other steps are sent again (their first
  run rolled back with the batch). So does an error of ``COMMIT`` (a deferred constraint): the
  steps then run again, each alone;
- the session's settings are reset after every step (`RESET_SETTINGS`: lanes run only steps
  of the worker's own role, so temporary tables, which `RESET_SESSION` also drops on shared
  connections, reach no other role here).

Where batching must not apply, the single-step path runs the step: a step of an instance that
runs several branches at once (a JOIN or RACE may cancel a branch, which a shared transaction
cannot do alone); an ``autocommit`` step; a step under ``df.timeout`` (its own
``statement_timeout``); a step run as another role (`dfc.runtime.run_as`); and any step with a
statement other than SELECT, WITH, INSERT, UPDATE, DELETE, MERGE, VALUES or TABLE
(``_BATCHABLE``): transaction control (COMMIT, ROLLBACK, SAVEPOINT, ``CALL`` of a procedure
that commits), ``SET TRANSACTION``, utility statements. A step that waits on a lock or runs
long would hold up the whole batch: lane sessions have a short ``lock_timeout`` and
``statement_timeout`` (`BatchSettings`), so such a step fails in the batch and runs alone, where
these limits do not apply.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import generators
from psycopg.pq import DiagnosticField, ExecStatus, TransactionStatus
from psycopg.pq.abc import PGresult

from dfc import sqllex
from dfc.plan.model import Plan
from dfc.plan.nodes import Sql
from dfc.runtime import faults
from dfc.runtime.state import NodeRecord, RunSql
from dfc.runtime.steps import (
    SYNTAX_ERROR,
    Chain,
    Lease,
    Written,
    checkpoint,
    classify,
    with_seq,
)
from dfc.runtime.values import configure_loaders, result_of
from dfc.store.db import RESET_SETTINGS
from dfc.store.inline import AConn
from dfc.store.node_state import CHECKPOINT_STATEMENT, PREPARE_CHECKPOINT

_BATCHABLE = frozenset({"SELECT", "WITH", "INSERT", "UPDATE", "DELETE", "MERGE", "VALUES", "TABLE"})
_SAVEPOINT = "dfc_batch_step"
_RESETS = len(sqllex.split(sqllex.lex(RESET_SETTINGS)))
_KNOWN_QUERIES = 4096  # statement counts remembered per worker


@dataclass(frozen=True, slots=True)
class BatchSettings:
    """How steps are batched; `dfc.runtime.worker.WorkerOptions` holds the worker's."""

    max_steps: int = 16  # steps per transaction (subtransactions past 64 slow every snapshot)
    lanes: int = 2  # connections running batches at once (one commits while another runs)
    lock_timeout_ms: int = 50  # a step waiting longer for a lock runs alone
    statement_timeout_ms: int = 250  # a statement running longer makes its step run alone


@dataclass(frozen=True, slots=True)
class Alone:
    """The step ``action`` must run alone, on the single-step path."""

    action: RunSql


@dataclass(eq=False, slots=True)
class _Entry:
    """A step handed to the batcher, and the run waiting for its outcome."""

    lease: Lease
    action: RunSql
    chain: Chain
    future: asyncio.Future[Written | Alone]
    started: float
    statements: int
    sent: bool = False  # its step ran in a transaction: it can no longer be taken back


@dataclass(eq=False, slots=True)
class _Ran:
    """A step that ran in the open transaction and waits for its checkpoint."""

    entry: _Entry
    record: NodeRecord
    ms: float


@dataclass(slots=True)
class _Round:
    """What one round trip carries."""

    ran: list[_Ran]
    starting: list[_Entry] = field(default_factory=list)
    # index in ran -> its next step and that step's statement count (read once: another lane
    # may mark the node to run alone meanwhile)
    chained: dict[int, tuple[RunSql, int]] = field(default_factory=dict)
    ending: dict[int, str] = field(default_factory=dict)  # index in ran -> ends its instance


class StepBatches:
    """The worker's batcher: `run` a step through a batch; `start` and `stop` the lanes."""

    def __init__(self, url: str, conn_kwargs: dict[str, Any], settings: BatchSettings) -> None:
        self.url = url
        self.settings = settings
        options = (
            f"{conn_kwargs.get('options', '')} -c lock_timeout={settings.lock_timeout_ms}"
            f" -c statement_timeout={settings.statement_timeout_ms}"
        )
        self._kwargs = {**conn_kwargs, "options": options.strip()}
        self._queue: deque[_Entry] = deque()
        self._work = asyncio.Event()
        self._lanes: list[asyncio.Task[None]] = []
        self._statements: dict[str, int | None] = {}  # query -> statement count; None: alone

    # -- the runs' side ---------------------------------------------------------------------

    def statements(self, plan: Plan, action: RunSql) -> int | None:
        """How many statements the step has when it may run in a batch; None when it must run
        alone (see the module docstring)."""
        if action.autocommit or action.timeout_s is not None or not self._lanes:
            return None
        node = plan.nodes.get(action.node_id)
        query = node.config.query if node is not None and isinstance(node.config, Sql) else None
        if query is None:
            return None
        if query in self._statements:
            return self._statements[query]
        count = batchable(query)
        if len(self._statements) >= _KNOWN_QUERIES:
            self._statements.clear()
        self._statements[query] = count
        return count

    def _solo(self, entry: _Entry) -> None:
        """The entry's node runs alone from now on."""
        self._solo_node(entry.lease.plan, entry.action.node_id)

    def _solo_node(self, plan: Plan, node_id: str) -> None:
        node = plan.nodes.get(node_id)
        if node is not None and isinstance(node.config, Sql):
            self._statements[node.config.query] = None

    async def run(self, lease: Lease, action: RunSql, chain: Chain) -> Written | Alone:
        """Run ``action`` (which `statements` accepts) in a batch, and the steps that follow
        it as long as ``chain`` offers batchable ones; the last one's outcome, or `Alone`:
        the step to run on the single-step path. Raises what the single-step path raises."""
        count = self.statements(lease.plan, action)
        assert count is not None
        entry = _Entry(
            lease,
            action,
            chain,
            asyncio.get_running_loop().create_future(),
            time.perf_counter(),
            count,
        )
        self._queue.append(entry)
        self._work.set()
        try:
            return await entry.future
        except asyncio.CancelledError:
            if entry.sent:
                chain.uncertain()  # the step may commit with its batch
            with contextlib.suppress(ValueError):
                self._queue.remove(entry)
            raise

    # -- lanes ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the lanes (in the worker's event loop)."""
        for i in range(max(1, self.settings.lanes)):
            self._lanes.append(asyncio.create_task(self._lane(), name=f"dfc-batch-{i}"))

    async def stop(self) -> None:
        """Stop the lanes; a batch in flight rolls back and its runs get a cancellation."""
        for lane in self._lanes:
            lane.cancel()
        await asyncio.gather(*self._lanes, return_exceptions=True)
        self._lanes.clear()
        while self._queue:
            self._queue.popleft().future.cancel()

    def _take(self, n: int) -> list[_Entry]:
        out: list[_Entry] = []
        while self._queue and len(out) < n:
            entry = self._queue.popleft()
            if not entry.future.done():
                out.append(entry)
        return out

    async def _lane(self) -> None:
        conn: AConn | None = None
        ran: list[_Ran] = []
        try:
            while True:
                if not ran and not self._queue:
                    self._work.clear()
                    await self._work.wait()
                    continue
                try:
                    if conn is None or conn.closed:
                        conn = await self._connect()
                    ran = await self._round(conn, ran)
                except Exception:
                    # The connection or the server went away, or a fault was injected: the
                    # round's runs got the error (as on the single-step path, they are
                    # abandoned and their instances reloaded from what committed).
                    ran = []
                    if conn is not None:
                        await conn.close()
                    conn = None
                    await asyncio.sleep(0.1)
        finally:
            for r in ran:
                r.entry.future.cancel()
            if conn is not None:
                await conn.close()

    async def _connect(self) -> AConn:
        conn = await psycopg.AsyncConnection.connect(self.url, **self._kwargs)
        configure_loaders(conn)
        await _send_ok(conn, PREPARE_CHECKPOINT)
        return conn

    # -- one round trip ---------------------------------------------------------------------

    async def _round(self, conn: AConn, ran: list[_Ran]) -> list[_Ran]:
        """Commit ``ran`` (the steps that ran in the open transaction) and start the next ones,
        in one round trip; returns the steps that ran in the new transaction."""
        rnd = _Round(ran)
        try:
            return await self._exchange(conn, rnd)
        except BaseException as e:
            for entry in [r.entry for r in ran] + rnd.starting:
                if isinstance(e, Exception):
                    _settle(entry, exc=e)
                else:
                    entry.future.cancel()
            raise

    async def _exchange(self, conn: AConn, rnd: _Round) -> list[_Ran]:
        ran = rnd.ran
        for i, r in enumerate(ran):
            if r.entry.future.done():
                continue  # its run was cancelled: commit the step, go no further
            nxt = r.entry.chain.next_step(r.record)
            if nxt is None:
                end = r.entry.chain.ending(r.record)
                if end is not None:  # the instance's end commits with its last step
                    rnd.ending[i] = end
                continue
            count = self.statements(r.entry.lease.plan, nxt)
            if count is not None:
                rnd.chained[i] = (nxt, count)
        rnd.starting = self._take(self.settings.max_steps - len(rnd.chained))
        parts: list[str] = []
        for i, r in enumerate(ran):
            parts.append(checkpoint(r.entry.lease, r.record, prepared=True))
            if i in rnd.ending:
                parts.append(rnd.ending[i])
        if ran:
            parts.append("COMMIT")
        starts = [nxt for nxt, _ in rnd.chained.values()] + [e.action for e in rnd.starting]
        begin = bool(starts) and (
            bool(ran) or conn.info.transaction_status == TransactionStatus.IDLE
        )
        if begin:
            parts.append("BEGIN")
        # A transaction of one step needs no savepoint: a failure rolls back nothing else.
        bare = begin and len(starts) == 1
        parts.extend(_step(action, savepoint=not bare) for action in starts)
        if ran:
            faults.fault("before_commit")  # nothing of these steps is committed yet
        for entry in rnd.starting:
            entry.sent = True  # from here on, its run cannot take it back
        results = await _send(conn, ";".join(parts))
        if _unparsed(results):
            # The server could not parse the string, so it ran none of it (checkpoints and
            # COMMIT included): a step's text does not parse. Every step of the round runs
            # alone, where the one that does not parse fails as the user's error.
            await _rollback(conn)
            for r in ran:
                _settle(r.entry, alone=r.entry.action)
            for i, (nxt, _) in rnd.chained.items():
                self._solo_node(ran[i].entry.lease.plan, nxt.node_id)
            for entry in rnd.starting:
                self._solo(entry)
                _settle(entry, alone=entry.action)
            return []
        pos = 0
        if ran:
            pos = self._committed(conn, rnd, results)
            if pos < 0:
                await _rollback(conn)
                if not await _prepared(conn):  # a step deallocated it (through a function)
                    await _send_ok(conn, PREPARE_CHECKPOINT)
                return []
            faults.fault("after_commit")
            for i, (nxt, count) in rnd.chained.items():
                entry = ran[i].entry
                entry.action, entry.started, entry.statements = nxt, time.perf_counter(), count
        steps = [ran[i].entry for i in rnd.chained] + rnd.starting
        if not steps:
            return []
        return await self._ran(conn, steps, results, pos + begin, bare=bare)

    def _committed(self, conn: AConn, rnd: _Round, results: list[PGresult]) -> int:
        """Settle the steps of ``rnd.ran`` from the checkpoints' and COMMIT's results; the
        position after COMMIT, or -1 when nothing committed (the steps are sent again)."""
        ran = rnd.ran
        rows: list[PGresult] = []  # the checkpoints' results
        pos = 0
        for i in range(len(ran)):
            for k in range(2 if i in rnd.ending else 1):
                res = results[pos] if pos < len(results) else None
                pos += 1
                if res is not None and res.status == ExecStatus.TUPLES_OK:
                    if k == 0:
                        rows.append(res)
                    continue
                error = _error(conn, res)
                for j, other in enumerate(ran):
                    if j == i:
                        _settle(other.entry, exc=classify(error) or error)
                    else:
                        self._again(other.entry)
                for entry in rnd.starting:
                    self._again(entry)
                return -1
        commit = results[pos] if pos < len(results) else None
        if commit is None or commit.status != ExecStatus.COMMAND_OK:
            # A deferred constraint (or the like) refused the commit of the whole batch: which
            # step broke it is known only when each runs alone.
            for r in ran:
                self._solo(r.entry)
                _settle(r.entry, alone=r.entry.action)
            for entry in rnd.starting:
                self._again(entry)
            return -1
        for i, r in enumerate(ran):
            row = rows[i]
            seq, pokes = int(row.get_value(0, 0) or 0), int(row.get_value(0, 1) or 0)
            written = Written(with_seq(r.record, seq), pokes, r.ms)
            chained = rnd.chained.get(i)
            if chained is None:
                if i in rnd.ending:
                    r.entry.chain.ended()
                _settle(r.entry, written=written)
            else:
                r.entry.chain.committed(written, chained[0].key)
        return pos + 1

    async def _ran(
        self,
        conn: AConn,
        steps: Sequence[_Entry],
        results: list[PGresult],
        pos: int,
        *,
        bare: bool,
    ) -> list[_Ran]:
        """Read the results of the steps started at ``pos`` (``bare``: one step, without a
        savepoint); the steps that ran. A failing step is rolled back to its savepoint and
        runs alone; those after it are sent again."""
        done: list[tuple[_Entry, PGresult]] = []
        around = 0 if bare else 1  # SAVEPOINT before the statements, RELEASE after
        for k, entry in enumerate(steps):
            entry.sent = True
            size = entry.statements + 2 * around + _RESETS
            chunk = results[pos : pos + size]
            if len(chunk) == size and all(r.status != ExecStatus.FATAL_ERROR for r in chunk):
                if (
                    len(results) != pos + size
                    if bare
                    else chunk[entry.statements + 1].command_status != b"RELEASE"
                ):
                    # The statements were not counted right: nothing of this may commit.
                    await _rollback(conn)
                    for e in [d[0] for d in done] + list(steps[k:]):
                        self._solo(e)
                        _settle(e, alone=e.action)
                    return []
                done.append((entry, chunk[entry.statements - 1 + around]))
                pos += size
                continue
            # The step failed: it alone rolls back, and runs alone; the later ones go again.
            self._solo(entry)
            _settle(entry, alone=entry.action)
            for later in steps[k + 1 :]:
                self._again(later)
            if not done:
                await _rollback(conn)
                return []
            await _send_ok(conn, f"ROLLBACK TO SAVEPOINT {_SAVEPOINT};RELEASE {_SAVEPOINT}")
            break
        faults.fault("after_step_sql")
        out: list[_Ran] = []
        for entry, res in done:
            result = await result_of(conn, res)
            rec = NodeRecord(
                key=entry.action.key,
                node_id=entry.action.node_id,
                status="completed",
                result=result,
            )
            out.append(_Ran(entry, rec, (time.perf_counter() - entry.started) * 1000))
        return out

    def _again(self, entry: _Entry) -> None:
        """Send a step again (in the next batch): its first run rolled back."""
        if not entry.future.done():
            entry.sent = False
            self._queue.appendleft(entry)
            self._work.set()


def batchable(query: str) -> int | None:
    """How many statements a step's text has, when each may run in a batch (`_BATCHABLE`);
    None when the step must run alone. References substituted later change neither."""
    sts = sqllex.split(sqllex.lex(query))
    return len(sts) if sts and all(st.first_word in _BATCHABLE for st in sts) else None


def _step(action: RunSql, *, savepoint: bool) -> str:
    # The newline ends a line comment at the end of the step's text.
    if not savepoint:
        return f"{action.sql}\n;{RESET_SETTINGS}"
    return f"SAVEPOINT {_SAVEPOINT};{action.sql}\n;RELEASE {_SAVEPOINT};{RESET_SETTINGS}"


def _settle(
    entry: _Entry,
    *,
    written: Written | None = None,
    alone: RunSql | None = None,
    exc: BaseException | None = None,
) -> None:
    if entry.future.done():
        return
    if exc is not None:
        entry.future.set_exception(exc)
    elif alone is not None:
        entry.future.set_result(Alone(alone))
    else:
        assert written is not None
        entry.future.set_result(written)


def _unparsed(results: list[PGresult]) -> bool:
    """Whether the server refused a whole query string as unparsable (one error result)."""
    return (
        len(results) == 1
        and results[0].status == ExecStatus.FATAL_ERROR
        and results[0].error_field(DiagnosticField.SQLSTATE) == SYNTAX_ERROR.encode()
    )


def _error(conn: AConn, res: PGresult | None) -> psycopg.Error:
    if res is None:
        return psycopg.OperationalError("the batch ended without a result")
    return psycopg.errors.error_from_result(res, encoding=conn.info.encoding)


async def _send(conn: AConn, query: str) -> list[PGresult]:
    """Send ``query`` (simple protocol) and return every result, errors included, without
    raising: the results before an error are the steps that ran."""
    async with conn.lock:
        conn.pgconn.send_query(query.encode(conn.info.encoding))
        return await conn.wait(generators.execute(conn.pgconn))


async def _send_ok(conn: AConn, query: str) -> None:
    """`_send` for statements that must succeed (raises the first error)."""
    for res in await _send(conn, query):
        if res.status == ExecStatus.FATAL_ERROR:
            raise _error(conn, res)


async def _prepared(conn: AConn) -> bool:
    """Whether the session still has the prepared checkpoint."""
    (res,) = await _send(
        conn, f"SELECT 1 FROM pg_prepared_statements WHERE name = '{CHECKPOINT_STATEMENT}'"
    )
    return res.status == ExecStatus.TUPLES_OK and res.ntuples == 1


async def _rollback(conn: AConn) -> None:
    if conn.info.transaction_status != TransactionStatus.IDLE:
        await _send_ok(conn, "ROLLBACK")
