"""Workload 3: the time per step of one sequential instance.

One worker (concurrency 1) runs, already started and warmed up, one instance of 500 one-row
UPDATE steps, then one of 500 ``df.sleep(0)`` steps (no SQL of the user: the engine's own
cost, checkpoint included); the time per step is the instance's run time (``started_at`` to
``finished_at``) divided by its steps, the median of the repeats. The same UPDATE sent by plain
psycopg in autocommit, one connection, is the floor.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from bench.context import Bench
from bench.report import Figure, failed, median
from bench.server import (
    UPDATE,
    WorkerProcess,
    chain_text,
    clean,
    compile_text,
    run_seconds,
    sql_step,
    start_instances,
    wait_finished,
    wait_idle,
)
from dfc.plan.model import Plan
from dfc.store.db import connect

WARM_UP_STEPS = 20


def sequential(label: str, step: str, steps: int) -> Plan:
    """One instance's worth of ``steps`` copies of ``step`` in sequence."""
    return compile_text(chain_text(label, [step] * steps), label.replace("-", "_"))


def latency(bench: Bench) -> Iterator[Figure]:
    """ms per step: one-row UPDATE steps, ``df.sleep(0)`` steps, plain psycopg UPDATEs."""
    n = bench.sizes.sequential_steps
    update = sql_step(UPDATE.format(row=1))
    cases = [
        ("sql", "one-row UPDATE steps", sequential("bench-seq-update", update, n)),
        ("sleep0", "df.sleep(0) steps", sequential("bench-seq-sleep", "df.sleep(0)", n)),
    ]
    clean(bench.url)
    worker = WorkerProcess(bench.url, 1).start()
    try:
        wait_idle(bench.url, worker)
        per_run = 60 + n / 10  # a tenth of a plausible rate, plus start-up
        start_instances(bench.url, sequential("bench-warm-up", update, WARM_UP_STEPS), 1)
        wait_finished(bench.url, [worker], per_run)
        for key, what, plan in cases:
            label = f"dfc ms/step, {n} {what}"
            try:
                times = []
                for _ in range(bench.sizes.repeats):
                    (iid,) = start_instances(bench.url, plan, 1)
                    wait_finished(bench.url, [worker], per_run, poll=0.02)
                    times.append(run_seconds(bench.url, iid) / n * 1000)
            except Exception as e:
                yield failed(f"dfc.latency.{key}", "latency", label, "ms", e)
                continue
            yield Figure(
                key=f"dfc.latency.{key}",
                workload="latency",
                figure=label,
                value=median(times),
                unit="ms",
                conditions={
                    "workers": "1 × 1",
                    "repeats": len(times),
                    "clock": "started_at to finished_at",
                },
            )
    finally:
        worker.stop()
    yield plain_update(bench, n)


def plain_update(bench: Bench, n: int) -> Figure:
    """The same UPDATE by plain psycopg in autocommit: what a step costs without dfc."""
    query = UPDATE.format(row=1)
    with connect(bench.url) as conn:
        for _ in range(WARM_UP_STEPS):
            conn.execute(query)
        t0 = time.perf_counter()
        for _ in range(n):
            conn.execute(query)
        seconds = time.perf_counter() - t0
    return Figure(
        key="psycopg.latency.update",
        workload="latency",
        figure=f"plain psycopg ms/UPDATE, {n} in a row",
        value=seconds / n * 1000,
        unit="ms",
        conditions={"connection": "one, autocommit"},
    )
