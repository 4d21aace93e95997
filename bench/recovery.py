"""Workload 5: recovery after SIGKILL, and the memory of a worker.

**recovery**: 10,000 instances of 5 steps, each step inserting a row with a unique key (the
instance id and the step's number) and the time it ran, all enqueued; a worker of concurrency
32 and lease 5 s runs them until 40 % have finished, is killed with SIGKILL and restarted at
once. Figures, in seconds after the kill: the first step of the new worker (its start
included); the next step of an instance the dead worker held (no lease to wait for: the new
worker's reaper finds the dead worker's life lock free and puts its instances at the head of
the queue, docs/runtime.md), the first and the last of them; the end of the last instance. Then
the workers' peak resident size, and how many steps were lost or repeated: a lost step leaves
a row missing, a repeated one would fail its instance on the primary key, so the count is
missing rows plus instances not completed. It must be 0.

**memory**: the resident size of an idle worker, and of the same worker after it brought
10,000 instances to a signal wait (waiting instances live in the database, not the worker).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from bench.context import Bench
from bench.report import Condition, Figure, failed
from bench.server import (
    WorkerProcess,
    chain_text,
    clean,
    compile_text,
    count,
    scalar,
    sql_step,
    start_instances,
    unfinished,
    wait_finished,
    wait_idle,
)
from dfc.store.db import connect

KILL_AT = 0.4  # share of the instances finished when the worker is killed
_RESUMED = "dead worker's instances resumed after"
_RESUMED_LAST = "last of the dead worker's instances resumed after"
# Each held instance's first step after the kill; the figures are the first and the last.
_RESUMED_AT = """
SELECT extract(epoch FROM {agg}(first) - %s)::float8 FROM (
    SELECT min(at) AS first FROM bench_rec
     WHERE at > %s AND split_part(k, '-', 1) = ANY(%s)
     GROUP BY split_part(k, '-', 1)) AS f
"""


def recovery(bench: Bench) -> Iterator[Figure]:
    """Resume and finish times after a SIGKILL, exactly-once, worker peak RSS."""
    sizes = bench.sizes
    n, steps, lease = sizes.recovery_instances, sizes.recovery_steps, sizes.lease_seconds
    clean(bench.url)
    with connect(bench.url) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_rec")
        conn.execute(
            "CREATE TABLE bench_rec (k text PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())"
        )
    inserts = [
        sql_step(f"INSERT INTO bench_rec (k) VALUES ('{{sys_instance_id}}-{i}')")
        for i in range(steps)
    ]
    start_instances(
        bench.url, compile_text(chain_text("bench-recovery", inserts), "bench_recovery"), n
    )
    conditions: dict[str, Condition] = {
        "workers": f"1 × {sizes.recovery_concurrency}",
        "instances": n,
        "steps": steps,
        "lease": f"{lease:g} s",
        "killed": f"at {KILL_AT:.0%} finished",
    }
    first = WorkerProcess(bench.url, sizes.recovery_concurrency, lease_seconds=lease).start()
    try:
        with connect(bench.url) as conn:
            while unfinished(conn) > n * (1 - KILL_AT):
                first.check_alive()
                time.sleep(0.1)
            held = [
                r[0]
                for r in conn.execute(
                    "SELECT instance_id FROM dfc.queue WHERE lease_owner IS NOT NULL"
                )
            ]
            peak = first.memory_mb("VmHWM")
            first.kill()
            killed_at = conn.execute("SELECT clock_timestamp()").fetchone()
    finally:
        first.stop()
    assert killed_at is not None
    second = WorkerProcess(bench.url, sizes.recovery_concurrency, lease_seconds=lease).start()
    try:
        wait_finished(bench.url, [second], 120 + n * steps / 50)
        peak = max(peak, second.memory_mb("VmHWM"))
    finally:
        second.stop()
    work_resumed = scalar(
        bench.url,
        "SELECT extract(epoch FROM min(at) - %s)::float8 FROM bench_rec WHERE at > %s",
        killed_at[0],
        killed_at[0],
    )
    resumed, resumed_last = (
        scalar(bench.url, _RESUMED_AT.format(agg=agg), killed_at[0], killed_at[0], held)
        for agg in ("min", "max")
    )
    finished = scalar(
        bench.url,
        "SELECT extract(epoch FROM max(finished_at) - %s)::float8 FROM dfc.instances",
        killed_at[0],
    )
    rows = scalar(bench.url, "SELECT count(*) FROM bench_rec")
    completed = scalar(bench.url, "SELECT count(*) FROM dfc.instances WHERE status = 'completed'")
    yield Figure(
        key="dfc.recovery.work_resumed",
        workload="recovery",
        figure="first step after the kill",
        value=work_resumed,
        unit="s after kill",
        conditions={**conditions, "restart": "at once"},
    )
    if resumed is None:
        why = RuntimeError("none of the dead worker's instances ran a step after the kill")
        yield failed("dfc.recovery.resumed", "recovery", _RESUMED, "s after kill", why)
    else:
        yield Figure(
            key="dfc.recovery.resumed",
            workload="recovery",
            figure=_RESUMED,
            value=resumed,
            unit="s after kill",
            conditions={**conditions, "held at the kill": len(held)},
        )
        yield Figure(
            key="dfc.recovery.resumed_last",
            workload="recovery",
            figure=_RESUMED_LAST,
            value=resumed_last,
            unit="s after kill",
            conditions={**conditions, "held at the kill": len(held)},
        )
    yield Figure(
        key="dfc.recovery.finished",
        workload="recovery",
        figure="all instances finished after",
        value=finished,
        unit="s after kill",
        conditions=conditions,
    )
    yield Figure(
        key="dfc.recovery.lost_or_repeated",
        workload="recovery",
        figure="steps lost or repeated",
        value=float(n * steps - rows + n - completed),
        unit=f"of {n * steps:,} steps",
        conditions=conditions,
    )
    yield Figure(
        key="dfc.recovery.peak_rss",
        workload="recovery",
        figure="worker peak RSS",
        value=peak,
        unit="MiB",
        conditions=conditions,
    )


_WAITING = "SELECT count(*) FROM dfc.queue WHERE run_at IS NULL"
"""Instances waiting for a signal only (a held instance's ``run_at`` is its lease's end)."""


def memory(bench: Bench) -> Iterator[Figure]:
    """A worker's resident size idle, and after bringing many instances to a signal wait."""
    sizes = bench.sizes
    n, concurrency = sizes.waiting_instances, sizes.recovery_concurrency
    clean(bench.url)
    text = chain_text("bench-wait", [sql_step("SELECT 1"), "df.wait_for_signal('never')"])
    plan = compile_text(text, "bench_wait")
    worker = WorkerProcess(bench.url, concurrency).start()
    try:
        wait_idle(bench.url, worker)
        time.sleep(1)
        yield Figure(
            key="dfc.memory.idle",
            workload="memory",
            figure="worker RSS, idle",
            value=worker.memory_mb(),
            unit="MiB",
            conditions={"workers": f"1 × {concurrency}"},
        )
        start_instances(bench.url, plan, n)
        deadline = time.monotonic() + 120 + n / 50
        with connect(bench.url) as conn:
            while (waiting := count(conn, _WAITING)) < n:
                worker.check_alive()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{n - waiting} instances did not reach their wait")
                time.sleep(0.2)
        time.sleep(1)
        yield Figure(
            key="dfc.memory.waiting",
            workload="memory",
            figure=f"worker RSS, {n:,} instances waiting",
            value=worker.memory_mb(),
            unit="MiB",
            conditions={"workers": f"1 × {concurrency}", "waiting": n},
        )
    finally:
        worker.stop()
    clean(bench.url)
