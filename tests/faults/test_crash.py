"""Crash recovery with real ``dfc worker`` and ``dfc run`` processes: SIGKILL at random
moments, restart, and check that every instance completes and every step's effect exists
exactly once; that a killed worker's instances resume at once, not after their leases; that
`dfc run` keeps its instance from other workers; and that SIGTERM and Ctrl-C stop gracefully
(SPEC §5.3)."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dfc.plan.model import Plan, PlanNode
from dfc.plan.nodes import Sleep, Sql, Then
from dfc.runtime import instances
from dfc.store.db import connect
from dfc.store.registry import deploy

pytestmark = [pytest.mark.db, pytest.mark.slow]

STEPS = 20
INSTANCES = 100


def chain_plan(name: str, queries: list[str]) -> Plan:
    """A sequential plan of SQL steps (n1 ~> n2 ~> ...), built without the front end."""
    nodes: dict[str, PlanNode] = {}
    for i, q in enumerate(queries, 1):
        nodes[f"s{i}"] = PlanNode(id=f"s{i}", config=Sql(query=q))
    root = "s1"
    for i in range(2, len(queries) + 1):
        nid = f"t{i}"
        nodes[nid] = PlanNode(id=nid, config=Then(), children=(root, f"s{i}"))
        root = nid
    return Plan(name=name, root=root, nodes=nodes)


DFC = [sys.executable, "-c", "from dfc.cli.main import main; main()"]
"""The `dfc` command of this interpreter (the console script may not be on PATH)."""


def worker_cmd(url: str, *extra: str) -> list[str]:
    return [*DFC, "worker", "--db", url, "--quiet", *extra]


class WorkerProcess:
    """A `dfc worker` subprocess that tests kill and restart; its stderr goes to a file."""

    def __init__(self, url: str, *extra: str, env: dict[str, str] | None = None) -> None:
        self.args = worker_cmd(url, *extra)
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log = tempfile.NamedTemporaryFile(prefix="dfc-worker-", suffix=".log", delete=False)  # noqa: SIM115

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.args, env=self.env, stdout=subprocess.DEVNULL, stderr=self.log
        )
        self.starts += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        assert self.proc is not None
        if self.alive():
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def stderr(self) -> str:
        self.log.flush()
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()[-3000:]

    def close(self) -> None:
        self.kill()
        self.log.close()
        os.unlink(self.log.name)


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    made: list[WorkerProcess] = []
    yield made
    for w in made:
        w.close()


def unfinished(conn: psycopg.Connection, ids: list[str]) -> int:
    row = conn.execute(
        "SELECT count(*) FROM dfc.instances WHERE id = ANY(%s) AND status IN ('pending', 'running')",
        (ids,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def wait_until(what: str, ready: Callable[[], bool], timeout: float = 30) -> None:
    """Poll ``ready`` until it holds; fail saying ``what`` did not happen in time."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:g} s"
        time.sleep(0.02)


def scalar(conn: psycopg.Connection, query: str, *params: object) -> object:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def registered(conn: psycopg.Connection, proc: subprocess.Popen[Any] | None) -> datetime:
    """When the worker of process ``proc`` (a `dfc worker` or `dfc run`) registered; for a
    `dfc run` that was done before it was seen, when it was seen to have exited."""
    assert proc is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        row = conn.execute(
            "SELECT started_at FROM dfc.workers WHERE pid = %s", (proc.pid,)
        ).fetchone()
        if row is not None:
            return row[0]  # type: ignore[no-any-return]
        if proc.poll() is not None:
            return scalar(conn, "SELECT clock_timestamp()")  # type: ignore[return-value]
        time.sleep(0.01)
    raise AssertionError("the worker did not register within 30 s")


_DEADLINE = """
SELECT ns.started_at + make_interval(secs => %s)
  FROM dfc.node_states ns WHERE ns.instance_id = %s AND ns.node_type = 'SLEEP'
"""


def sleep_past_deadline(conn: psycopg.Connection, iid: str, seconds: float) -> None:
    """Wait until the instance's timer of ``seconds`` is due."""
    left = scalar(conn, f"SELECT extract(epoch FROM ({_DEADLINE}) - now())::float8", seconds, iid)
    time.sleep(max(0.0, float(left) + 0.1))  # type: ignore[arg-type]


def woke_late(conn: psycopg.Connection, iid: str, seconds: float, up: datetime) -> float:
    """Seconds from the later of the timer's deadline (a timer of ``seconds``) and ``up`` (when
    a worker that could wake it was there) to the end of the instance: a fraction of a second
    when the timer kept its deadline, ``seconds`` more when a restart armed it again."""
    late = scalar(
        conn,
        "SELECT extract(epoch FROM i.finished_at - greatest(d.at, %s))::float8"
        f"  FROM dfc.instances i, ({_DEADLINE}) AS d(at) WHERE i.id = %s",
        up,
        seconds,
        iid,
        iid,
    )
    assert late is not None
    return float(late)  # type: ignore[arg-type]


def sleeping(conn: psycopg.Connection, call: str) -> int:
    """How many other sessions are running a statement that holds ``call``."""
    return int(
        scalar(  # type: ignore[arg-type]
            conn,
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active'"
            " AND pid <> pg_backend_pid() AND strpos(query, %s) > 0",
            call,
        )
    )


def steps_done(conn: psycopg.Connection) -> int:
    return steps_in(conn, "crash_t")


def steps_in(conn: psycopg.Connection, table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def crash_until_done(
    url: str,
    conn: psycopg.Connection,
    ids: list[str],
    workers: list[WorkerProcess],
    *,
    concurrency: int,
) -> WorkerProcess:
    """Run a worker that crashes itself at the critical points (effects done, checkpoint
    written but not committed, committed but not yet acted on), restarting it until every
    instance has finished; returns it (killed)."""
    crashy = WorkerProcess(
        url,
        "--concurrency",
        str(concurrency),
        "--lease-seconds",
        "1",
        env={
            "DFC_FAULT": "after_step_sql:crash:0.01,before_commit:crash:0.01,after_commit:crash:0.01"
        },
    )
    workers.append(crashy)
    deadline = time.monotonic() + 120
    while unfinished(conn, ids) and time.monotonic() < deadline:
        if not crashy.alive():
            crashy.start()
        time.sleep(0.2)
    assert unfinished(conn, ids) == 0, crashy.stderr()
    crashy.kill()
    return crashy


@pytest.mark.timeout(180)
def test_sigkill_at_random_moments_loses_and_repeats_nothing(
    db_url: str, workers: list[WorkerProcess]
) -> None:
    started = time.monotonic()
    rng = random.Random(int(os.environ.get("DFC_CRASH_SEED", "5")))
    with connect(db_url) as conn:
        conn.execute("CREATE TABLE crash_t (k text PRIMARY KEY)")
        plan = chain_plan(
            "crash",
            [
                f"INSERT INTO crash_t (k) VALUES ('{{sys_instance_id}}-s{i}')"
                for i in range(1, STEPS + 1)
            ],
        )
        version = deploy(conn, plan).version
        with conn.transaction():
            ids = [instances.start(conn, "crash", version) for _ in range(INSTANCES)]

        # Phase 1: kill the worker at random moments.
        w = WorkerProcess(db_url, "--concurrency", "16", "--lease-seconds", "1")
        workers.append(w)
        for _ in range(4):
            w.start()
            before = steps_done(conn)
            deadline = time.monotonic() + 20
            while steps_done(conn) == before and time.monotonic() < deadline:
                time.sleep(0.02)  # wait for the worker to make progress, then kill it mid-flight
            time.sleep(rng.uniform(0.02, 0.25))
            w.kill()
        assert unfinished(conn, ids) > 0, "phase 1 finished everything: kill sooner"
        # Phase 2: the worker crashes itself at the critical points (effects done, checkpoint
        # written but not committed, committed but not yet acted on); restart it until done.
        crashy = crash_until_done(db_url, conn, ids, workers, concurrency=16)

        statuses = dict(
            conn.execute(
                "SELECT status, count(*) FROM dfc.instances WHERE id = ANY(%s) GROUP BY status",
                (ids,),
            ).fetchall()
        )
        assert statuses == {"completed": INSTANCES}
        # Every step's row exists, and none twice (a second execution would have hit the primary
        # key and failed its instance, so "all completed" already says most of it).
        assert conn.execute("SELECT count(*), count(DISTINCT k) FROM crash_t").fetchone() == (
            INSTANCES * STEPS,
            INSTANCES * STEPS,
        )
        assert conn.execute(
            "SELECT count(*) FROM dfc.node_state WHERE instance_id = ANY(%s) AND status = 'completed'",
            (ids,),
        ).fetchone() == (INSTANCES * STEPS,)
    elapsed = time.monotonic() - started
    print(
        f"crash test: {INSTANCES} x {STEPS} steps, {w.starts} kills + {crashy.starts} crashing runs, {elapsed:.1f} s"
    )
    assert elapsed < 150


@pytest.mark.timeout(60)
def test_timer_survives_a_worker_restart(db_url: str, workers: list[WorkerProcess]) -> None:
    with connect(db_url) as conn:
        nodes = {
            "a": PlanNode(id="a", config=Sleep(seconds=3)),
            "b": PlanNode(id="b", config=Sql(query="SELECT 'woke' AS w")),
            "r": PlanNode(id="r", config=Then(), children=("a", "b")),
        }
        version = deploy(conn, Plan(name="timer", root="r", nodes=nodes)).version
        iid = instances.start(conn, "timer", version)
        w = WorkerProcess(db_url, "--lease-seconds", "1")
        workers.append(w)
        w.start()
        timer_started = None
        for _ in range(100):
            row = conn.execute(
                "SELECT started_at FROM dfc.node_state WHERE instance_id = %s AND key = 'a'", (iid,)
            ).fetchone()
            if row is not None:
                timer_started = row[0]
                break
            time.sleep(0.1)
        assert timer_started is not None, w.stderr()
        w.kill()
        sleep_past_deadline(conn, iid, 3)  # so that a timer armed again would show
        w.start()
        up = registered(conn, w.proc)
        info = None
        for _ in range(200):
            info = instances.status(conn, iid)
            if info.finished:
                break
            time.sleep(0.05)
        assert info is not None and info.status == "completed", w.stderr()
        assert info.result == {"rows": [{"w": "woke"}], "row_count": 1}
        assert info.finished_at is not None
        # It woke on time (as soon as the new worker was up), not 3 s after the restart.
        waited = (info.finished_at - timer_started).total_seconds()
        assert waited >= 2.9, waited
        assert woke_late(conn, iid, 3, up) < 2.0
        assert w.stop() == 0


@pytest.mark.timeout(60)
def test_sigterm_releases_in_flight_work(db_url: str, workers: list[WorkerProcess]) -> None:
    with connect(db_url) as conn:
        nodes = {
            "a": PlanNode(id="a", config=Sql(query="SELECT pg_sleep(3)")),
            "b": PlanNode(id="b", config=Sql(query="SELECT 'second' AS s")),
            "r": PlanNode(id="r", config=Then(), children=("a", "b")),
        }
        version = deploy(conn, Plan(name="term", root="r", nodes=nodes)).version
        with conn.transaction():
            ids = [instances.start(conn, "term", version) for _ in range(5)]
        w = WorkerProcess(db_url, "--lease-seconds", "30")
        workers.append(w)
        w.start()
        # Signalled once every instance is claimed and a first step runs (3 s each): SIGTERM
        # lets them finish, then releases.
        wait_until(
            "claiming every instance and starting its first step",
            lambda: (
                scalar(
                    conn,
                    "SELECT count(*) FROM dfc.queue WHERE instance_id = ANY(%s)"
                    " AND lease_owner IS NOT NULL",
                    ids,
                )
                == 5
                and sleeping(conn, "pg_sleep(3)") > 0
            ),
        )
        assert unfinished(conn, ids) == 5
        t0 = time.monotonic()
        assert w.stop(signal.SIGTERM) == 0, w.stderr()
        assert time.monotonic() - t0 < 12
        # Nothing is left leased to the stopped worker: a new one continues at once, not after
        # the 30 s lease.
        assert conn.execute(
            "SELECT count(*) FROM dfc.queue WHERE lease_owner IS NOT NULL"
        ).fetchone() == (0,)
        w2 = WorkerProcess(db_url)
        workers.append(w2)
        w2.start()
        deadline = time.monotonic() + 20
        while unfinished(conn, ids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert unfinished(conn, ids) == 0, w2.stderr()
        assert w2.stop() == 0, w2.stderr()


class RunProcess:
    """A `dfc run` subprocess; its standard error is read as it comes (the instance id first)."""

    def __init__(self, flow: Path, url: str, *extra: str, env: dict[str, str] | None = None):
        self.args = [*DFC, "--no-color", "run", str(flow), "--db", url, *extra]
        self.proc = subprocess.Popen(
            self.args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.err: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line)

    def stderr(self) -> str:
        return "".join(self.err)

    def instance_id(self) -> str:
        """The id `dfc run` prints once it has started the instance."""
        found: list[str] = []

        def printed() -> bool:
            m = re.search(r"instance ([0-9a-f]{8}) of", self.stderr())
            if m is not None:
                found.append(m.group(1))
            assert self.proc.poll() is None or m is not None, self.stderr()
            return m is not None

        wait_until("dfc run printing its instance", printed)
        return found[0]

    def finish(self, timeout: float = 30) -> tuple[int, str]:
        """Wait for the exit; returns the exit code and standard output."""
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()
        code = self.proc.wait(timeout)
        self._reader.join(5)
        self.proc.stdout.close()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return code, out

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.finish()


def released(conn: psycopg.Connection, iid: str) -> bool:
    """Whether the instance is due for any worker: no lease, no owner, run_at reached."""
    return conn.execute(
        "SELECT lease_owner IS NULL AND owned_by IS NULL AND run_at <= now()"
        " FROM dfc.queue WHERE instance_id = %s",
        (iid,),
    ).fetchone() == (True,)


@pytest.mark.timeout(60)
def test_ctrl_c_leaves_a_resumable_instance(db_url: str, tmp_path: Path) -> None:
    flow = tmp_path / "nap.df"
    flow.write_text("df.sleep(2) ~> 'SELECT ''awake'' AS s'\n")
    run = RunProcess(flow, db_url)
    iid = run.instance_id()
    with connect(db_url) as conn:
        # Interrupted while its timer runs (the worker holds no step: nothing to wait for).
        wait_until(
            "the timer starting",
            lambda: (
                scalar(
                    conn,
                    "SELECT count(*) FROM dfc.node_state WHERE instance_id = %s AND status = 'waiting'",
                    iid,
                )
                == 1
            ),
        )
        run.proc.send_signal(signal.SIGINT)
        code, out = run.finish()
        assert code == 130, out + run.stderr()
        assert f"--resume {iid}" in run.stderr()
        assert instances.status(conn, iid).status == "running"
        # Released, not abandoned: no lease to wait for, no owner.
        assert conn.execute(
            "SELECT lease_owner, owned_by FROM dfc.queue WHERE instance_id = %s", (iid,)
        ).fetchone() == (None, None)
        sleep_past_deadline(conn, iid, 2)  # so that a timer armed again would show
        resumed = RunProcess(flow, db_url, "--resume", iid)
        up = registered(conn, resumed.proc)
        code, out = resumed.finish()
        assert code == 0, out + resumed.stderr()
        assert '"s": "awake"' in out
        # The timer kept its deadline across the interruption.
        assert woke_late(conn, iid, 2, up) < 2.0


@pytest.mark.timeout(60)
def test_first_ctrl_c_lets_the_running_step_finish(db_url: str, tmp_path: Path) -> None:
    flow = tmp_path / "slow.df"
    flow.write_text("'SELECT pg_sleep(1.5) AS a' ~> 'SELECT ''second'' AS b'\n")
    run = RunProcess(flow, db_url)
    iid = run.instance_id()
    with connect(db_url) as conn:
        wait_until("the first step starting", lambda: sleeping(conn, "pg_sleep(1.5)") > 0)
        run.proc.send_signal(signal.SIGINT)
        code, out = run.finish()
        assert code == 130, out + run.stderr()
        assert "letting running steps finish (up to 10 s)" in run.stderr()
        assert f"--resume {iid}" in run.stderr()
        # The running step finished and committed; the next one was not started.
        assert conn.execute(
            "SELECT status FROM dfc.node_state WHERE instance_id = %s ORDER BY seq", (iid,)
        ).fetchall() == [("completed",)]
        assert released(conn, iid)
    done = subprocess.run([*run.args, "--resume", iid], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"b": "second"' in done.stdout


@pytest.mark.timeout(60)
def test_second_ctrl_c_cancels_the_running_step(db_url: str, tmp_path: Path) -> None:
    flow = tmp_path / "long.df"
    flow.write_text("'SELECT pg_sleep(30) AS a'\n")
    run = RunProcess(flow, db_url)
    iid = run.instance_id()
    with connect(db_url) as conn:
        wait_until("the step starting", lambda: sleeping(conn, "pg_sleep(30)") > 0)
        run.proc.send_signal(signal.SIGINT)
        wait_until("the first Ctrl-C's message", lambda: "Ctrl-C again" in run.stderr())
        t0 = time.monotonic()
        run.proc.send_signal(signal.SIGINT)
        code, out = run.finish()
        assert code == 130, out + run.stderr()
        assert time.monotonic() - t0 < 5
        assert "cancelling running steps" in run.stderr()
        assert f"--resume {iid}" in run.stderr()
        # Rolled back, nothing recorded, released for `--resume` or any worker.
        assert scalar(conn, "SELECT count(*) FROM dfc.node_state WHERE instance_id = %s", iid) == 0
        assert sleeping(conn, "pg_sleep(30)") == 0
        assert instances.status(conn, iid).status == "running"
        assert released(conn, iid)
        instances.cancel(conn, iid)


# -- instant recovery ----------------------------------------------------------------------------

STILL_AT_MOST = 3.0  # seconds an instance may stand still between two of its steps


def stepping_plan(name: str, table: str, steps: int, sleep: float) -> Plan:
    """Steps that each take ``sleep`` seconds and record when they ran in ``table``."""
    return chain_plan(
        name,
        [
            f"SELECT pg_sleep({sleep}); INSERT INTO {table} (k) VALUES ('{{sys_instance_id}}-{i}')"
            for i in range(1, steps + 1)
        ],
    )


def create_step_table(conn: psycopg.Connection, table: str) -> None:
    conn.execute(
        f"CREATE TABLE {table} (k text PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())"
    )


def largest_stall(conn: psycopg.Connection, table: str) -> tuple[float, str]:
    """The longest time any instance stood still between two of its steps, and which."""
    row = conn.execute(
        f"""
        SELECT extract(epoch FROM at - lag(at) OVER w)::float8 AS gap, split_part(k, '-', 1)
          FROM {table}
        WINDOW w AS (PARTITION BY split_part(k, '-', 1) ORDER BY at)
        ORDER BY gap DESC NULLS LAST LIMIT 1
        """
    ).fetchone()
    assert row is not None
    return float(row[0]), str(row[1])


def check_exactly_once(conn: psycopg.Connection, table: str, ids: list[str], steps: int) -> None:
    assert dict(
        conn.execute(
            "SELECT status, count(*) FROM dfc.instances WHERE id = ANY(%s) GROUP BY status",
            (ids,),
        ).fetchall()
    ) == {"completed": len(ids)}
    n = len(ids) * steps
    assert scalar(conn, f"SELECT count(*) FROM {table}") == n


def resumed_from(conn: psycopg.Connection, previous: str) -> int:
    """How many instances recorded being resumed from worker ``previous``."""
    return int(
        scalar(  # type: ignore[arg-type]
            conn,
            "SELECT count(*) FROM dfc.history WHERE event = 'resumed' AND detail->>'previous' = %s",
            previous,
        )
    )


def worker_id(conn: psycopg.Connection, proc: subprocess.Popen[bytes] | None) -> str:
    """The id the worker process ``proc`` registered with."""
    assert proc is not None
    return str(scalar(conn, "SELECT id FROM dfc.workers WHERE pid = %s", proc.pid))


@pytest.mark.timeout(90)
def test_a_killed_workers_instances_resume_at_once(
    db_url: str, workers: list[WorkerProcess]
) -> None:
    """SIGKILL one of two workers mid-run: with the default 15 s lease, none of its instances
    stands still for more than 3 s. The survivor has room for all of them: how long instances
    wait for a free slot is the fairness slices' matter, not recovery's."""
    count, steps = 16, 30
    with connect(db_url) as conn:
        create_step_table(conn, "gap2_t")
        version = deploy(conn, stepping_plan("gap2", "gap2_t", steps, 0.03)).version
        pair = [WorkerProcess(db_url, "--concurrency", "16") for _ in range(2)]
        workers += pair
        for w in pair:
            w.start()
        wait_until(
            "both workers registering",
            lambda: scalar(conn, "SELECT count(*) FROM dfc.workers") == 2,
        )
        with conn.transaction():
            ids = [instances.start(conn, "gap2", version) for _ in range(count)]
        wait_until("steps running", lambda: steps_in(conn, "gap2_t") >= count * steps // 4)
        # The victim is the worker holding more instances (the other may hold none: whoever
        # claims first may take them all).
        victim, held = conn.execute(
            "SELECT lease_owner, count(*) FROM dfc.queue WHERE lease_owner IS NOT NULL"
            " GROUP BY lease_owner ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()  # type: ignore[misc]
        (killed,) = [w for w in pair if f":{w.proc.pid}:" in victim]  # type: ignore[union-attr]
        (b,) = [w for w in pair if w is not killed]
        killed.kill()
        wait_until("every instance finishing", lambda: unfinished(conn, ids) == 0, 60)
        check_exactly_once(conn, "gap2_t", ids, steps)
        assert 0 < resumed_from(conn, victim) <= held  # some may have finished before the kill
        stall, iid = largest_stall(conn, "gap2_t")
        print(f"two workers, one killed holding {held}: longest stall {stall:.2f} s ({iid})")
        assert stall < STILL_AT_MOST, (iid, b.stderr())
        assert b.stop() == 0, b.stderr()


@pytest.mark.timeout(90)
def test_a_worker_killed_and_restarted_resumes_at_once(
    db_url: str, workers: list[WorkerProcess]
) -> None:
    """SIGKILL the only worker and start it again at once: its instances continue as soon as
    the new process is up, not when the 15 s leases expire. The new process's start (the
    interpreter and its imports, seconds on a loaded machine) is not the runtime's to shorten:
    it is taken off the stall, and both are printed."""
    count, steps = 8, 30
    with connect(db_url) as conn:
        create_step_table(conn, "gap1_t")
        version = deploy(conn, stepping_plan("gap1", "gap1_t", steps, 0.03)).version
        with conn.transaction():
            ids = [instances.start(conn, "gap1", version) for _ in range(count)]
        w = WorkerProcess(db_url, "--concurrency", "8")
        workers.append(w)
        w.start()
        assert w.proc is not None
        wait_until("steps running", lambda: steps_in(conn, "gap1_t") >= count * steps // 3)
        victim = worker_id(conn, w.proc)
        w.kill()
        killed_at = scalar(conn, "SELECT clock_timestamp()")
        w.start()
        wait_until("every instance finishing", lambda: unfinished(conn, ids) == 0, 60)
        check_exactly_once(conn, "gap1_t", ids, steps)
        assert resumed_from(conn, victim) > 0
        stall, iid = largest_stall(conn, "gap1_t")
        startup = float(
            scalar(  # type: ignore[arg-type]
                conn,
                "SELECT extract(epoch FROM started_at - %s)::float8 FROM dfc.workers",
                killed_at,
            )
        )
        print(
            f"one worker killed and restarted: longest stall {stall:.2f} s ({iid}), "
            f"of which {startup:.2f} s starting the new process"
        )
        assert stall - startup < STILL_AT_MOST, (iid, w.stderr())
        assert w.stop() == 0, w.stderr()


@pytest.mark.timeout(90)
def test_a_frozen_worker_is_not_taken_for_dead(db_url: str, workers: list[WorkerProcess]) -> None:
    """SIGSTOP keeps the worker's session and so its lock: the other worker's reaper leaves its
    instances alone until their leases expire; resumed after that, its late checkpoints are
    refused (DF001) and every step still runs exactly once."""
    count, steps, lease = 4, 20, 8
    with connect(db_url) as conn:
        create_step_table(conn, "frozen_t")
        version = deploy(conn, stepping_plan("frozen", "frozen_t", steps, 0.05)).version
        frozen = WorkerProcess(db_url, "--lease-seconds", str(lease))
        workers.append(frozen)
        frozen.start()
        wait_until(
            "the worker registering", lambda: scalar(conn, "SELECT count(*) FROM dfc.workers") == 1
        )
        with conn.transaction():
            ids = [instances.start(conn, "frozen", version) for _ in range(count)]
        wait_until("steps running", lambda: steps_in(conn, "frozen_t") >= count * 2)
        assert frozen.proc is not None
        frozen.proc.send_signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        owner = worker_id(conn, frozen.proc)
        other = WorkerProcess(db_url, "--lease-seconds", str(lease))
        workers.append(other)
        other.start()
        try:
            wait_until(
                "the other worker registering",
                lambda: scalar(conn, "SELECT count(*) FROM dfc.workers") == 2,
            )
            # Reaper rounds of the other worker: one at its start, then about every second.
            time.sleep(1.5)
            assert time.monotonic() - stopped_at < lease - 0.5, "too slow to tell: longer lease"
            assert scalar(conn, "SELECT count(*) FROM dfc.workers WHERE id = %s", owner) == 1
            assert (
                scalar(conn, "SELECT count(*) FROM dfc.queue WHERE lease_owner = %s", owner)
                == scalar(
                    conn,
                    "SELECT count(*) FROM dfc.queue WHERE lease_owner = %s AND run_at > now()",
                    owner,
                )
                > 0
            )
            # Past its leases the other worker claims them; the frozen one's open transaction
            # (uncommitted step effects, locks) must end before their steps can run again.
            time.sleep(max(0.0, lease + 1 - (time.monotonic() - stopped_at)))
        finally:
            frozen.proc.send_signal(signal.SIGCONT)
        wait_until("every instance finishing", lambda: unfinished(conn, ids) == 0, 60)
        check_exactly_once(conn, "frozen_t", ids, steps)
        assert resumed_from(conn, owner) > 0
        assert frozen.stop() == 0, frozen.stderr()
        assert other.stop() == 0, other.stderr()


# -- dfc run owns its instance --------------------------------------------------------------------


class _Ping(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"pong": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def local_http() -> Iterator[str]:
    """``host:port`` of a local HTTP server answering every GET with 200."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ping)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def background_worker(
    url: str, workers: list[WorkerProcess], conn: psycopg.Connection
) -> WorkerProcess:
    """A registered `dfc worker` without any HTTP allow-list, idle and listening."""
    env = {k: v for k, v in os.environ.items() if k != "DFC_HTTP_ALLOW"}
    w = WorkerProcess(url)
    w.env = env
    workers.append(w)
    w.start()
    assert w.proc is not None
    pid = w.proc.pid
    wait_until(
        "the background worker registering",
        lambda: scalar(conn, "SELECT count(*) FROM dfc.workers WHERE pid = %s", pid) == 1,
    )
    return w


def history_workers(conn: psycopg.Connection, iid: str) -> list[tuple[str, str, str | None]]:
    """(event, worker, previous worker) of the instance's running and resumed events."""
    return [
        (r[0], r[1], r[2])
        for r in conn.execute(
            "SELECT event, detail->>'worker', detail->>'previous' FROM dfc.history"
            " WHERE instance_id = %s AND event IN ('running', 'resumed') ORDER BY seq",
            (iid,),
        )
    ]


@pytest.mark.timeout(90)
def test_dfc_run_keeps_its_instance_from_a_background_worker(
    db_url: str, tmp_path: Path, workers: list[WorkerProcess], local_http: str
) -> None:
    """Only `dfc run` may reach the HTTP server (DFC_HTTP_ALLOW in its environment alone): a
    background worker that claimed the instance would fail it."""
    flow = tmp_path / "ping.df"
    flow.write_text(
        f"'SELECT 1 AS a' ~> df.http('http://{local_http}/ping', 'GET') |=> 'r'"
        " ~> 'SELECT $r.status AS s'\n"
    )
    with connect(db_url) as conn:
        background = background_worker(db_url, workers, conn)
        for _ in range(2):
            run = RunProcess(flow, db_url, env={"DFC_HTTP_ALLOW": local_http})
            code, out = run.finish()
            assert code == 0, out + run.stderr() + background.stderr()
            assert '"s": 200' in out
            iid = run.instance_id()
            # Every event names `dfc run`'s worker (its id carries its pid), none the other.
            events = history_workers(conn, iid)
            assert [e[0] for e in events] == ["running"]
            assert events[0][1].split(":")[1] == str(run.proc.pid)
            shown = subprocess.run(
                [*DFC, "--no-color", "history", iid, "--db", db_url],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert f"worker={events[0][1]}" in shown.stdout, shown.stdout + shown.stderr
        assert background.stop() == 0, background.stderr()


@pytest.mark.timeout(90)
def test_a_killed_dfc_runs_instance_is_taken_over_at_once(
    db_url: str, tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    """`dfc run` killed with SIGKILL: a background worker continues its instance at once."""
    steps = 40
    flow = tmp_path / "chain.df"
    flow.write_text(
        " ~> ".join(
            f"'SELECT pg_sleep(0.03); INSERT INTO own_t (k) VALUES (''run-{i}'')'"
            for i in range(1, steps + 1)
        )
        + "\n"
    )
    with connect(db_url) as conn:
        create_step_table(conn, "own_t")
        background = background_worker(db_url, workers, conn)
        run = RunProcess(flow, db_url)
        iid = run.instance_id()
        wait_until("dfc run running steps", lambda: steps_in(conn, "own_t") >= 10)
        run.kill()
        wait_until("the instance finishing", lambda: unfinished(conn, [iid]) == 0, 60)
        assert instances.status(conn, iid).status == "completed", background.stderr()
        assert scalar(conn, "SELECT count(*) FROM own_t") == steps
        events = history_workers(conn, iid)
        assert events[0][1].split(":")[1] == str(run.proc.pid)
        assert events[-1][0] == "resumed" and events[-1][2] == events[0][1]
        stall, _ = largest_stall(conn, "own_t")
        print(f"dfc run killed, taken over: longest stall {stall:.2f} s")
        assert stall < STILL_AT_MOST, background.stderr()
        assert background.stop() == 0, background.stderr()


@pytest.mark.timeout(60)
def test_second_sigterm_cancels_running_steps(db_url: str, workers: list[WorkerProcess]) -> None:
    with connect(db_url) as conn:
        nodes = {"a": PlanNode(id="a", config=Sql(query="SELECT pg_sleep(30)"))}
        version = deploy(conn, Plan(name="long", root="a", nodes=nodes)).version
        iid = instances.start(conn, "long", version)
        w = WorkerProcess(db_url)
        workers.append(w)
        w.start()
        for _ in range(100):
            if instances.status(conn, iid).status == "running":
                break
            time.sleep(0.1)
        time.sleep(0.5)
        assert w.proc is not None
        w.proc.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert w.alive()  # waiting for the running step to finish (grace period)
        t0 = time.monotonic()
        assert w.stop(signal.SIGTERM) == 0, w.stderr()
        assert time.monotonic() - t0 < 5
        # The step was cancelled and rolled back; the instance is released for the next worker.
        assert instances.status(conn, iid).status == "running"
        assert conn.execute(
            "SELECT lease_owner, run_at <= now() FROM dfc.queue WHERE instance_id = %s", (iid,)
        ).fetchone() == (None, True)
        assert conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%%pg_sleep(30)%%' AND state = 'active' AND pid <> pg_backend_pid()"
        ).fetchone() == (0,)
        instances.cancel(conn, iid)


@pytest.mark.timeout(180)
def test_steps_run_as_another_role_survive_sigkill_exactly_once(
    db_url: str, workers: list[WorkerProcess]
) -> None:
    """The executor call, the session reset and the checkpoint commit together: a worker
    killed anywhere in an as-role step neither loses nor repeats its effect."""
    role = f"dfc_crash_{random.randrange(16**6):06x}"
    steps, count = 10, 30
    with connect(db_url) as conn:
        conn.execute(f'CREATE ROLE "{role}"')
        try:
            conn.execute("SELECT dfc.create_executor(%s::regrole)", (role,))
            conn.execute("CREATE TABLE crash_role (k text PRIMARY KEY, who text)")
            conn.execute(f'GRANT ALL ON crash_role TO "{role}"')
            plan = chain_plan(
                "crash_role",
                [
                    "SELECT pg_sleep(0.005); INSERT INTO crash_role (k, who) "
                    f"VALUES ('{{sys_instance_id}}-s{i}', current_user)"
                    for i in range(1, steps + 1)
                ],
            )
            version = deploy(conn, plan).version
            with conn.transaction():
                ids = [
                    str(
                        conn.execute(
                            "SELECT dfc.start_instance('crash_role', %s, NULL, '{}', %s)",
                            (version, role),
                        ).fetchone()[0]  # type: ignore[index]
                    )
                    for _ in range(count)
                ]
            w = WorkerProcess(db_url, "--concurrency", "8", "--lease-seconds", "1")
            workers.append(w)
            for _ in range(3):  # killed mid-flight
                w.start()
                time.sleep(random.uniform(0.3, 0.8))
                w.kill()
            crashy = crash_until_done(db_url, conn, ids, workers, concurrency=8)
            statuses = dict(
                conn.execute(
                    "SELECT status, count(*) FROM dfc.instances WHERE id = ANY(%s) GROUP BY status",
                    (ids,),
                ).fetchall()
            )
            assert statuses == {"completed": count}, crashy.stderr()
            assert conn.execute(
                "SELECT count(*), count(DISTINCT k), min(who), max(who) FROM crash_role"
            ).fetchone() == (count * steps, count * steps, role, role)
            assert crashy.starts > 1, "no crash happened: raise the fault probabilities"
        finally:
            conn.execute(f'DROP OWNED BY "{role}"')
            conn.execute(f'DROP ROLE "{role}"')
