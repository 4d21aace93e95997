"""The worker: claims instances from ``dfc.queue`` and runs them, many at once (SPEC §5.3, §8).

One asyncio process with a connection pool. It first takes its life lock (below) and registers
in ``dfc.workers``; then six loops cooperate:

- **claim**: while fewer than ``concurrency`` instances are held, claim due queue rows
  (``run_at <= now()``, ``FOR UPDATE SKIP LOCKED``, oldest first, a batch at a time), load their
  state in one round trip and start an `InstanceRun` for each. Then sleep until a notification,
  a freed slot, or the poll interval (the safety net for lost notifications).
- **listen**: ``LISTEN dfc_work`` on a connection of its own, which also holds the life lock. A
  notification names an instance: one this worker holds is poked (a signal or a cancel for it),
  any other means there is work. When the connection is lost the worker claims nothing until it
  has connected again and taken its lock again; then (the server may have restarted) it tests
  its idle pooled connections and gives back the leases of runs abandoned meanwhile.
- **reap**: at start, about every second and when told on the channel, free the instances of
  dead workers (`dfc.store.queue.reap`), so they resume at once instead of after their leases.
- **heartbeat**: every third of the lease, extend the leases of everything held, in one UPDATE;
  an instance missing from the result was cancelled or taken over, and its run stops.
- **housekeeping**: now and then, delete finished instances older than the retention setting.
- **schedules** (given a `Scheduler`, as ``dfc worker`` gives it): at each next fire time, and
  at least every five seconds, start the instances of the schedules that are due (every worker
  looks; row locks make each fire time start once).

Instances started from SQL (``df.start``) carry a pg_durable graph and no workflow version. The
worker compiles such a graph with the function the layer above gives it (``compile_graph``,
`GraphCompiler`: the runtime never imports the front end), deploys the plan as workflow
``sql:<label>`` (a version with the same hash is reused), pins the instance to that version and
runs it; a graph the checker refuses fails its instance with the diagnostics as text. A worker
without a compiler leaves such instances to one that has it, and says so once in its log.
Compiled graphs are remembered, so that starting the same graph again costs no compile.

Ready SQL steps of many instances run together in the worker's batches (`dfc.runtime.batch`,
``WorkerOptions.batch``; None turns them off): one round trip and one commit for many steps.

Steps of an instance started by another role than the worker's run as that role
(`dfc.runtime.run_as`); an instance whose role has no executors fails, saying what to grant.

While an instance is held its queue row's ``run_at`` equals ``lease_expires``. A worker holds a
session advisory lock for its whole life (`dfc.store.queue.lock_worker`): when its process dies,
PostgreSQL ends the session and frees the lock, and the next reaper of any worker takes it and
puts the dead worker's instances at the head of the queue. Leases are the safety net for a
worker whose session outlives it (a frozen process, a host cut off): its rows become due when
its leases expire, and its late checkpoints are refused by the lease fence.

`dfc run` runs its instance in its own process: the instance is created (or resumed) owned by
the run's worker (``adopt``), which alone may claim it while it lives.

Shutdown (`Worker.request_stop`, wired to SIGTERM and SIGINT by `run_worker`): stop claiming, let
running steps finish for up to ``shutdown_grace`` seconds, cancel the rest (their transactions
roll back), release every lease with ``run_at = now()`` so that another worker continues at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import secrets
import signal
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

import psycopg
from psycopg_pool import AsyncConnectionPool

from dfc.diagnostics import DfcError
from dfc.json_types import JSON
from dfc.plan.model import Plan, PlanFormatError
from dfc.runtime import faults, observe
from dfc.runtime.batch import BatchSettings, StepBatches
from dfc.runtime.clock import SYSTEM, Clock
from dfc.runtime.engine import Claimed, EngineSettings, InstanceRun, load_state
from dfc.runtime.logs import StepLog
from dfc.runtime.state import Evaluation, HttpRequest
from dfc.runtime.values import configure_loaders
from dfc.store import instances, queue, roles
from dfc.store.db import connect, worker_kwargs
from dfc.store.inline import AConn
from dfc.store.queue import ClaimRow
from dfc.store.registry import deploy, plan_rows
from dfc.store.roles import RunAs

GraphCompiler: TypeAlias = Callable[[str, str | None, Mapping[str, Any] | None], Plan | str]
"""Compiles the graph of an instance started from SQL: ``(graph, label, options)`` → the plan
of workflow ``sql:<label>``, or why there is none as text (``dfc.compiler.graph_compiler``).
``options`` are ``dfc.instances.options`` (``{"max_attempts": n, "max_backoff": s}``)."""


HttpSender: TypeAlias = Callable[[HttpRequest], Awaitable[dict[str, JSON]]]
"""Sends an HTTP step's request instead of the network and returns its envelope, raising
`dfc.runtime.http.HttpError` for a failure (the test kit's fakes, `dfc.testing`)."""


class Scheduler(Protocol):
    """Fires the schedules that are due (`dfc.runtime.schedules.Scheduler`). The layer above
    gives it, as it gives `GraphCompiler`: the schedules start instances through
    `dfc.runtime.instances`, which names this module's types."""

    def look(self, log: StepLog) -> float | None:
        """Start the instances of the fire times due now, logging what each did; the seconds
        until the next fire time (None: none is armed)."""

    def close(self) -> None:
        """Close its database session."""


_GraphKey: TypeAlias = tuple[str, str | None, str]  # graph, label, options as canonical JSON
_Compiled: TypeAlias = tuple[str, int] | str  # (workflow, version), or why it does not compile
_COMPILED_KEPT = 256  # compiled graphs remembered
_UNCOMPILED_CHECK_EVERY = 60.0  # seconds between looks for graphs this worker cannot compile
_SCHEDULE_RETRY_SECONDS = 0.2  # the shortest wait between two looks for due schedules
_POOL_RECONNECT_SECONDS = 3.0
"""How long the pool keeps retrying to replace a connection lost in an outage. psycopg_pool
doubles its delay between attempts (1, 2, 4, 8 s...), so a replacement that failed a few times
while the server was down would otherwise be tried again only long after it is back, holding a
place in the pool meanwhile; given up, the place is taken again on demand, at once."""


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """How a worker behaves; `dfc worker` exposes the common ones."""

    concurrency: int = 16  # instances held at once
    lease_seconds: float = 15.0
    poll_seconds: float = 1.0
    claim_batch: int = 64
    shutdown_grace: float = 10.0
    retention_every: float = 600.0  # seconds between retention passes (0: never)
    schedule_every: float = 5.0  # most seconds between looks for due schedules (with a scheduler)
    reap_seconds: float = 1.0  # between looks for dead workers
    only: frozenset[str] | None = None  # run these instances and nothing else (or ``adopt``'s)
    stop_when_done: bool = False  # with ``only``: return once they have all finished
    engine: EngineSettings = field(default_factory=EngineSettings)
    batch: BatchSettings | None = field(default_factory=BatchSettings)  # None: no batching


Adopt: TypeAlias = Callable[[str], Awaitable[Collection[str]]]
"""Gives a worker the instances it alone runs (`dfc run`): called with the worker's id once the
worker holds its lock and is registered, it creates or resumes them owned by that id
(`dfc.store.queue.own_txn`) and returns their ids; the worker runs those and nothing else."""


def new_worker_id() -> str:
    """``host:pid:random``: unique, and says where the worker runs."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Worker:
    """A running worker; `run` until `request_stop` (or, with ``only``, until done)."""

    def __init__(
        self,
        url: str,
        options: WorkerOptions | None = None,
        *,
        log: StepLog | None = None,
        on_evaluate: Callable[[InstanceRun, Evaluation], None] | None = None,
        worker_id: str | None = None,
        compile_graph: GraphCompiler | None = None,
        adopt: Adopt | None = None,
        scheduler: Scheduler | None = None,
        clock: Clock = SYSTEM,
        http: HttpSender | None = None,
    ) -> None:
        self.url = url
        self.clock = clock
        self._send_http = http
        self.scheduler = scheduler
        self._adopt = adopt
        self.compile_graph = compile_graph
        self.role: str | None = None  # current_user of the worker's sessions
        self._compiled: OrderedDict[_GraphKey, _Compiled] = OrderedDict()
        self._uncompiled_checked = 0.0
        self._told_uncompiled = False
        self.options = options or WorkerOptions()
        self.only = self.options.only  # or, once started, ``adopt``'s instances
        self.settings = self.options.engine
        self.log = log or StepLog()
        self.owner = worker_id or new_worker_id()
        self.on_evaluate = on_evaluate
        self.runs: dict[str, InstanceRun] = {}
        self.finished: dict[str, str] = {}  # instance id -> how its last run ended
        self._tasks: set[asyncio.Task[str]] = set()  # every live instance run
        self._claimed_at: dict[str, float] = {}
        # Whether this worker may hold leases that none of its runs holds: a run abandoned
        # without giving its lease back (the database was unreachable), or a claim whose answer
        # was lost with its connection (the claim may have committed). The claim loop gives
        # them back before it claims again, so that they need not wait for their leases to
        # lapse (`_give_back`).
        self._orphans = False
        self._plans: dict[tuple[str, int], Plan | PlanFormatError] = {}
        self._work = asyncio.Event()
        self._reap_now = asyncio.Event()
        self._locked = asyncio.Event()  # the life lock is held (its connection is up)
        self._lock_id: int | None = None
        self._lock_conn: psycopg.AsyncConnection[Any] | None = None
        self._stopping = False
        self._stop_now = False
        self._backlog = False
        self._http_client: Any = None
        self._conn_kwargs = worker_kwargs(url)
        self.unchainable: set[tuple[str, int, str]] = set()
        self.batches = (
            None
            if self.options.batch is None
            else StepBatches(url, self._conn_kwargs, self.options.batch)
        )
        # One connection per held instance (its lane), plus room for concurrent branches.
        size = max(2 * self.options.concurrency, self.options.concurrency + 8)
        self.pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            url,
            kwargs=self._conn_kwargs,
            min_size=min(4, size),
            max_size=size,
            open=False,
            configure=_configure,
            name=f"dfc-{self.owner}",
            reconnect_timeout=_POOL_RECONNECT_SECONDS,
        )

    # -- public -----------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Graceful stop: a second request cancels running steps at once."""
        if self._stopping:
            self._stop_now = True
        self._stopping = True
        for run in self.runs.values():
            run.stop()
        self._work.set()

    def backlog(self) -> bool:
        """Whether other instances may be waiting for a turn (fairness slices consult this).
        A worker given its instances (``adopt``) claims no others: it never yields to them."""
        return self.only is None and self._backlog and len(self._tasks) >= self.options.concurrency

    async def http(self, request: Any) -> Any:
        """Perform an HTTP step's request with the worker's shared client (or the sender the
        worker was given)."""
        if self._send_http is not None:
            return await self._send_http(request)
        from dfc.runtime import http

        if self._http_client is None:
            self._http_client = http.async_client()
        return await http.perform(request, client=self._http_client)

    async def run(self) -> None:
        """Serve until stopped; leaves no lease behind."""
        faults.load_env()
        helpers: list[asyncio.Task[None]] = []
        try:
            await self.pool.open(wait=True, timeout=30)
            # The lock before anything else: registered or holding a lease, a worker is alive
            # exactly as long as its lock is held.
            self._lock_conn = await self._connect_locked()
            async with self.pool.connection() as conn:
                self.role = await roles.current_role(conn)
                await self._reap(conn)
            if self._adopt is not None:
                self.only = frozenset(await self._adopt(self.owner))
            if self.batches is not None:
                self.batches.start()
            self.log.info("started", worker=self.owner, concurrency=self.options.concurrency)
            helpers = [
                asyncio.create_task(self._listen(), name="dfc-listen"),
                asyncio.create_task(self._heartbeat(), name="dfc-heartbeat"),
                asyncio.create_task(self._reaper(), name="dfc-reaper"),
            ]
            if self.options.retention_every > 0 and self.only is None:
                helpers.append(asyncio.create_task(self._housekeeping(), name="dfc-housekeeping"))
            if self.scheduler is not None and self.only is None:
                helpers.append(asyncio.create_task(self._schedules(), name="dfc-schedules"))
            await self._claim_loop()
            await self._drain()
        finally:
            for h in helpers:
                h.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await self._shutdown()

    # -- claiming ---------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        opts = self.options
        while not self._stopping:
            if not self._locked.is_set():  # lock session lost: claiming would be reaped at once
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._locked.wait(), opts.poll_seconds)
                continue
            if self._orphans:
                await self._give_back()
            free = opts.concurrency - len(self._tasks)
            full_batch = False
            if free > 0:
                want = min(free, opts.claim_batch)
                try:
                    claimed = await self._claim(want)
                except Exception as e:  # the database went away, a fault: try again later
                    self.log.error(None, f"cannot claim work: {type(e).__name__}: {e}")
                    self._orphans = True  # the claim may have committed all the same
                    claimed = []
                    await asyncio.sleep(opts.poll_seconds)
                for c in claimed:
                    self._start(c)
                full_batch = len(claimed) == want
                self._backlog = full_batch
                if not claimed:
                    await self._tell_uncompiled()
            elif not self._backlog:
                with contextlib.suppress(psycopg.Error, OSError):
                    async with self.pool.connection() as conn:
                        self._backlog = await queue.backlog(conn)
            if opts.stop_when_done and self.only is not None and await self._all_done():
                return
            if full_batch:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._work.wait(), opts.poll_seconds)
            self._work.clear()

    async def _all_done(self) -> bool:
        assert self.only is not None
        if self._tasks:
            return False
        try:
            async with self.pool.connection() as conn:
                left = await instances.unfinished(conn, self.only)
        except psycopg.Error:
            return False
        return left == 0

    async def _claim(self, n: int) -> list[Claimed]:
        async with self.pool.connection() as conn:
            rows = await queue.claim(
                conn,
                self.owner,
                n,
                self.options.lease_seconds,
                self.only,
                compiled_only=self.compile_graph is None,
                now=None if self.clock.real else self.clock.now(),
            )
            if not rows:
                return []
            faults.fault("claim_lost")
            now = time.monotonic()
            for r in rows:
                self._claimed_at[r.instance_id] = now
            try:
                faults.fault("after_claim")
                rows = await self._compile(conn, rows)
                run_as = await self._roles(conn, rows)
                rows = [r for r in rows if r.instance_id in run_as]
                await self._load_plans(conn, {_version(r) for r in rows})
                claimed: list[Claimed] = []
                for r in rows:
                    workflow, version = _version(r)
                    plan = self._plans[(workflow, version)]
                    if isinstance(plan, PlanFormatError):
                        await self._fail_unreadable(conn, r.instance_id, workflow, version, plan)
                        continue
                    claimed.append(
                        Claimed(
                            r.instance_id,
                            workflow,
                            version,
                            r.label,
                            r.vars or {},
                            int(r.pokes),
                            plan,
                            run_as=run_as[r.instance_id],
                        )
                    )
                fresh = {r.instance_id for r in rows if r.fresh}
                await load_state(conn, [c for c in claimed if c.instance_id not in fresh])
            except BaseException:
                ids = [r.instance_id for r in rows]
                for iid in ids:
                    self._claimed_at.pop(iid, None)
                with contextlib.suppress(Exception):
                    await queue.unclaim(conn, ids, self.owner)
                raise
        return claimed

    # -- graphs started from SQL --------------------------------------------------------------

    async def _compile(self, conn: AConn, rows: list[ClaimRow]) -> list[ClaimRow]:
        """Pin the instances that carry a graph to the version it compiles to (compiling and
        deploying it first unless that was done before); fail those whose graph does not
        compile. Returns the rows that are to run, with their workflow versions."""
        keys = {r.instance_id: _graph_key(r) for r in rows if r.workflow is None}
        if not keys:
            return rows
        missing = [k for k in dict.fromkeys(keys.values()) if k not in self._compiled]
        if missing and self.compile_graph is not None:
            compiled = await asyncio.to_thread(self._compile_and_deploy, missing)
            self._compiled.update(compiled)
            while len(self._compiled) > _COMPILED_KEPT:
                self._compiled.popitem(last=False)
        out: list[ClaimRow] = []
        for r in rows:
            key = keys.get(r.instance_id)
            if key is None:
                out.append(r)
                continue
            outcome = self._compiled.get(key)
            if outcome is None:  # no compiler: another worker takes it (`dfc run` has one)
                await queue.unclaim(conn, [r.instance_id], self.owner)
                self._claimed_at.pop(r.instance_id, None)
                continue
            if isinstance(outcome, str):
                await self._fail_claimed(conn, r.instance_id, {"message": outcome})
                continue
            self._compiled.move_to_end(key)
            workflow, version = outcome
            try:
                await instances.pin(conn, r.instance_id, workflow, version)
            except psycopg.errors.ForeignKeyViolation:
                self._compiled.pop(key, None)  # the version was deleted: compile again
                raise
            out.append(r._replace(workflow=workflow, version=version))
        return out

    def _compile_and_deploy(self, keys: list[_GraphKey]) -> dict[_GraphKey, _Compiled]:
        """Compile graphs and deploy their plans (in a thread: compiling takes CPU, deploying
        a connection of its own)."""
        assert self.compile_graph is not None
        out: dict[_GraphKey, _Compiled] = {}
        conn = None
        try:
            for key in keys:
                graph, label, options = key
                try:
                    plan = self.compile_graph(graph, label, json.loads(options))
                except Exception as e:  # a bug in the compiler: fail the instance, not the worker
                    plan = f"internal error while compiling the graph: {type(e).__name__}: {e}"
                if isinstance(plan, str):
                    out[key] = plan
                    continue
                if conn is None:
                    conn = connect(self.url)
                deployed = deploy(conn, plan, any_version=True)
                out[key] = (deployed.name, deployed.version)
                if deployed.created:
                    self.log.info("deployed", workflow=deployed.name, version=deployed.version)
        finally:
            if conn is not None:
                conn.close()
        return out

    async def _tell_uncompiled(self) -> None:
        """A worker without a compiler says once that instances started from SQL wait."""
        if self.compile_graph is not None or self._told_uncompiled:
            return
        now = time.monotonic()
        if now - self._uncompiled_checked < _UNCOMPILED_CHECK_EVERY:
            return
        self._uncompiled_checked = now
        with contextlib.suppress(psycopg.Error, OSError):
            async with self.pool.connection() as conn:
                if await queue.uncompiled_waiting(conn):
                    self._told_uncompiled = True
                    self.log.info(
                        "instances started from SQL (df.start) wait for a worker that can "
                        "compile their graphs; this one cannot: run `dfc worker`"
                    )

    # -- roles --------------------------------------------------------------------------------

    async def _roles(self, conn: AConn, rows: list[ClaimRow]) -> dict[str, RunAs | None]:
        """The role each instance's steps run as (None: the worker's own), for the instances
        that can run; those whose role has no executors (or no longer exists) fail."""
        others = {r.created_by for r in rows if r.created_by != self.role}
        found = await roles.lookup(conn, others) if others else {}
        out: dict[str, RunAs | None] = {}
        for r in rows:
            role = found.get(r.created_by)
            if role is not None and (role.oid is None or not role.executors):
                message = (
                    roles.no_role_message(role.name)
                    if role.oid is None
                    else roles.no_executor_message(role.name)
                )
                await self._fail_claimed(conn, r.instance_id, {"message": message})
                continue
            out[r.instance_id] = role
        return out

    async def _fail_claimed(self, conn: AConn, iid: str, error: dict[str, Any]) -> None:
        """End an instance claimed just now as failed, before it ran."""
        await instances.fail(conn, iid, self.owner, error)
        self._claimed_at.pop(iid, None)
        self.log.finished(iid, "failed", error)

    async def _load_plans(self, conn: AConn, keys: Collection[tuple[str, int]]) -> None:
        missing = [k for k in keys if k not in self._plans]
        if not missing:
            return
        for name, version, data, source in await plan_rows(conn, missing):
            try:
                self._plans[(name, version)] = Plan.from_json({**data, "source": source or ""})
            except PlanFormatError as e:
                self._plans[(name, version)] = e

    async def _fail_unreadable(
        self, conn: AConn, iid: str, workflow: str, version: int, e: Exception
    ) -> None:
        error = {"message": f"workflow {workflow} version {version} cannot be executed: {e}"}
        await self._fail_claimed(conn, iid, error)

    def _start(self, claimed: Claimed) -> None:
        run = InstanceRun(self, claimed, on_evaluate=self.on_evaluate)
        if self._stopping:
            run.stop()
        older = self.runs.get(claimed.instance_id)
        if older is not None:
            # Claimed again: whatever lease the older run had is gone (a reaper freed this
            # worker's instances while its lock session was lost, or the run just released it).
            older.lose()
        # A run that just released this instance may still be finishing when it is claimed
        # again: ``runs`` maps to the newest run, ``_tasks`` counts every live one.
        self.runs[claimed.instance_id] = run
        task = asyncio.create_task(run.run(), name=f"dfc-instance-{claimed.instance_id}")
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._done, run))

    def _done(self, run: InstanceRun, task: asyncio.Task[str]) -> None:
        self._tasks.discard(task)
        iid = run.instance_id
        if self.runs.get(iid) is run:
            del self.runs[iid]
            self._claimed_at.pop(iid, None)
        if not task.cancelled() and task.exception() is None:
            self.finished[iid] = task.result()
            if task.result() == "abandoned" and not run.released and not self._stopping:
                self._orphans = True
        self._work.set()  # a free slot

    # -- listening --------------------------------------------------------------------------

    async def _connect_locked(self) -> psycopg.AsyncConnection[Any]:
        """The lock-and-listen connection: the worker's life lock taken (again, after a lost
        session) and the worker registered with it, then ``LISTEN``."""
        conn = await psycopg.AsyncConnection.connect(self.url, **self._conn_kwargs)
        try:
            self._lock_id = await queue.lock_worker(conn, self._lock_id)
            await queue.register(
                conn,
                self.owner,
                socket.gethostname(),
                os.getpid(),
                self.options.concurrency,
                self._lock_id,
            )
            await queue.listen(conn)
        except BaseException:
            await conn.close()
            raise
        self._locked.set()
        return conn

    async def _listen(self) -> None:
        while True:
            try:
                if self._lock_conn is None or self._lock_conn.closed:
                    self._lock_conn = await self._connect_locked()
                    # The server is reachable again. If it restarted, every idle pooled
                    # connection is dead, and the pool finds that out only when one is used:
                    # the claim loop and the reaper, taking one each per try, would spend a
                    # second on each before working again. Test them all now.
                    await self._check_pool()
                    self._work.set()  # anything sent while we were not listening
                    for held in list(self.runs.values()):
                        held.poke()
                async for note in self._lock_conn.notifies():
                    run = self.runs.get(note.payload)
                    if run is not None:
                        run.poke()
                    else:
                        self._backlog = True
                        self._work.set()
                        if not note.payload:  # a worker left, or instances were freed
                            self._reap_now.set()
            except asyncio.CancelledError:
                raise
            except (psycopg.Error, OSError) as e:
                self._locked.clear()
                self.log.error(None, f"lock and notification connection lost: {e}")
                if self._lock_conn is not None:
                    with contextlib.suppress(psycopg.Error, OSError):
                        await self._lock_conn.close()
                    self._lock_conn = None
                await asyncio.sleep(self.options.poll_seconds)

    async def _check_pool(self) -> None:
        """Drop the pool's dead idle connections and open new ones in their place."""
        try:
            await self.pool.check()
        except Exception as e:  # the pool would then find them one at a time, as before
            self.log.error(None, f"checking pooled connections failed: {type(e).__name__}: {e}")

    # -- dead workers -------------------------------------------------------------------------

    async def _reaper(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reap_now.wait(), self.options.reap_seconds)
            self._reap_now.clear()
            try:
                async with self.pool.connection() as conn:
                    await self._reap(conn)
            except (psycopg.Error, OSError) as e:
                self.log.error(None, f"looking for dead workers failed: {e}")

    async def _reap(self, conn: AConn) -> None:
        freed = await queue.reap(conn)
        if freed:
            observe.takeovers(freed)
            self.log.info("dead workers' instances freed", instances=freed)
            self._backlog = True
            self._work.set()

    # -- leases -----------------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        """Extend the leases of the instances this worker runs, on a connection of its own: a
        pool exhausted by wide joins must never let leases lapse under a live worker. Leases of
        rows claimed but not being run (a failure right after claiming) are not extended and
        expire by themselves."""
        interval = max(0.2, self.options.lease_seconds / 3)
        conn: psycopg.AsyncConnection[Any] | None = None
        try:
            while True:
                await asyncio.sleep(interval)
                started = time.monotonic()
                ids = list(self.runs)
                try:
                    if conn is None or conn.closed:
                        conn = await psycopg.AsyncConnection.connect(self.url, **self._conn_kwargs)
                    held = await queue.heartbeat(conn, self.owner, ids, self.options.lease_seconds)
                except (psycopg.Error, OSError) as e:
                    self.log.error(None, f"heartbeat failed: {e}")
                    if conn is not None:
                        await conn.close()
                    conn = None
                    continue
                for iid in ids:
                    run = self.runs.get(iid)
                    if (
                        run is not None
                        and iid not in held
                        and self._claimed_at.get(iid, started) < started
                    ):
                        run.lose()
        finally:
            if conn is not None:
                await conn.close()

    async def _give_back(self) -> None:
        """Give back the leases this worker holds without a run (`_orphans`). Only the claim
        loop calls this, between two claims: every lease it took is then held by a run."""
        try:
            async with self.pool.connection() as conn:
                freed = await queue.unclaim_orphans(conn, self.owner, list(self.runs))
        except (psycopg.Error, OSError) as e:
            self.log.error(None, f"cannot give back leases: {type(e).__name__}: {e}")
            return
        self._orphans = False
        if freed:
            self.log.info("leases given back", instances=freed)
            self._work.set()

    # -- housekeeping -----------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        await asyncio.sleep(min(5.0, self.options.retention_every))
        while True:
            try:
                await self.purge()
            except (psycopg.Error, OSError) as e:
                self.log.error(None, f"retention pass failed: {e}")
            await asyncio.sleep(self.options.retention_every)

    async def purge(self) -> int:
        """Apply the ``retention_days`` setting (`dfc.store.retention`); returns how many
        finished instances were deleted."""
        from dfc.store.db import connect
        from dfc.store.retention import purge_finished

        def purge_sync() -> int:
            with connect(self.url) as conn:
                queue.purge_workers_txn(conn)
                return purge_finished(conn)

        total = await asyncio.to_thread(purge_sync)
        if total:
            self.log.info("retention", deleted=total)
        return total

    # -- schedules --------------------------------------------------------------------------

    async def _schedules(self) -> None:
        """Start the instances of due schedules: at each next fire time, and at least every
        ``schedule_every`` seconds (to see schedules set meanwhile and instances that finished
        with fires queued behind them); every worker looks, and none fires a time twice."""
        scheduler = self.scheduler
        assert scheduler is not None
        every = self.options.schedule_every
        looking: asyncio.Future[float | None] | None = None
        # Not at once: a worker's first moments belong to the instances it claims and the dead
        # workers' it takes over (a restarted worker must not make them wait).
        delay = every
        try:
            while True:
                await asyncio.sleep(delay)
                looking = asyncio.ensure_future(asyncio.to_thread(scheduler.look, self.log))
                delay = every
                try:
                    until_next = await asyncio.shield(looking)
                    if until_next is not None:
                        # One held by another worker's look may still be due: not a busy loop.
                        delay = min(every, max(until_next, _SCHEDULE_RETRY_SECONDS))
                except (psycopg.Error, OSError, DfcError) as e:
                    self.log.error(None, f"looking for due schedules failed: {e}")
                looking = None
        finally:
            if looking is not None:  # cancelled mid-look: let it end before closing its session
                with contextlib.suppress(Exception):
                    await looking
            scheduler.close()

    # -- stopping ---------------------------------------------------------------------------

    async def _drain(self) -> None:
        """Let held instances reach a point where they can be released."""
        for run in self.runs.values():
            run.stop()
        tasks = list(self._tasks)
        if not tasks:
            return
        deadline = time.monotonic() + self.options.shutdown_grace
        pending = {t for t in tasks if not t.done()}
        while pending and not self._stop_now and time.monotonic() < deadline:
            left = deadline - time.monotonic()
            _, pending = await asyncio.wait(pending, timeout=min(left, 0.2))
        for t in pending:
            t.cancel()  # running steps get a query cancel; their transactions roll back
        if pending:
            await asyncio.wait(pending)

    async def _shutdown(self) -> None:
        if self.batches is not None:
            await self.batches.stop()
        with contextlib.suppress(psycopg.Error, OSError):
            async with self.pool.connection() as conn:
                await queue.unregister(conn, self.owner)
        if self._lock_conn is not None:  # after unregistering: nothing is left to reap
            with contextlib.suppress(psycopg.Error, OSError):
                await self._lock_conn.close()
        self._locked.clear()
        if self._http_client is not None:
            with contextlib.suppress(Exception):
                await self._http_client.aclose()
        await self.pool.close()
        self.log.info("stopped", worker=self.owner)


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    configure_loaders(conn)


def run_worker(
    url: str,
    options: WorkerOptions | None = None,
    *,
    log: StepLog | None = None,
    install_signals: bool = True,
    compile_graph: GraphCompiler | None = None,
    scheduler: Scheduler | None = None,
) -> None:
    """Run a worker in this process until SIGTERM/SIGINT (then stop gracefully)."""

    async def main() -> None:
        worker = Worker(url, options, log=log, compile_graph=compile_graph, scheduler=scheduler)
        if install_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, worker.request_stop)
        await worker.run()

    asyncio.run(main())


def _graph_key(row: ClaimRow) -> _GraphKey:
    assert row.graph is not None, "an instance has a workflow version or a graph"
    return (row.graph, row.label, json.dumps(row.options, sort_keys=True))


def _version(row: ClaimRow) -> tuple[str, int]:
    assert row.workflow is not None and row.version is not None
    return row.workflow, row.version
