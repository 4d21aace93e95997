"""Workloads 1 and 2: dfc's steady-state step throughput, and pgbench on the same server.

**throughput**: N instances of K one-row-UPDATE steps, each instance updating its own row, are
all enqueued before the worker processes start; the rate is measured between the 10th and the
90th percentile of the completion times (``dfc.instances.finished_at``), at each worker
concurrency and number of worker processes. Afterwards every row must have been updated exactly
K times.

**pgbench**: the same UPDATE of a random row among ``ROWS``, as a custom script, at the same
client counts (worker processes × concurrency), simple protocol, ``-T`` seconds each.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Iterator

from bench.context import Bench, Sizes
from bench.report import Figure, failed, steady_rate
from bench.server import (
    ROWS,
    UPDATE,
    chain_text,
    check_completed,
    clean,
    compile_text,
    finish_times,
    pgbench_binary,
    scalar,
    sql_step,
    start_instances,
    wait_finished,
    workers,
)
from dfc.plan.model import Plan


def client_counts(sizes: Sizes) -> list[int]:
    """Every total of worker connections the throughput runs use: pgbench runs at each."""
    return sorted({p * c for p in sizes.processes for c in sizes.concurrency})


def update_chain(steps: int) -> Plan:
    """K one-row UPDATEs of the row given as parameter ``row``."""
    text = chain_text("bench-throughput", [sql_step(UPDATE)] * steps, params=["param row int"])
    return compile_text(text, "bench_throughput")


def throughput(bench: Bench) -> Iterator[Figure]:
    """dfc steps per second at each worker processes × concurrency."""
    sizes = bench.sizes
    plan = update_chain(sizes.steps)
    for processes in sizes.processes:
        for concurrency in sizes.concurrency:
            key = f"dfc.throughput.p{processes}.c{concurrency}"
            label = f"dfc steps/s, {processes} × {concurrency}"
            try:
                rate = _measure(bench, plan, processes, concurrency)
            except Exception as e:
                yield failed(key, "throughput", label, "steps/s", e)
                continue
            yield Figure(
                key=key,
                workload="throughput",
                figure=label,
                value=rate,
                unit="steps/s",
                conditions={
                    "workers": f"{processes} × {concurrency}",
                    "instances": sizes.instances,
                    "steps": sizes.steps,
                    "clock": "p10-p90 of completions",
                },
            )


def _measure(bench: Bench, plan: Plan, processes: int, concurrency: int) -> float:
    sizes = bench.sizes
    clean(bench.url)
    start_instances(bench.url, plan, [{"row": i} for i in range(1, sizes.instances + 1)])
    total = sizes.instances * sizes.steps
    # Generous: a tenth of the slowest plausible rate (100 steps/s) plus start-up.
    timeout = 60 + total / 10
    with workers(bench.url, processes, concurrency) as running:
        wait_finished(bench.url, running, timeout)
    check_completed(bench.url, sizes.instances)
    wrong = scalar(
        bench.url,
        "SELECT count(*) FROM bench_acc WHERE (id <= %s AND v <> %s) OR (id > %s AND v <> 0)",
        sizes.instances,
        sizes.steps,
        sizes.instances,
    )
    if wrong:
        raise RuntimeError(f"{wrong} rows were not updated exactly {sizes.steps} times")
    return steady_rate(finish_times(bench.url), sizes.steps)


# -- pgbench ------------------------------------------------------------------------------------

_TPS = re.compile(r"^tps = ([0-9.]+)", re.MULTILINE)


def pgbench(bench: Bench) -> Iterator[Figure]:
    """pgbench's transactions per second at each client count of the throughput runs."""
    binary = pgbench_binary()
    if binary is None:
        raise RuntimeError("pgbench was found neither with the embedded server nor on PATH")
    clean(bench.url)
    seconds = bench.sizes.pgbench_seconds
    with tempfile.NamedTemporaryFile("w", suffix=".sql", prefix="dfc-bench-") as script:
        script.write(f"\\set row random(1, {ROWS})\n{UPDATE.format(row=':row')};\n")
        script.flush()
        for clients in client_counts(bench.sizes):
            key = f"pgbench.tps.c{clients}"
            label = f"pgbench one-row UPDATE, {clients} client{'s' if clients > 1 else ''}"
            threads = min(clients, os.cpu_count() or 1)
            args = [binary, "-n", "-f", script.name, "-c", str(clients), "-j", str(threads)]
            args += ["-T", str(seconds), bench.url]
            try:
                tps = _run_pgbench(args)
            except Exception as e:
                yield failed(key, "pgbench", label, "tps", e)
                continue
            yield Figure(
                key=key,
                workload="pgbench",
                figure=label,
                value=tps,
                unit="tps",
                conditions={
                    "clients": clients,
                    "threads": threads,
                    "seconds": seconds,
                    "rows": ROWS,
                    "protocol": "simple",
                },
            )


def _run_pgbench(args: list[str]) -> float:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    found = _TPS.search(done.stdout)
    if done.returncode != 0 or found is None:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise RuntimeError(f"pgbench failed: {lines[-1] if lines else done.returncode}")
    return float(found.group(1))
