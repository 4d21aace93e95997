"""Workload 7: DBOS side by side, when the optional ``dbos`` package is installed.

Workloads 1 and 3 written as DBOS workflows (async, DBOS's choice for many workflows in one
process) of datasource transaction steps (``@ds.transaction``, DBOS 3's form of
``@DBOS.transaction``) doing the same one-row UPDATE, at READ COMMITTED (DBOS defaults to
SERIALIZABLE, which only adds retries here), each workflow on its own row:

- **throughput**: N workflows of K steps, at most ``concurrency`` in flight in one process,
  the rate between the 10th and the 90th percentile of completions, as for dfc (the work list is
  ready before the clock starts); DBOS's connection pools are sized to the concurrency;
- **latency**: one workflow of 500 sequential steps, the median of the repeats; and one of 500
  no-op ``@DBOS.step`` steps, DBOS's own cost per checkpoint.

DBOS runs in a process of its own (``python -m bench.dbos_side``: it is a process-wide
singleton with threads of its own) against database ``dfc_bench_dbos`` on the same server,
made afresh for each run, holding both DBOS's system tables and ``bench_acc``. The process
prints one JSON object per figure on standard output.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Final

from bench.context import Bench
from bench.report import NOT_INSTALLED, Figure, median, steady_rate

DATABASE = "dfc_bench_dbos"
ISOLATION: Final = "READ COMMITTED"
WAVES = 10
"""Throughput runs at least this many workflows per unit of concurrency, so that the 10th
percentile of completions falls after the first wave (DBOS's own count is smaller than dfc's)."""


def installed() -> str | None:
    """DBOS's version, or None when the package is not installed."""
    if importlib.util.find_spec("dbos") is None:
        return None
    from importlib.metadata import version

    return version("dbos")


def dbos(bench: Bench) -> Iterator[Figure]:
    """The DBOS figures, measured in a child process, or "not installed" rows."""
    from bench.server import create_database, reset_rows
    from dfc.store.db import connect

    sizes = bench.sizes
    labels = {
        **{
            f"dbos.throughput.c{c}": (f"DBOS steps/s, 1 × {c}", "steps/s")
            for c in sizes.concurrency
        },
        "dbos.latency.sql": (f"DBOS ms/step, {sizes.sequential_steps} one-row UPDATE steps", "ms"),
        "dbos.latency.noop": (f"DBOS ms/step, {sizes.sequential_steps} no-op steps", "ms"),
    }
    version = installed()
    if version is None:
        for key, (label, unit) in labels.items():
            yield Figure(
                key=key,
                workload="dbos",
                figure=label,
                value=None,
                unit=unit,
                missing=NOT_INSTALLED,
            )
        return
    url = create_database(bench.server_url, DATABASE, fresh=True)
    with connect(url) as conn:
        reset_rows(conn)
    args = {
        "url": url,
        "instances": sizes.dbos_instances,
        "steps": sizes.steps,
        "concurrency": list(sizes.concurrency),
        "sequential_steps": sizes.sequential_steps,
        "repeats": sizes.dbos_repeats,
    }
    # DBOS's log goes to a file: a pipe nobody reads while figures arrive could fill and stall it.
    with tempfile.TemporaryFile("w+") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "bench.dbos_side", json.dumps(args)],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        assert child.stdout is not None
        seen = set()
        for line in child.stdout:
            got = json.loads(line)
            label, unit = labels[got["key"]]
            seen.add(got["key"])
            yield Figure(
                key=got["key"],
                workload="dbos",
                figure=label,
                value=got["value"],
                unit=unit,
                conditions={"dbos": version, "isolation": ISOLATION, **got["conditions"]},
                error=got["error"],
            )
        child.wait()
        if child.returncode != 0 or seen != set(labels):
            log.seek(0)
            lines = log.read().strip().splitlines()
            raise RuntimeError(
                f"the DBOS process failed: {lines[-1] if lines else child.returncode}"
            )


# -- the child process ----------------------------------------------------------------------------


def _emit(key: str, value: float | None, conditions: dict[str, Any], error: str | None) -> None:
    line = {"key": key, "value": value, "conditions": conditions, "error": error}
    print(json.dumps(line), flush=True)


async def _measure(args: dict[str, Any]) -> None:
    import psycopg
    import sqlalchemy as sa
    from dbos import DBOS, AsyncSQLAlchemyDatasource

    url: str = args["url"]
    most = max(args["concurrency"])
    pool = {"pool_size": most + 2, "max_overflow": 0}
    ds = await AsyncSQLAlchemyDatasource.create(url, engine_kwargs=pool)

    @ds.transaction(isolation_level=ISOLATION)
    async def bump(row: int) -> None:
        await ds.sql_session().execute(
            sa.text("UPDATE bench_acc SET v = v + 1 WHERE id = :row"), {"row": row}
        )

    @DBOS.step()
    async def nothing() -> None:
        return None

    @DBOS.workflow()
    async def updates(row: int, steps: int) -> None:
        for _ in range(steps):
            await bump(row)

    @DBOS.workflow()
    async def nothings(steps: int) -> None:
        for _ in range(steps):
            await nothing()

    DBOS(
        config={
            "name": "dfc-bench",
            "system_database_url": url,
            "sys_db_pool_size": 2 * most + 4,
            "log_level": "WARNING",
        }
    )
    DBOS.launch()
    try:
        steps = args["steps"]
        for concurrency in args["concurrency"]:
            n = max(args["instances"], WAVES * concurrency)
            conditions = {"workers": f"1 × {concurrency}", "instances": n, "steps": steps}
            key = f"dbos.throughput.c{concurrency}"
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("UPDATE bench_acc SET v = 0 WHERE v <> 0")
                    conn.execute("VACUUM bench_acc")
                done = await _lanes(concurrency, n, lambda row: updates(row, steps))
                with psycopg.connect(url) as conn:
                    wrong = conn.execute(
                        "SELECT count(*) FROM bench_acc WHERE (id <= %s) <> (v = %s)", (n, steps)
                    ).fetchone()
                if wrong != (0,):
                    raise RuntimeError(
                        f"{wrong[0] if wrong else '?'} rows not updated exactly {steps} times"
                    )
                _emit(key, steady_rate(done, steps), conditions, None)
            except Exception as e:
                _emit(key, None, conditions, f"{type(e).__name__}: {e}")
        s, repeats = args["sequential_steps"], args["repeats"]
        cases: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("dbos.latency.sql", lambda: updates(1, s)),
            ("dbos.latency.noop", lambda: nothings(s)),
        ]
        for key, run in cases:
            conditions = {"workers": "1 × 1", "repeats": repeats}
            try:
                times = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    await run()
                    times.append((time.perf_counter() - t0) / s * 1000)
                _emit(key, median(times), conditions, None)
            except Exception as e:
                _emit(key, None, conditions, f"{type(e).__name__}: {e}")
    finally:
        DBOS.destroy()


async def _lanes(
    concurrency: int, n: int, workflow: Callable[[int], Awaitable[None]]
) -> list[float]:
    """Run ``workflow(row)`` for rows 1..n, ``concurrency`` at a time; completion times."""
    rows = list(range(n, 0, -1))
    done: list[float] = []

    async def lane() -> None:
        while rows:
            await workflow(rows.pop())
            done.append(time.monotonic())

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return done


if __name__ == "__main__":
    asyncio.run(_measure(json.loads(sys.argv[1])))
