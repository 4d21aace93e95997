"""Workload ``map``: one ``df.map`` over 10,000 rows (issue #12).

One instance: ``'SELECT id FROM bench_acc WHERE id <= 10000 ORDER BY id' |=> 'rows' ~>
df.map('$rows.*', 'UPDATE bench_acc SET v = v + 1 WHERE id = $item.id', concurrency => 8)``,
run by one worker of concurrency 8. Figures: the instance's run time and its rows per second;
the worker's resident size when idle, once the rows are read (the first block done), when half
the rows are done and at the end (the map's result held), and its peak (a map's finished rows
are summarised, so the size must not grow with them); the most node
records the instance held while it ran (sampled); and the check that every row's UPDATE
happened exactly once (the run fails otherwise).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from bench.context import Bench
from bench.report import Figure, failed
from bench.server import (
    WorkerProcess,
    clean,
    compile_text,
    run_seconds,
    scalar,
    start_instances,
    unfinished,
    wait_idle,
)
from dfc.plan.model import Plan
from dfc.store.db import connect

CONCURRENCY = 8


def map_plan(rows: int) -> Plan:
    """One map over rows 1 to ``rows`` of ``bench_acc``, a one-row UPDATE per row."""
    return compile_text(
        f"'SELECT id FROM bench_acc WHERE id <= {rows} ORDER BY id' |=> 'rows'\n"
        "~> df.map('$rows.*', 'UPDATE bench_acc SET v = v + 1 WHERE id = $item.id',"
        f" concurrency => {CONCURRENCY})\n",
        "bench_map",
    )


def fan_out(bench: Bench) -> Iterator[Figure]:
    """Run time, rows per second, worker memory and records of one map over many rows."""
    rows = bench.sizes.map_rows
    conditions = {"workers": "1 × 8", "rows": rows, "map concurrency": CONCURRENCY}
    try:
        m = _measure(bench, rows)
    except Exception as e:
        yield failed("dfc.map.seconds", "map", f"map of {rows:,} rows", "s", e)
        return
    figures = [
        ("seconds", f"map of {rows:,} rows", m["seconds"], "s"),
        ("rows_per_s", "rows (one-row UPDATE steps) per second", rows / m["seconds"], "rows/s"),
        ("rss_start", "worker RSS, idle", m["rss_start"], "MiB"),
        ("rss_rows", "worker RSS, rows read, first block done", m["rss_rows"], "MiB"),
        ("rss_middle", "worker RSS, half the rows done", m["rss_middle"], "MiB"),
        ("rss_end", "worker RSS, map finished", m["rss_end"], "MiB"),
        ("rss_peak", "worker peak RSS", m["rss_peak"], "MiB"),
        ("records", "most node records held by the instance", m["records"], "records"),
    ]
    for key, label, value, unit in figures:
        yield Figure(
            key=f"dfc.map.{key}",
            workload="map",
            figure=label,
            value=value,
            unit=unit,
            conditions=conditions,
        )


def _measure(bench: Bench, rows: int) -> dict[str, float]:
    clean(bench.url)
    plan = map_plan(rows)
    worker = WorkerProcess(bench.url, CONCURRENCY).start()
    out: dict[str, float] = {}
    try:
        wait_idle(bench.url, worker)
        out["rss_start"] = worker.memory_mb()
        (iid,) = start_instances(bench.url, plan, 1)
        deadline = time.monotonic() + 60 + rows / 20
        most = 0
        with connect(bench.url) as conn:
            while unfinished(conn):
                worker.check_alive()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the map did not finish in {rows / 20 + 60:.0f} s")
                row = conn.execute(
                    "SELECT (SELECT count(*) FROM dfc.node_state WHERE instance_id = %s),"
                    f" (SELECT count(*) FROM bench_acc WHERE id <= {rows} AND v <> 0)",
                    (iid,),
                ).fetchone()
                assert row is not None
                most = max(most, int(row[0]))
                if "rss_rows" not in out and int(row[1]) >= 32:
                    out["rss_rows"] = worker.memory_mb()
                if "rss_middle" not in out and int(row[1]) >= rows // 2:
                    out["rss_middle"] = worker.memory_mb()
                time.sleep(0.2)
        out["rss_end"] = worker.memory_mb()
        out["rss_peak"] = worker.memory_mb("VmHWM")
        out.setdefault("rss_rows", out["rss_end"])
        out.setdefault("rss_middle", out["rss_end"])
        out["records"] = most
    finally:
        worker.stop()
    out["seconds"] = run_seconds(bench.url, iid)
    once = scalar(
        bench.url,
        f"SELECT count(*) FILTER (WHERE id <= {rows} AND v = 1) = {rows}"
        f" AND count(*) FILTER (WHERE v <> 0) = {rows} FROM bench_acc",
    )
    if not once:
        raise RuntimeError("the rows do not show every row's UPDATE exactly once")
    return out
