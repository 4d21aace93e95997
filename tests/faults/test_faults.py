"""The fault-injection suite (issue 11, docs/reliability.md): real `dfc worker` processes run a
stream of instances while the test kills them, restarts PostgreSQL under them, terminates their
connections or freezes one past its lease; then `fault_support.verify` checks that the run ended
as it would have without faults, and the longest stall of any instance is printed and bounded.

Each test runs a short form by default and a soak under ``--long`` (``DFC_SOAK_ROUNDS`` rounds;
``DFC_FAULTS_SEED`` replays a round's random choices, printed at its start).
"""

from __future__ import annotations

import os
import random
import re
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from fault_support import (
    LEASE_SECONDS,
    MAX_STALL_AFTER_OUTAGE,
    HttpRecorder,
    OwnServer,
    Report,
    Run,
    WorkerPool,
    Workload,
    assert_stall,
    lease_holder,
    prepare,
    start_instances,
    verify,
    wait_until,
    with_app_name,
)
from test_crash import WorkerProcess, unfinished

from dfc.plan import nodes
from dfc.store.db import ENV_DATA_DIR, connect
from dfc.store.embedded import EmbeddedServer

pytestmark = [pytest.mark.db, pytest.mark.slow]

Conn = psycopg.Connection[Any]


@dataclass(frozen=True)
class Scale:
    """How long a run streams new instances, how many it starts per second at most, and how
    often the fault strikes (seconds between two, on average)."""

    seconds: float
    rate: float
    every: float
    in_flight: int = 24
    """No new instance starts while this many are unfinished: the stall must measure recovery
    from faults, not a backlog that a loaded machine cannot keep up with."""


@dataclass
class Trial:
    """What every fault test has: its random choices, its mode and round, its worker pools
    (closed at the end), and where its figures go."""

    rng: random.Random
    long_mode: bool
    soak_round: int
    record_property: Callable[[str, object], None]
    pools: list[WorkerPool]

    def scale(self, short: Scale, long: Scale) -> Scale:
        return long if self.long_mode else short

    def pool(self, url: str, size: int, *extra: str, **options: Any) -> WorkerPool:
        """A `WorkerPool`, closed with the test."""
        pool = WorkerPool(url, size, *extra, **options)
        self.pools.append(pool)
        return pool

    def finish(self, name: str, report: Report, **figures: object) -> None:
        """Print the run's figures (``pytest -s``) and record them in the JUnit report."""
        values = {**report.__dict__, **figures, "round": self.soak_round}
        del values["timeline"]
        print(f"{name}: " + " ".join(f"{k}={v}" for k, v in values.items()))
        for k, v in values.items():
            self.record_property(k, v)


@pytest.fixture
def trial(
    long_mode: bool, soak_round: int, record_property: Callable[[str, object], None]
) -> Iterator[Trial]:
    seed = int(os.environ.get("DFC_FAULTS_SEED") or random.randrange(2**32))
    print(f"seed {seed} (DFC_FAULTS_SEED={seed} replays it)")
    t = Trial(random.Random(seed), long_mode, soak_round, record_property, [])
    yield t
    for pool in t.pools:
        pool.close()


@pytest.fixture
def http() -> Iterator[HttpRecorder]:
    with HttpRecorder() as recorder:
        yield recorder


def drive(
    conn: Callable[[], Conn],
    run: Run,
    pool: WorkerPool,
    s: Scale,
    rng: random.Random,
    strike: Callable[[bool], bool],
) -> None:
    """Stream instances for ``s.seconds`` (at most ``s.rate`` a second and ``s.in_flight`` at
    once) while striking every ``s.every`` seconds on average,
    restarting dead workers all along; then wait until every instance finished.

    A strike is due only while two workers are up (all of them, in a pool of two): the faults
    hit one of several workers, and another must be there to take over (on a loaded machine a
    restart takes seconds). Once due, ``strike(last_chance)`` is called until it returns True
    (it struck) or for 3 s (the moment it waits for did not come: counted in
    ``pool.kills["missed"]``); ``last_chance`` says it is the last call for this strike."""
    started = time.monotonic()
    next_start = next_strike = started + 0.5
    due: float | None = None
    while time.monotonic() - started < s.seconds:
        pool.tend()
        now = time.monotonic()
        if now >= next_start:
            room = s.in_flight - unfinished(conn(), list(run.designed))
            start_instances(conn(), run, min(room, max(1, round(s.rate * 0.25))), rng)
            next_start = now + 0.25
        if due is None and now >= next_strike and pool.ready() >= 2:
            due = now
        if due is not None:
            last_chance = now - due > 3
            struck = strike(last_chance)
            if struck or last_chance:
                if not struck:
                    pool.kills["missed"] = pool.kills.get("missed", 0) + 1
                due = None
                next_strike = time.monotonic() + rng.uniform(0.5, 1.5) * s.every
        time.sleep(0.005)
    ids = list(run.designed)
    deadline = time.monotonic() + 60 + 4 * LEASE_SECONDS
    while unfinished(conn(), ids) and time.monotonic() < deadline:
        pool.tend()
        time.sleep(0.1)
    assert unfinished(conn(), ids) == 0, f"stuck instances\n{pool.logs()}"


# -- SIGKILL ------------------------------------------------------------------------------------

_INSTANCE = re.compile(r"'([0-9a-f]{8})'")


def _sql_victim(conn: Conn, pool: WorkerPool) -> WorkerProcess | None:
    """A worker whose backend is executing one of the workload's SQL steps right now."""
    row = conn.execute(
        "SELECT application_name FROM pg_stat_activity WHERE state = 'active' "
        "AND application_name LIKE 'fxw%%' AND query LIKE '%%fx_effects%%' LIMIT 1"
    ).fetchone()
    return None if row is None else pool.workers[int(row[0][3:])]


def _http_victim(conn: Conn, pool: WorkerPool, http: HttpRecorder) -> WorkerProcess | None:
    """The worker waiting for an HTTP response right now (the holder of its instance)."""
    path = http.busy_path()
    if path is None:
        return None
    pid = lease_holder(conn, path.split("/")[2])
    return None if pid is None else pool.by_pid(pid)


def _timer_victim(conn: Conn, pool: WorkerPool, sleep_node: str) -> WorkerProcess | None:
    """A worker holding an instance whose timer is running (waited for in memory)."""
    row = conn.execute(
        "SELECT q.instance_id FROM dfc.node_state ns JOIN dfc.queue q USING (instance_id) "
        "WHERE ns.node_id = %s AND ns.status = 'waiting' AND q.lease_expires > now() LIMIT 1",
        (sleep_node,),
    ).fetchone()
    pid = None if row is None else lease_holder(conn, row[0])
    return None if pid is None else pool.by_pid(pid)


@pytest.mark.timeout(900)
def test_sigkill_of_workers_during_steps_http_and_timers(
    make_db: Callable[..., str],
    http: HttpRecorder,
    trial: Trial,
) -> None:
    """Three workers; one at a time is SIGKILLed while its backend runs a SQL step, while it
    waits for an HTTP response, while it holds a running timer, or at random; the workers also
    crash themselves at commits (fault points before and after COMMIT). Each is restarted."""
    s = trial.scale(Scale(seconds=8, rate=5, every=1.0), Scale(seconds=180, rate=5, every=1.5))
    url = make_db()
    with connect(url) as conn:
        run = prepare(conn, Workload(http.base))
        sleep_node = next(
            k for k, n in run.plans["fx_ok"].nodes.items() if isinstance(n.config, nodes.Sleep)
        )
        pool = trial.pool(
            url, 3, env={"DFC_FAULT": "before_commit:crash:0.002,after_commit:crash:0.002"}
        )
        pool.start()
        kinds = ["sql", "http", "timer", "random"]
        turn = [0]

        def strike(last_chance: bool) -> bool:
            kind = kinds[turn[0] % len(kinds)]
            find: Callable[[], WorkerProcess | None] = {
                "sql": lambda: _sql_victim(conn, pool),
                "http": lambda: _http_victim(conn, pool, http),
                "timer": lambda: _timer_victim(conn, pool, sleep_node),
                "random": lambda: trial.rng.choice(pool.workers),
            }[kind]
            victim = find()
            struck = victim is not None and victim.alive()
            if victim is not None and struck:
                pool.kill(victim, kind)
            if struck or last_chance:
                turn[0] += 1  # the next strike waits for the next kind of moment
            return struck

        drive(lambda: conn, run, pool, s, trial.rng, strike)
        report = verify(conn, run, http)
    crashes = pool.restarts - sum(v for k, v in pool.kills.items() if k != "missed")
    trial.finish(
        "sigkill",
        report,
        kills=pool.kills,
        commit_crashes=crashes,
    )
    assert_stall(
        report.longest_stall_per_fault, what="sigkill", detail=f"{report.timeline}\n{pool.logs()}"
    )
    assert sum(v for k, v in pool.kills.items() if k != "missed") >= 2, pool.kills


# -- PostgreSQL restarts ------------------------------------------------------------------------


MAX_STALL_AFTER_RESTART = 5.0
"""The longest an instance may stand still after a PostgreSQL restart, besides the restart's own
time: a few seconds, whatever the lease. Workers test their pooled connections and give back the
leases of runs abandoned in the outage as soon as the server answers (test_restart_hang.py);
measured in the long form: 3.9–4.5 s over 12–13 restarts a round."""


@pytest.mark.timeout(900)
def test_postgres_restart_immediate_while_instances_run(
    own_server: OwnServer,
    http: HttpRecorder,
    trial: Trial,
) -> None:
    """`pg_ctl restart -m immediate` of the test's own server while two workers run instances:
    every backend dies mid-transaction and the server recovers from its WAL. Restarts are at
    least 7.5 s apart (a short run has one), so that each one's stall is measured alone."""
    s = trial.scale(Scale(seconds=5, rate=5, every=8.0), Scale(seconds=180, rate=5, every=15))
    url = own_server.start()
    holder: list[Conn] = [connect(url)]

    def conn() -> Conn:
        # The test's own connection dies with every restart too.
        if holder[0].closed or holder[0].broken:
            holder[0] = connect(url)
        return holder[0]

    try:
        run = prepare(conn(), Workload(http.base))
        pool = trial.pool(url, 2)
        pool.start()
        downtime: list[float] = []

        def strike(last_chance: bool) -> bool:
            t0 = time.monotonic()
            own_server.restart_immediate()
            downtime.append(time.monotonic() - t0)
            holder[0].close()
            return True

        drive(conn, run, pool, s, trial.rng, strike)
        report = verify(conn(), run, http)
    finally:
        holder[0].close()
    trial.finish(
        "pg-restart",
        report,
        restarts=own_server.restarts,
        worker_exits=pool.restarts,
        longest_restart=round(max(downtime, default=0), 2),
    )
    assert own_server.restarts >= 1
    # A restart kills every connection at once: the stall may include the restart itself.
    assert_stall(
        report.longest_stall_per_fault,
        bound=MAX_STALL_AFTER_RESTART,
        allowance=max(downtime, default=0),
        what="pg-restart",
        detail=f"{report.timeline}\n{pool.logs()}",
    )


# -- terminated connections ---------------------------------------------------------------------


@pytest.mark.timeout(900)
def test_terminated_worker_connections(
    make_db: Callable[..., str],
    http: HttpRecorder,
    trial: Trial,
) -> None:
    """`pg_terminate_backend` of one worker connection at a time (step lanes, pool, heartbeat,
    LISTEN), chosen among those of the workers' application names, busy ones first."""
    s = trial.scale(Scale(seconds=5, rate=5, every=0.4), Scale(seconds=180, rate=5, every=0.7))
    url = make_db()
    terminated: dict[str, int] = {}
    with connect(url) as conn:
        run = prepare(conn, Workload(http.base))
        pool = trial.pool(url, 2)
        pool.start()

        def strike(last_chance: bool) -> bool:
            rows = conn.execute(
                "SELECT pid, state FROM pg_stat_activity WHERE application_name LIKE 'fxw%%' "
                "AND datname = current_database()"
            ).fetchall()
            if not rows:
                return False
            busy = [r for r in rows if r[1] != "idle"]
            pid, state = trial.rng.choice(busy or rows)
            if conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() != (True,):
                return False
            terminated[state] = terminated.get(state, 0) + 1
            return True

        drive(lambda: conn, run, pool, s, trial.rng, strike)
        report = verify(conn, run, http)
    trial.finish(
        "terminate",
        report,
        terminated=terminated,
        worker_exits=pool.restarts,
    )
    assert sum(terminated.values()) >= 3, terminated
    assert_stall(
        report.longest_stall_per_fault,
        bound=MAX_STALL_AFTER_OUTAGE,
        what="terminate",
        detail=f"{report.timeline}\n{pool.logs()}",
    )


# -- a frozen worker ----------------------------------------------------------------------------

FREEZE_LEASE = 1.0
FROZEN_SECONDS = 3.0
HOLD_SECONDS = 0.4


def _holding_step(conn: Conn) -> str | None:
    """The instance whose first step worker A (``fxw0``) is executing right now, if any."""
    row = conn.execute(
        "SELECT query FROM pg_stat_activity WHERE application_name = 'fxw0' "
        "AND state = 'active' AND query LIKE %s LIMIT 1",
        (f"%pg_sleep({HOLD_SECONDS})%",),
    ).fetchone()
    m = None if row is None else _INSTANCE.search(row[0])
    return None if m is None else m[1]


@pytest.mark.timeout(900)
def test_frozen_worker_past_its_lease_is_fenced(
    make_db: Callable[..., str],
    trial: Trial,
) -> None:
    """Worker A is frozen (SIGSTOP) in the middle of a step, holding its uncommitted effect,
    until its 1 s lease is long gone and worker B has taken the instance over; then resumed
    (SIGCONT). A's late checkpoint is refused by the fence, its transaction rolls back, and
    B's execution of the same step is the one that commits: the work is done once."""
    freezes = 8 if trial.long_mode else 1
    url = make_db()
    with connect(url) as conn:
        run = prepare(conn, Workload("http://127.0.0.1:9", https=0, hold=HOLD_SECONDS))
        a = trial.pool(url, 1, "--concurrency", "4", "--log-format", "json", lease=FREEZE_LEASE)
        b = trial.pool(url, 1, "--concurrency", "4", lease=FREEZE_LEASE)
        b.workers[0].args[b.workers[0].args.index("--db") + 1] = with_app_name(url, "fxwb")
        a.workers[0].args.remove("--quiet")  # A's log must show the refused checkpoint
        b.start()
        b_proc = b.workers[0].proc
        assert b_proc is not None
        frozen: list[str] = []
        for _ in range(freezes):
            # B pauses (holding nothing) while A starts and claims this round's instances.
            b_proc.send_signal(signal.SIGSTOP)
            a.start()
            start_instances(conn, run, 3, trial.rng)
            held = wait_until(lambda: _holding_step(conn), 20, step=0.005)
            assert held, a.logs()
            a_proc = a.workers[0].proc
            assert a_proc is not None
            a_proc.send_signal(signal.SIGSTOP)
            b_proc.send_signal(signal.SIGCONT)
            frozen.append(held)
            time.sleep(FROZEN_SECONDS)
            # B has taken the instance over; its run of the same step waits for A's row lock.
            a_proc.send_signal(signal.SIGCONT)
            ids = list(run.designed)
            assert wait_until(lambda ids=ids: not unfinished(conn, ids), 30), a.logs() + b.logs()
            assert a.workers[0].stop(signal.SIGTERM) == 0, a.logs()
        report = verify(conn, run, None)
    a_log = a.full_log(a.workers[0])
    server_log = EmbeddedServer(os.environ[ENV_DATA_DIR]).log_file.read_text(errors="replace")
    refused = 0
    for iid in frozen:
        # The frozen worker's run was refused once it woke: lost to B, its effect rolled back
        # (verify found every effect once).
        assert re.search(rf'"instance": "{iid}", "event": "lease_lost"', a_log), a_log
        refused += f"instance {iid} is not leased by" in server_log
    trial.finish("sigstop", report, freezes=freezes, refused=refused)
    # Woken, the worker sends the checkpoint of the step it had run before its heartbeat
    # notices the lost lease (asyncio serves the socket before the overdue timer): the fence
    # (DF001, migration 0002) refuses it.
    assert refused >= 1, server_log[-5000:]
    assert_stall(
        report.longest_stall_per_fault,
        bound=MAX_STALL_AFTER_OUTAGE,
        allowance=FROZEN_SECONDS,
        what="sigstop",
        detail=report.timeline,
    )
