"""Recovery and memory benchmarks (SPEC §9).

    python bench/recovery.py [--db URL] [--instances 10000] [--steps 5]

(1) Recovery: N instances in flight (each a chain of steps inserting a unique row), a `dfc worker`
    process killed with SIGKILL part-way, then restarted. Reports the time until the work of the
    dead worker resumed (its leases expire) and until everything completed, and checks that every
    step's row exists exactly once.
(2) Memory: the resident size of a worker after it has brought N instances to a signal wait
    (released to the database, as waiting instances are), and of an idle worker for comparison.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from steps import bench_database, chain, conditions

from dfc.plan.model import Plan, PlanNode
from dfc.plan.nodes import Signal, Sql, Then
from dfc.runtime import instances
from dfc.store.db import connect
from dfc.store.registry import deploy

_WORKER = """
import sys
from dfc.runtime.logs import StepLog
from dfc.runtime.worker import WorkerOptions, run_worker
run_worker(sys.argv[1], WorkerOptions(concurrency=int(sys.argv[2]), lease_seconds=float(sys.argv[3]),
           retention_every=0), log=StepLog(quiet=True))
"""


def worker(url: str, concurrency: int, lease: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", _WORKER, url, str(concurrency), str(lease)],
        stderr=subprocess.DEVNULL,
    )


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_many(url: str, plan: Plan, n: int) -> list[str]:
    with connect(url) as conn:
        version = deploy(conn, plan).version
        ids: list[str] = []
        for i in range(0, n, 1000):
            with conn.transaction():
                ids += [instances.start(conn, plan.name, version) for _ in range(min(1000, n - i))]
    return ids


def count(url: str, sql: str, *args: object) -> int:
    with connect(url) as conn:
        row = conn.execute(sql, args).fetchone()
    assert row is not None
    return int(row[0])


def recovery(url: str, n: int, steps: int, concurrency: int, lease: float) -> None:
    with connect(url) as conn:
        conn.execute("DROP TABLE IF EXISTS rec_t")
        conn.execute("CREATE TABLE rec_t (k text PRIMARY KEY)")
    plan = chain(
        "bench_recovery",
        [f"INSERT INTO rec_t VALUES ('{{sys_instance_id}}-{i}')" for i in range(steps)],
    )
    ids = start_many(url, plan, n)
    unfinished = (
        "SELECT count(*) FROM dfc.instances WHERE id = ANY(%s) AND status IN ('pending', 'running')"
    )
    w = worker(url, concurrency, lease)
    t0 = time.monotonic()
    while count(url, unfinished, ids) > n * 0.6:
        time.sleep(0.1)
    held = count(url, "SELECT count(*) FROM dfc.queue WHERE lease_owner IS NOT NULL")
    rows_before = count(url, "SELECT count(*) FROM rec_t")
    w.send_signal(signal.SIGKILL)
    w.wait()
    killed_at = time.monotonic()
    w = worker(url, concurrency, lease)
    resumed = None
    try:
        while count(url, unfinished, ids):
            if resumed is None and count(
                url,
                "SELECT count(*) FROM dfc.queue WHERE lease_owner IS NOT NULL AND claimed_at > now() - interval '1 hour'"
                " AND instance_id IN (SELECT instance_id FROM dfc.history WHERE event = 'resumed')",
            ):
                resumed = time.monotonic() - killed_at
            time.sleep(0.1)
        done_at = time.monotonic()
    finally:
        w.terminate()
        w.wait(30)
    rows = count(url, "SELECT count(*) FROM rec_t")
    completed = count(
        url, "SELECT count(*) FROM dfc.instances WHERE id = ANY(%s) AND status = 'completed'", ids
    )
    print(
        f"(1) recovery: {n} instances x {steps} steps, worker concurrency {concurrency}, lease {lease:g} s; "
        f"SIGKILL after {killed_at - t0:.1f} s with {held} instances leased and {rows_before} steps done; "
        f"restarted at once: dead worker's instances resumed after {resumed if resumed is not None else float('nan'):.1f} s, "
        f"all done {done_at - killed_at:.1f} s after the kill; completed {completed}/{n}, "
        f"step rows {rows} (expected {n * steps}, duplicates impossible: primary key)"
    )
    assert completed == n and rows == n * steps


def memory(url: str, n: int, concurrency: int) -> None:
    nodes = {
        "a": PlanNode(id="a", config=Sql(query="SELECT 1")),
        "b": PlanNode(id="b", config=Signal(name="never")),
        "r": PlanNode(id="r", config=Then(), children=("a", "b")),
    }
    idle = worker(url, concurrency, 15)
    time.sleep(3)
    idle_rss = rss_mb(idle.pid)
    idle.terminate()
    idle.wait(30)
    ids = start_many(url, Plan(name="bench_wait", root="r", nodes=nodes), n)
    w = worker(url, concurrency, 15)
    try:
        waiting = (
            "SELECT count(*) FROM dfc.node_state WHERE instance_id = ANY(%s) AND node_id = 'b'"
        )
        while count(url, waiting, ids) < n:
            time.sleep(0.2)
        time.sleep(1)
        print(
            f"(2) memory: worker RSS {rss_mb(w.pid):.0f} MB after bringing {n} instances to a signal wait "
            f"(idle worker: {idle_rss:.0f} MB); waiting instances live in the database, not in the worker"
        )
    finally:
        w.terminate()
        w.wait(30)
    with connect(url) as conn, conn.transaction():
        for iid in ids:
            instances.cancel(conn, iid, "benchmark done")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--db")
    ap.add_argument("--instances", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--lease-seconds", type=float, default=5.0)
    args = ap.parse_args()
    url = bench_database(args.db)
    print(f"conditions: {conditions(url)}, pid {os.getpid()}")
    recovery(url, args.instances, args.steps, args.concurrency, args.lease_seconds)
    memory(url, args.instances, args.concurrency)


if __name__ == "__main__":
    main()
