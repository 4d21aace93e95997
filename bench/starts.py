"""Workload 6b: starting instances.

**start latency**: with a worker already running and idle (concurrency 8, warmed up), the time
from the start call until the instance's first step runs; the step records
``clock_timestamp()`` in a table, compared with the client's clock before the call (corrected by
the offset between the two clocks). Once started by ``SELECT df.start(...)`` in autocommit (the
SQL surface, a graph the worker compiles once and then remembers), once by
`dfc.runtime.instances.start` in a transaction of its own (a deployed workflow); the median of
the repeats each.

**starts per second**: the same two calls in a loop from one client, autocommit, with no worker
running (so that only the start is measured).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg

from bench.context import Bench
from bench.report import Figure, median
from bench.server import (
    WorkerProcess,
    chain_text,
    clean,
    compile_text,
    sql_step,
    wait_idle,
)
from dfc.runtime import instances
from dfc.store.db import connect
from dfc.store.registry import deploy

CONCURRENCY = 8
FIRST_STEP = "INSERT INTO bench_first (id) VALUES ('{sys_instance_id}')"
SQL_LABEL = "bench-first"
TIMEOUT = 60.0

Starter = Callable[[psycopg.Connection[Any]], str]
"""Starts one instance on the connection and returns its id."""


def start(bench: Bench) -> Iterator[Figure]:
    """Start-to-first-step latency and starts per second, through SQL and through Python."""
    clean(bench.url)
    plan = compile_text(chain_text("bench-first-py", [sql_step(FIRST_STEP)]), "bench_first")
    with connect(bench.url) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_first")
        conn.execute(
            "CREATE TABLE bench_first (id text PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())"
        )
        version = deploy(conn, plan).version

    def by_sql(conn: psycopg.Connection[Any]) -> str:
        row = conn.execute("SELECT df.start(%s, %s)", (FIRST_STEP, SQL_LABEL)).fetchone()
        assert row is not None
        return str(row[0])

    def by_python(conn: psycopg.Connection[Any]) -> str:
        with conn.transaction():
            return instances.start(conn, plan.name, version)

    ways: list[tuple[str, str, Starter]] = [
        ("sql", "SELECT df.start(...)", by_sql),
        ("python", "dfc.runtime.instances.start", by_python),
    ]
    repeats = max(bench.sizes.repeats, 3) * 2
    worker = WorkerProcess(bench.url, CONCURRENCY).start()
    try:
        wait_idle(bench.url, worker)
        with connect(bench.url) as conn, connect(bench.url) as watch:
            offset = _clock_offset(watch)
            for key, how, starter in ways:
                _first_step_latency(conn, watch, starter, offset, worker)  # warm-up
                times = [
                    _first_step_latency(conn, watch, starter, offset, worker)
                    for _ in range(repeats)
                ]
                yield Figure(
                    key=f"dfc.start.latency.{key}",
                    workload="start",
                    figure=f"start to first step, {how}",
                    value=median(times) * 1000,
                    unit="ms",
                    conditions={
                        "workers": f"1 × {CONCURRENCY}, idle",
                        "repeats": repeats,
                    },
                )
    finally:
        worker.stop()
    n = bench.sizes.starts
    with connect(bench.url) as conn:
        for key, how, starter in ways:
            t0 = time.perf_counter()
            for _ in range(n):
                starter(conn)
            seconds = time.perf_counter() - t0
            yield Figure(
                key=f"dfc.start.rate.{key}",
                workload="start",
                figure=f"starts/s from one client, {how}",
                value=n / seconds,
                unit="starts/s",
                conditions={"starts": n, "workers": "none", "connection": "one, autocommit"},
            )
    clean(bench.url)


def _clock_offset(conn: psycopg.Connection[Any]) -> float:
    """The server's clock minus this machine's, from the quickest of a few round trips."""
    samples: list[tuple[float, float]] = []
    for _ in range(5):
        before = time.time()
        row = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
        after = time.time()
        assert row is not None
        samples.append((after - before, float(row[0]) - (before + after) / 2))
    return min(samples)[1]


def _first_step_latency(
    conn: psycopg.Connection[Any],
    watch: psycopg.Connection[Any],
    starter: Starter,
    offset: float,
    worker: WorkerProcess,
) -> float:
    """Seconds from the call that starts an instance to its first step (server time)."""
    t0 = time.time()
    iid = starter(conn)
    deadline = time.monotonic() + TIMEOUT
    while True:
        row = watch.execute(
            "SELECT extract(epoch FROM at)::float8 FROM bench_first WHERE id = %s", (iid,)
        ).fetchone()
        if row is not None:
            return float(row[0]) - offset - t0
        worker.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"instance {iid} ran no step within {TIMEOUT:.0f} s")
        time.sleep(0.005)
