"""A test environment: a dfc database, the real worker on a virtual clock, and HTTP fakes.

`Env` runs a `dfc.runtime.worker.Worker` — the production engine, machine and store code — in
a thread of its own, with a `VirtualClock` and the environment's `HttpFakes`. The test calls
the environment from its own thread; every call is synchronous.

**Time skipping.** The environment waits until nothing is busy: no instance held by the
worker, none due by the virtual clock, no schedule due. Then whatever is left waits for a
signal or a timer (a sleep, a signal's or `df.timeout`'s deadline, a retry's backoff, a cron
wait). When timers are left, `run_until_idle` and `result` move the clock to the earliest one
(or to a schedule's fire time before it) and go on, as Temporal's time-skipping test server
does; `advance` moves it through every timer and fire time up to a point and no further.
Instances that wait for a signal stay waiting until the test sends one.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from dfc.client import Client
from dfc.compiler import graph_compiler
from dfc.diagnostics import DfcError
from dfc.plan.model import Plan
from dfc.runtime.engine import EngineSettings
from dfc.runtime.logs import StepLog
from dfc.runtime.schedules import Scheduler
from dfc.runtime.worker import Worker, WorkerOptions
from dfc.store import queue
from dfc.store.db import connect
from dfc.store.instances import HistoryEvent, InstanceInfo
from dfc.store.registry import DeployResult
from dfc.testing.clock import VirtualClock, duration
from dfc.testing.http import HttpFakes

WALL_TIMEOUT = 60.0
"""Real seconds a call that runs workflows may take before it fails the test."""

MAX_SKIPS = 10_000
"""Timers `run_until_idle` and `result` skip to before they give up (a loop that waits on a
timer forever never becomes idle)."""

_OPTIONS = WorkerOptions(
    retention_every=0,
    schedule_every=0.2,  # a fire time the clock was moved to is seen within this (real) time
    # Every timer is released and skipped to, however close: none is waited for in real time.
    engine=EngineSettings(hold_seconds=0, retry_delay=0.2),
)


class EnvError(DfcError):
    """A test environment cannot do what the test asked (an instance that nothing will wake,
    workflows still running after the wall-clock limit, a worker that stopped)."""


class Env:
    """A dfc database with a worker on a virtual clock (`dfc.testing`; the ``dfc_env``
    fixture makes one per test). Use it as a context manager, or `close` it."""

    def __init__(self, url: str, *, workdir: str | Path | None = None) -> None:
        self.url = url
        self.clock = VirtualClock()
        self.http = HttpFakes()
        self.client = Client(connect(url))
        self._conn = connect(url)
        self._own_workdir: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._own_workdir = tempfile.TemporaryDirectory(prefix="dfc-env-")
            workdir = self._own_workdir.name
        self._workdir = Path(workdir)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: Worker | None = None
        self._worker_error: BaseException | None = None

    # -- time ---------------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        """The virtual time (UTC)."""
        return self.clock.now()

    def advance(self, by: str | timedelta | float, *, timeout: float = WALL_TIMEOUT) -> None:
        """Move the clock ``by`` forward (``'2h'``, ``'1d 12h'``, a timedelta or seconds),
        running everything that becomes due on the way — timers and schedules' fire times,
        each at its own time; returns when the workflows are idle again. ``advance(0)`` runs
        what is due now and leaves every timer waiting."""
        target = self.now + duration(by)
        deadline = time.monotonic() + timeout
        while True:
            left = self._settle(deadline)
            wake = _earliest(left.next_timer, left.next_fire)
            if wake is None or wake > target:
                break
            self._skip_to(wake)
        self._skip_to(target)
        self._settle(deadline)

    def run_until_idle(self, *, timeout: float = WALL_TIMEOUT, max_skips: int = MAX_SKIPS) -> None:
        """Run the workflows until every unfinished instance waits for a signal (or none is
        left), skipping the clock to each timer in turn (and to the schedules' fire times on
        the way). Schedules alone are not skipped to: they fire for ever; see `advance`."""
        deadline = time.monotonic() + timeout
        for _ in range(max_skips + 1):
            left = self._settle(deadline)
            if left.next_timer is None:
                return
            self._skip_to(_earliest(left.next_timer, left.next_fire) or left.next_timer)
        raise EnvError(
            f"the workflows still wait for timers after {max_skips:,} were skipped (the clock is "
            f"{self.clock.offset} ahead): a loop that waits on a timer never ends",
            hint="move the clock with env.advance(...) instead",
        )

    # -- workflows ----------------------------------------------------------------------------

    def deploy(self, source: str | Path | Plan, *, name: str | None = None) -> DeployResult:
        """Deploy a workflow: a ``.df`` file (a `Path`, or a one-line string ending in ``.df``),
        the text of one (saved as ``NAME.df`` in the environment's directory, ``name`` by
        default ``workflow``: the file's name gives the workflow's when its text does not), or
        a compiled `Plan`."""
        if isinstance(source, str) and not (source.endswith(".df") and "\n" not in source):
            path = self._workdir / f"{name or 'workflow'}.df"
            path.write_text(source, encoding="utf-8")
            source = path
        return self.client.deploy(source)

    def start(
        self,
        workflow: str,
        /,
        *,
        version: int | None = None,
        label: str | None = None,
        idempotency_key: str | None = None,
        concurrency_key: str | None = None,
        **params: Any,
    ) -> str:
        """Start an instance of ``workflow`` with ``params`` as its parameter values; returns
        its id. Nothing runs until the test runs the environment (`run_until_idle`, `result`,
        `advance`)."""
        return self.client.start(
            workflow,
            version,
            params,
            label,
            idempotency_key=idempotency_key,
            concurrency_key=concurrency_key,
        )

    def signal(self, instance_id: str, name: str, payload: Any = None) -> None:
        """Send signal ``name``; ``payload`` that is not a string is sent as JSON (None: the
        waiting step sees ``{}``, as with ``dfc signal``)."""
        self.client.signal(instance_id, name, payload)

    def cancel(self, instance_id: str, reason: str | None = None) -> str:
        """Cancel an instance; returns what happened."""
        return self.client.cancel(instance_id, reason)

    def result(self, instance_id: str, *, timeout: float = WALL_TIMEOUT) -> Any:
        """Run the workflows, skipping timers, until the instance has finished; its result.

        Raises `dfc.client.InstanceFailed` when it failed or was cancelled, `EnvError` when it
        waits for a signal that nothing will send.
        """
        deadline = time.monotonic() + timeout
        for _ in range(MAX_SKIPS + 1):
            left = self._settle(deadline)
            info = self.client.status(instance_id)
            if info.finished:
                # The client's own reading of a finished instance: its result or InstanceFailed.
                return self.client.wait(instance_id, timeout=0)
            if left.next_timer is None:
                raise EnvError(
                    f"instance {instance_id} is {info.status} and nothing will wake it: it "
                    f"waits for {info.waiting_for or 'nothing the clock can bring'}",
                    hint="send the signal it waits for with env.signal(id, name, payload)",
                )
            self._skip_to(_earliest(left.next_timer, left.next_fire) or left.next_timer)
        raise EnvError(f"instance {instance_id} still waits after {MAX_SKIPS:,} timers")

    def sql(
        self, query: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[tuple[Any, ...]]:
        """Run ``query`` on the environment's database (set up data, assert on effects); the
        rows it returns (none for a statement without a result)."""
        cur = self._conn.execute(query, params or None)
        return cur.fetchall() if cur.description is not None else []

    def status(self, instance_id: str) -> InstanceInfo:
        """The instance's current state (runs nothing)."""
        return self.client.status(instance_id)

    def history(self, instance_id: str) -> list[HistoryEvent]:
        """The instance's event log (runs nothing)."""
        return self.client.history(instance_id)

    # -- the worker ---------------------------------------------------------------------------

    def _settle(self, deadline: float) -> queue.Pending:
        """Wait until nothing is busy at the virtual time; what is left."""
        self._ensure_worker()
        pause = 0.002
        while True:
            pending = queue.pending(self._conn, self.clock.now())
            if not pending.busy:
                return pending
            if self._worker_error is not None or not self._running():
                raise EnvError(
                    f"the test environment's worker stopped: {self._worker_error or 'it exited'}"
                )
            if time.monotonic() > deadline:
                raise EnvError(
                    f"{pending.busy} instance(s) or schedule(s) still busy after the wall-clock "
                    "limit of the call",
                    hint="a step may be blocked (a lock, pg_sleep); pass a larger timeout=",
                )
            time.sleep(pause)
            pause = min(pause * 2, 0.02)

    def _skip_to(self, when: datetime) -> None:
        self.clock.advance_to(when)
        queue.notify(self._conn)  # the worker's claim then compares with the new time

    def _running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _ensure_worker(self) -> None:
        if self._thread is not None:
            return
        worker = Worker(
            self.url,
            _OPTIONS,
            log=StepLog(),  # shown by pytest for a failing test
            compile_graph=graph_compiler,
            scheduler=Scheduler(self.url, self.clock),
            clock=self.clock,
            http=self.http.send,
        )
        self._worker = worker
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._serve, args=(self._loop, worker), name="dfc-test-worker", daemon=True
        )
        self._thread.start()

    def _serve(self, loop: asyncio.AbstractEventLoop, worker: Worker) -> None:
        async def main() -> None:
            try:
                await worker.run()
            finally:
                await self.http.aclose()

        try:
            loop.run_until_complete(main())
        except BaseException as e:
            self._worker_error = e
        finally:
            loop.close()

    # -- the end ------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the worker (steps still running are cancelled) and close the connections."""
        if self._thread is not None and self._loop is not None and self._worker is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                self._loop.call_soon_threadsafe(self._worker.request_stop)
                self._loop.call_soon_threadsafe(self._worker.request_stop)
            self._thread.join(timeout=30)
        self._thread = None
        self.client.close()
        self._conn.close()
        if self._own_workdir is not None:
            self._own_workdir.cleanup()

    def __enter__(self) -> Env:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _earliest(*times: datetime | None) -> datetime | None:
    return min((t for t in times if t is not None), default=None)
