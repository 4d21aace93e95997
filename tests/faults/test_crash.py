"""Crash recovery with a real ``dfc worker`` process: SIGKILL at random moments, restart, and
check that every instance completes and every step's effect exists exactly once (SPEC §5.3)."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

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


def steps_done(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM crash_t").fetchone()
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
        time.sleep(1.0)
        w.start()
        info = None
        for _ in range(200):
            info = instances.status(conn, iid)
            if info.finished:
                break
            time.sleep(0.05)
        assert info is not None and info.status == "completed", w.stderr()
        assert info.result == {"rows": [{"w": "woke"}], "row_count": 1}
        assert info.finished_at is not None
        # It woke on time (3 s after the timer started), not 3 s after the restart.
        waited = (info.finished_at - timer_started).total_seconds()
        assert 2.9 <= waited < 4.5, waited
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
        time.sleep(1.5)
        # The first steps are running (3 s each): SIGTERM lets them finish, then releases.
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


@pytest.mark.timeout(60)
def test_ctrl_c_leaves_a_resumable_instance(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    flow = tmp_path / "nap.df"
    flow.write_text("df.sleep(3) ~> 'SELECT ''awake'' AS s'\n")
    cmd = [*DFC, "--no-color", "run", str(flow), "--db", db_url]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, out + err
    m = re.search(r"--resume ([0-9a-f]{8})", err)
    assert m is not None, err
    iid = m.group(1)
    with connect(db_url) as conn:
        assert instances.status(conn, iid).status == "running"
        # Released, not abandoned: no lease to wait for.
        assert conn.execute(
            "SELECT lease_owner FROM dfc.queue WHERE instance_id = %s", (iid,)
        ).fetchone() == (None,)
    started = time.monotonic()
    done = subprocess.run([*cmd, "--resume", iid], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"s": "awake"' in done.stdout
    assert time.monotonic() - started < 4  # the timer kept its deadline across the interruption


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
