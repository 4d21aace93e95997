"""Workload 4: wide and long instances.

**join**: one instance of ``df.join`` over 1,000 branches, each a one-row UPDATE of its own
row; **loop**: one instance of ``df.loop`` whose body increments a counter row (``RETURNING``
the count, bound to ``$c``) while ``SELECT $c < 10000``, so 20,000 SQL steps. Each figure is the
instance's run time (``started_at`` to ``finished_at``) with one worker of concurrency 8, and
each checks afterwards that every UPDATE happened exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator

from bench.context import Bench
from bench.report import Figure, failed
from bench.server import (
    UPDATE,
    WorkerProcess,
    clean,
    compile_text,
    run_seconds,
    scalar,
    sql_step,
    start_instances,
    wait_finished,
    wait_idle,
)
from dfc.plan.model import Plan

CONCURRENCY = 8


def join_plan(branches: int) -> Plan:
    """``df.join`` of ``branches`` one-row UPDATEs, rows 1 to ``branches``."""
    body = ",\n    ".join(sql_step(UPDATE.format(row=i)) for i in range(1, branches + 1))
    return compile_text(f"df.start(df.join(\n    {body}\n), 'bench-join');\n", "bench_join")


def loop_plan(iterations: int) -> Plan:
    """``df.loop`` counting row 1 up to ``iterations``."""
    body = sql_step(UPDATE.format(row=1) + " RETURNING v") + " |=> 'c'"
    cond = sql_step(f"SELECT $c < {iterations}")
    return compile_text(f"df.start(df.loop({body}, {cond}), 'bench-loop');\n", "bench_loop")


def fanout(bench: Bench) -> Iterator[Figure]:
    """Seconds to run one join of many branches, and one loop of many iterations."""
    sizes = bench.sizes
    cases = [
        (
            "join",
            f"join of {sizes.branches:,} branches",
            join_plan(sizes.branches),
            f"SELECT count(*) = {sizes.branches} AND bool_and(v = 1)"
            f" FROM bench_acc WHERE id <= {sizes.branches} AND v <> 0",
            {"branches": sizes.branches},
        ),
        (
            "loop",
            f"loop of {sizes.iterations:,} iterations",
            loop_plan(sizes.iterations),
            f"SELECT v = {sizes.iterations} FROM bench_acc WHERE id = 1",
            {"iterations": sizes.iterations, "sql steps": 2 * sizes.iterations},
        ),
    ]
    for key, label, plan, exactly_once, conditions in cases:
        try:
            seconds = _run_one(bench, plan, exactly_once)
        except Exception as e:
            yield failed(f"dfc.fanout.{key}", "fanout", label, "s", e)
            continue
        yield Figure(
            key=f"dfc.fanout.{key}",
            workload="fanout",
            figure=label,
            value=seconds,
            unit="s",
            conditions={"workers": f"1 × {CONCURRENCY}", **conditions},
        )


def _run_one(bench: Bench, plan: Plan, exactly_once: str) -> float:
    clean(bench.url)
    worker = WorkerProcess(bench.url, CONCURRENCY).start()
    try:
        wait_idle(bench.url, worker)
        (iid,) = start_instances(bench.url, plan, 1)
        wait_finished(bench.url, [worker], 600)
    finally:
        worker.stop()
    seconds = run_seconds(bench.url, iid)
    if not scalar(bench.url, exactly_once):
        raise RuntimeError("the rows do not show every UPDATE exactly once")
    return seconds
