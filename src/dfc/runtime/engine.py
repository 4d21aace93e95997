"""Running one claimed instance: evaluate, perform the actions, remember the records, repeat.

An `InstanceRun` exists while its worker holds the instance's lease. Its records and unconsumed
signals are loaded once, when the instance is claimed (the recovery path); from then on they
live in memory and every step's outcome is added to them, so advancing the graph costs no
database look-ups. Steps run as asyncio tasks (branches of a JOIN or RACE concurrently, each on
a pooled connection; the step of an instance that runs one at a time in the worker's batches,
`dfc.runtime.batch`); the run waits for the first to finish, for a poke (a signal arrived, the
instance was cancelled) or for its next timer.

When nothing can run (every branch waits for a timer or a signal) the instance is released with
``run_at`` = its next timer, or NULL when only a signal can wake it. A busy instance is released
after a slice of steps when other instances are queued, so one hot loop cannot starve the rest.

Failures are sorted into three kinds. The user's (a SQL error, a 5xx) are node records and the
machine decides what they mean. The fence's (`LeaseLost`: cancelled or taken over; `Conflict`:
someone else wrote a final record) stop the run or make it reload its state from the database.
Anything else (a lost connection, an injected fault) abandons the run; the instance is released
to run again shortly, and its uncommitted step simply runs again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import psycopg

from dfc.plan.model import Plan
from dfc.runtime import children, faults, machine, run_as, steps, tracing
from dfc.runtime.batch import StepBatches
from dfc.runtime.clock import Clock
from dfc.runtime.frontier import Memo
from dfc.runtime.keys import node_id
from dfc.runtime.state import (
    Cancel,
    Evaluation,
    NodeRecord,
    Prune,
    RunHttp,
    RunSql,
    Signal,
    StartChild,
    Store,
)
from dfc.runtime.steps import Conflict, Lease, LeaseLost, Written
from dfc.store import instances, node_state, queue
from dfc.store.inline import AConn
from dfc.store.roles import RunAs

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

    from dfc.runtime.logs import StepLog


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """Tuning of instance runs; the defaults suit most deployments."""

    hold_seconds: float = (
        0.5  # keep an instance whose next timer is this close instead of releasing it
    )
    slice_steps: int = 200  # yield a busy instance after this many steps when others wait
    slice_ms: float = 500.0  # ... or after this long
    history_limit: int = 10  # loop iterations whose node records are kept
    retry_delay: float = (
        2.0  # seconds before an instance abandoned after an infrastructure error runs again
    )


class Host(Protocol):
    """What an instance run needs from its worker."""

    owner: str
    pool: AsyncConnectionPool[Any]
    settings: EngineSettings
    clock: Clock  # the time the machine is evaluated at and timers are released until
    log: StepLog
    batches: StepBatches | None  # None: every step runs on the single-step path
    # (workflow, version, node id) of steps whose text the server could not parse: they never
    # share a query string (kept by the worker, as an instance is run again by a new run).
    unchainable: set[tuple[str, int, str]]

    def backlog(self) -> bool: ...

    async def http(self, request: Any) -> Any: ...


@dataclass(slots=True)
class Claimed:
    """An instance as claimed: its row, and the state loaded for it. ``run_as`` is the role its
    steps run as when that is not the worker's own (None: the worker's)."""

    instance_id: str
    workflow: str
    version: int
    label: str | None
    vars: Mapping[str, Any]
    pokes: int
    plan: Plan
    records: dict[str, NodeRecord] = field(default_factory=dict)
    signals: list[Signal] = field(default_factory=list)
    run_as: RunAs | None = None


# -- loading state ----------------------------------------------------------------------------


def record_from_row(row: Sequence[Any]) -> NodeRecord:
    """A `NodeRecord` from a record row of `dfc.store.node_state` without its instance id."""
    key, node_id, status, result, error, wake_epoch, attempt, detail, seq = row
    wake_at = None if wake_epoch is None else datetime.fromtimestamp(round(wake_epoch, 6), UTC)
    return NodeRecord(
        key=key,
        node_id=node_id,
        status=status,
        result=result,
        error=error,
        wake_at=wake_at,
        attempt=attempt or 1,
        detail=detail or {},
        seq=seq,
    )


def signal_from_row(row: Sequence[Any]) -> Signal:
    """A `Signal` from a signal row of `dfc.store.signals` without its instance id."""
    seq, name, payload = row
    return Signal(seq=seq, name=name, payload=payload)


async def load_state(conn: AConn, claimed: Sequence[Claimed]) -> None:
    """Fill in records and unconsumed signals of freshly claimed instances (one round trip)."""
    if not claimed:
        return
    by_id = {c.instance_id: c for c in claimed}
    record_rows, signal_rows = await node_state.load(conn, list(by_id))
    for row in record_rows:
        rec = record_from_row(row[1:])
        by_id[row[0]].records[rec.key] = rec
    for row in signal_rows:
        by_id[row[0]].signals.append(signal_from_row(row[1:]))


# -- one instance ----------------------------------------------------------------------------


class InstanceRun:
    """The in-memory execution of one instance while its lease is held."""

    def __init__(
        self,
        host: Host,
        claimed: Claimed,
        *,
        on_evaluate: Callable[[InstanceRun, Evaluation], None] | None = None,
    ) -> None:
        self.host = host
        self.claimed = claimed
        self.lease = Lease(claimed.instance_id, host.owner, claimed.plan, claimed.run_as)
        self.records: dict[str, NodeRecord] = claimed.records
        self.signals: list[Signal] = claimed.signals
        self.pokes_seen = claimed.pokes
        self.inflight: dict[str, asyncio.Task[Written | None]] = {}
        self.cancelled_keys: set[str] = set()
        self.durations: dict[str, float] = {}  # key -> ms, for live trees
        self.run_span = tracing.OFF  # this run's span, when traced
        self.spans: dict[str, Any] = {}  # key -> its step's span while it runs (when traced)
        self.on_evaluate = on_evaluate
        self.last: Evaluation | None = None
        self.outcome: str | None = None  # completed | failed | released | lost | abandoned
        self.released = False  # the lease was given back (see `_release`)
        self._wake = asyncio.Event()
        self._poked = False
        self._lost = False
        self._stopping = False
        self._steps = 0
        self._internal_error: dict[str, Any] | None = None
        # A pooled connection kept for the whole run: sequential steps (the common case) reuse
        # it instead of going through the pool each time; concurrent branches take others.
        self._lane: AConn | None = None
        self._lane_busy = False
        self._resync_needed = False
        self._chain_budget = host.settings.slice_steps  # chained steps before the loop looks
        # The look-ahead evaluation that ended the instance, by the key it assumed committed
        # (`ending`), and whether that end was committed with the step (`ended`).
        self._ending: tuple[str, Evaluation] | None = None
        self._ended = False
        self._memo = Memo()  # lets each evaluation skip the finished start of sequences

    @property
    def instance_id(self) -> str:
        return self.claimed.instance_id

    # -- signals from the worker --------------------------------------------------------------

    def poke(self) -> None:
        """Something changed in the database for this instance (signal, cancel): look again."""
        self._poked = True
        self._wake.set()

    def lose(self) -> None:
        """The lease is gone (heartbeat found it missing): stop at once."""
        if self._ended:
            return  # it is gone because this run finished the instance
        self._lost = True
        for task in self.inflight.values():
            task.cancel()
        self._wake.set()

    def stop(self) -> None:
        """Graceful shutdown: start no new step, release when the running ones are done."""
        self._stopping = True
        self._wake.set()

    # -- the loop ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[AConn]:
        if self._lane is not None and not self._lane_busy and not self._lane.closed:
            self._lane_busy = True
            try:
                yield self._lane
            finally:
                self._lane_busy = False
        else:
            async with self.host.pool.connection() as conn:
                yield conn

    async def run(self) -> str:
        """Drive the instance until it finishes, waits, yields or is lost; returns how it ended."""
        log = self.host.log
        try:
            self._lane = await self.host.pool.getconn()
        except Exception as e:
            log.error(self.instance_id, f"no database connection: {e}")
            return "abandoned"
        try:
            with tracing.instance_run(self.lease) as self.run_span:
                outcome = await self._run()
                self.run_span.outcome(outcome)
                return outcome
        finally:
            lane, self._lane = self._lane, None
            await self.host.pool.putconn(lane)

    async def _run(self) -> str:
        log = self.host.log
        try:
            self.outcome = await self._loop()
        except LeaseLost:
            self.outcome = "lost"
            log.event(self.instance_id, "lease_lost", "instance was cancelled or taken over")
        except asyncio.CancelledError:
            self.outcome = "abandoned"
            raise
        except Exception as e:  # infrastructure: the step's transaction rolled back
            self.outcome = "abandoned"
            log.error(self.instance_id, f"{type(e).__name__}: {e}".strip())
            await self._cancel_all()
            with contextlib.suppress(Exception):
                await self._release(
                    self.host.clock.now() + timedelta(seconds=self.host.settings.retry_delay)
                )
        finally:
            await self._cancel_all()
        return self.outcome or "abandoned"

    async def _loop(self) -> str:
        settings = self.host.settings
        slice_start = time.monotonic()
        yielding = False
        conflicts = 0
        while True:
            if self._lost:
                raise LeaseLost(self.instance_id)
            if self._resync_needed:
                self._resync_needed = False
                await self._resync()
            elif self._poked:
                await self._refresh()
            ev = self._evaluate()
            if ev is None:
                await self._cancel_all()
                await self._write_finish("failed", None, self._internal_error, False)
                return "failed"
            stores, cancels, runs, prune = _split(ev.actions)
            if ev.status != "running":
                # The deciding evaluation may still carry records (a timer that fired just now).
                await self._cancel_all()
                stores = [s for s in stores if not _same(self.records.get(s.record.key), s.record)]
                if stores or prune:
                    await self._store(stores, prune)
                await self._finish(ev)
                return ev.status
            for c in cancels:
                await self._cancel(c.keys)
                await self._cancel_children(c.keys)
            # Work the machine no longer asks for (a race lost, a timeout expired) is cancelled
            # even without an explicit Cancel: the state-machine contract allows it.
            wanted = {a.key for a in runs}
            stale = [k for k in self.inflight if k not in wanted]
            if stale:
                await self._cancel(stale)
            stores = [s for s in stores if not _same(self.records.get(s.record.key), s.record)]
            if stores or prune:
                try:
                    await self._store(stores, prune)
                    conflicts = 0
                except Conflict:
                    conflicts += 1
                    if conflicts > 3:  # the same write refused again and again: not a race
                        raise
                    await self._resync()
                    continue
            if not (self._stopping or yielding):
                for action in runs:
                    if action.key not in self.inflight and action.key not in self.records:
                        self._spawn(action)
            if stores or prune:
                continue  # new records may enable more
            now = self.host.clock.now()
            if not self.inflight:
                if self._stopping or yielding:
                    await self._release(now, notify=yielding)
                    return "released"
                wake = ev.next_wake
                if wake is not None and (wake - now).total_seconds() <= settings.hold_seconds:
                    await self._wait((wake - now).total_seconds())
                    continue
                await self._release(wake)
                return "released"
            timeout = (
                None if ev.next_wake is None else max(0.0, (ev.next_wake - now).total_seconds())
            )
            await self._wait(timeout)
            await self._harvest()
            self._chain_budget = self._steps + settings.slice_steps
            if (
                not yielding
                and self.host.backlog()
                and (
                    self._steps >= settings.slice_steps
                    or (time.monotonic() - slice_start) * 1000 >= settings.slice_ms
                )
            ):
                yielding = True

    def _replay(self, records: Mapping[str, NodeRecord]) -> Evaluation:
        """The machine's evaluation of the claimed instance over ``records``, now."""
        c = self.claimed
        return machine.evaluate(
            c.plan,
            instance_id=c.instance_id,
            label=c.label,
            vars=c.vars,
            records=records,
            signals=self.signals,
            now=self.host.clock.now(),
            history_limit=self.host.settings.history_limit,
            memo=self._memo,
        )

    def _evaluate(self) -> Evaluation | None:
        try:
            ev = self._replay(self.records)
        except Exception as e:
            # A bug in the state machine or a plan it cannot execute: retrying would fail the
            # same way forever, so the instance fails with the reason.
            self.host.log.error(self.instance_id, f"evaluation failed: {type(e).__name__}: {e}")
            self._internal_error = {
                "message": f"internal error while evaluating the workflow: {type(e).__name__}: {e}"
            }
            return None
        self.last = ev
        if self.on_evaluate is not None:
            self.on_evaluate(self, ev)
        return ev

    # -- performing actions -------------------------------------------------------------------

    async def _store(self, stores: list[Store], prune: list[str]) -> None:
        async with self._connection() as conn:
            written, pokes = await steps.store_records(conn, self.lease, stores, prune)
        for key in prune:
            self.records.pop(key, None)
        consumed = {s.consume_signal for s in stores if s.consume_signal is not None}
        if consumed:
            self.signals = [s for s in self.signals if s.seq not in consumed]
        for rec in written:
            self.records[rec.key] = rec
            self.host.log.record(self.instance_id, rec, self._kind(rec.key))
        self._note_pokes(pokes)

    def _spawn(self, action: RunSql | RunHttp | StartChild) -> None:
        task = asyncio.get_running_loop().create_task(
            self._perform(action), name=f"{self.instance_id}/{action.key}"
        )
        self.inflight[action.key] = task

    async def _perform(self, action: RunSql | RunHttp | StartChild) -> Written | None:
        if isinstance(action, StartChild):
            async with self._connection() as conn:
                return await children.start(conn, self.lease, action)
        if self.run_span.span is None:  # not traced: nothing more per step
            return await self._perform_step(action)
        self.spans[action.key] = tracing.start_step(
            self.run_span, self.lease, action.key, action.node_id
        )
        written = None
        try:
            written = await self._perform_step(action)
            return written
        finally:
            # The key this task ended on (a chain moved it along, see `committed`).
            me = asyncio.current_task()
            key = next((k for k, t in self.inflight.items() if t is me), action.key)
            rec = None if written is None else written.record
            tracing.end_step(self.spans.pop(key, None), rec if rec and rec.key == key else None)

    async def _perform_step(self, action: RunSql | RunHttp) -> Written | None:
        if isinstance(action, RunSql):
            batches = self.host.batches
            if (
                batches is not None
                and self.lease.run_as is None
                and len(self.inflight) == 1  # a JOIN or RACE may cancel a branch: alone
                and batches.statements(self.lease.plan, action) is not None
            ):
                out = await batches.run(self.lease, action, self)
                if isinstance(out, Written):
                    return out
                action = out.action  # to run alone
            async with self._connection() as conn:
                if self.lease.run_as is not None:
                    return await run_as.run_sql(conn, self.lease, action)
                return await steps.run_sql(conn, self.lease, action, chain=self)
        started = time.perf_counter()
        envelope: Any = None
        error: dict[str, Any] | None = None
        try:
            request = tracing.with_traceparent(self.spans.get(action.key), action.request)
            envelope = await self.host.http(request)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            error = http_error(e)
        ms = (time.perf_counter() - started) * 1000
        async with self._connection() as conn:
            return await steps.checkpoint_http(conn, self.lease, action, envelope, error, ms)

    # -- chaining (steps.Chain): a step's commit and the next step's start in one round trip --

    def next_step(self, done: NodeRecord) -> RunSql | None:
        """Evaluate as if ``done`` were committed; the next step if the instance simply goes on
        with one transactional SQL step. Anything else (a poke, a stop, several branches, a
        record to store, the end of a fairness slice) returns to the loop."""
        if (
            self._lost
            or self._poked
            or self._stopping
            or self._resync_needed
            or len(self.inflight) != 1
            or self._steps >= self._chain_budget
        ):
            return None
        records = dict(self.records)
        records[done.key] = steps.with_seq(done, _PROVISIONAL_SEQ)
        try:
            ev = self._replay(records)
        except Exception:
            return None  # the loop evaluates again and reports it
        if ev.status != "running":
            if not ev.actions:
                self._ending = (done.key, ev)
            return None
        if len(ev.actions) != 1:
            return None
        (action,) = ev.actions
        if (
            not isinstance(action, RunSql)
            or action.autocommit
            or action.key in records
            or (self.claimed.workflow, self.claimed.version, action.node_id)
            in self.host.unchainable
        ):
            return None
        self.last = ev
        if self.on_evaluate is not None:
            self.on_evaluate(self, ev)
        return action

    def committed(self, written: Written, next_key: str) -> None:
        """A chained step committed and ``next_key`` runs in the same task."""
        key = written.record.key
        task = self.inflight.pop(key, None)
        if task is not None:
            self.inflight[next_key] = task
        if key in self.spans:
            tracing.end_step(self.spans.pop(key), written.record)
            self.spans[next_key] = tracing.start_step(
                self.run_span, self.lease, next_key, node_id(next_key)
            )
        self._take(written)

    def uncertain(self) -> None:
        self._resync_needed = True

    def unchainable(self, node_id: str) -> None:
        self.host.unchainable.add((self.claimed.workflow, self.claimed.version, node_id))

    def ending(self, done: NodeRecord) -> str | None:
        """After `next_step` returned None for ``done``: the statement that ends the instance
        when ``done`` is its last record and nothing else is to be stored, else None."""
        if self._ending is None or self._ending[0] != done.key or self._lost or self._poked:
            return None
        ev = self._ending[1]
        return instances.finish_sql(
            self.instance_id, self.host.owner, ev.status, ev.result, ev.error, _compensated(ev)
        )

    def ended(self) -> None:
        """The statement of `ending` committed with the step: the instance is finished."""
        self._ended = True

    def _take(self, written: Written) -> None:
        rec = written.record
        self._steps += 1
        self.records[rec.key] = rec
        self.durations[rec.key] = written.duration_ms
        self._note_pokes(written.pokes)
        self.host.log.step(self.instance_id, rec, written.duration_ms, self._kind(rec.key))

    async def _cancel(self, keys: Sequence[str]) -> None:
        tasks = []
        for key in keys:
            self.cancelled_keys.add(key)
            task = self.inflight.get(key)
            if task is not None and not task.done():
                task.cancel()
                tasks.append(task)
        if tasks:
            await asyncio.wait(tasks)
            await self._harvest()

    async def _cancel_children(self, keys: Sequence[str]) -> None:
        """Cancel the children of call steps the machine stopped waiting for (a lost race, an
        expired timeout); the children of a parent that ends are the database's (0013)."""
        waited = children.waited_children(self.records, keys)
        if waited:
            async with self._connection() as conn:
                await children.cancel(conn, self.instance_id, waited)

    async def _cancel_all(self) -> None:
        tasks = [t for t in self.inflight.values() if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self.inflight.clear()

    async def _wait(self, timeout: float | None) -> None:
        """Until a step finishes, a poke arrives, or ``timeout`` seconds pass."""
        if self._wake.is_set():
            self._wake.clear()
            return
        waiter = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait(
                [waiter, *self.inflight.values()],
                timeout=timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            waiter.cancel()
        self._wake.clear()

    async def _harvest(self) -> None:
        """Take the outcomes of finished steps into memory."""
        for key, task in list(self.inflight.items()):
            if not task.done():
                continue
            del self.inflight[key]
            if task.cancelled():
                continue
            exc = task.exception()
            if exc is not None:
                if isinstance(exc, Conflict):
                    if key in self.cancelled_keys:
                        continue  # a cancelled race loser lost to its own cancellation record
                    await self._resync()
                    continue
                raise exc
            written = task.result()
            if written is not None:
                self._take(written)

    def _kind(self, key: str) -> str:
        node = self.claimed.plan.nodes.get(node_id(key))
        return node.type if node is not None else "node"

    def _note_pokes(self, pokes: int) -> None:
        # A signal counter that moved since we last looked means a signal arrived.
        if pokes != self.pokes_seen:
            self._poked = True

    async def _refresh(self) -> None:
        """Reread the queue row (still ours? signals?) and the unconsumed signals."""
        self._poked = False
        async with self._connection() as conn:
            lease, rows = await queue.lease_and_signals(conn, self.instance_id)
        if lease is None or lease[1] != self.host.owner:
            raise LeaseLost(self.instance_id)
        self.pokes_seen = lease[0]
        self.signals = [signal_from_row(r[1:]) for r in rows]

    async def _resync(self) -> None:
        """Reload records and signals from the database after a conflicting write."""
        async with self._connection() as conn:
            rows = await node_state.records(conn, self.instance_id)
        self.records = {r[1]: record_from_row(r[1:]) for r in rows}
        await self._refresh()

    # -- leaving ------------------------------------------------------------------------------

    async def _release(self, run_at: datetime | None, *, notify: bool = False) -> None:
        faults.fault("before_release")
        async with self._connection() as conn:
            await queue.release(
                conn,
                self.instance_id,
                self.host.owner,
                pokes_seen=self.pokes_seen,
                run_at=run_at,
                notify=notify,
            )
        self.released = True
        self.host.log.released(self.instance_id, run_at, self.last)

    async def _finish(self, ev: Evaluation) -> None:
        if self._ended:  # written with the last step, in its batch
            self.host.log.finished(self.instance_id, ev.status, ev.error)
            return
        await self._write_finish(ev.status, ev.result, ev.error, _compensated(ev))

    async def _write_finish(self, status: str, result: Any, error: Any, compensated: bool) -> None:
        async with self._connection() as conn:
            try:
                await instances.finish(
                    conn, self.instance_id, self.host.owner, status, result, error, compensated
                )
            except psycopg.Error as e:
                raise steps.classify(e) or e from e
        self.host.log.finished(self.instance_id, status, error)


def _compensated(ev: Evaluation) -> bool:
    return bool(isinstance(ev.error, Mapping) and ev.error.get("compensated"))


_PROVISIONAL_SEQ = 1 << 62
"""The seq of a record about to commit, for a look-ahead evaluation: after every stored one."""


def http_error(e: BaseException) -> dict[str, Any]:
    """The stored error of a failed HTTP request (5xx, timeout, connection error)."""
    to_error = getattr(e, "to_error", None)
    if callable(to_error):
        out = to_error()
        if isinstance(out, dict):
            return out
    return {"message": str(e) or type(e).__name__, "kind": "http"}


def _split(
    actions: Sequence[Any],
) -> tuple[list[Store], list[Cancel], list[RunSql | RunHttp | StartChild], list[str]]:
    stores: list[Store] = []
    cancels: list[Cancel] = []
    runs: list[RunSql | RunHttp | StartChild] = []
    prune: list[str] = []
    for a in actions:
        if isinstance(a, Store):
            stores.append(a)
        elif isinstance(a, Cancel):
            cancels.append(a)
        elif isinstance(a, RunSql | RunHttp | StartChild):
            runs.append(a)
        elif isinstance(a, Prune):
            prune.extend(a.keys)
    return stores, cancels, runs, prune


def _same(old: NodeRecord | None, new: NodeRecord) -> bool:
    """Whether storing ``new`` would change nothing (the machine may repeat a decision)."""
    if old is None:
        return False
    return replace(new, seq=old.seq) == old
