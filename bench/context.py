"""What every workload is given: where to run, how big, and where to say what it is doing."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from bench.report import Figure

DEFAULT_CONCURRENCY = (1, 8, 32)


@dataclass(frozen=True, slots=True, kw_only=True)
class Sizes:
    """Every size and count the workloads use; the defaults are the issue's (SPEC §9)."""

    instances: int = 1000  # throughput: instances, all enqueued before the workers start
    steps: int = 11  # throughput: one-row UPDATE steps per instance
    concurrency: tuple[int, ...] = DEFAULT_CONCURRENCY  # throughput: per worker process
    processes: tuple[int, ...] = (1,)  # throughput: worker processes
    pgbench_seconds: int = 10
    sequential_steps: int = 500  # latency: steps of the one sequential instance
    repeats: int = 5  # latency, start latency: the median of this many runs
    branches: int = 1000  # fan-out: branches of one join
    iterations: int = 10_000  # fan-out: iterations of one loop
    map_rows: int = 10_000  # map: rows of one df.map
    recovery_instances: int = 10_000
    recovery_steps: int = 5
    recovery_concurrency: int = 32
    lease_seconds: float = 5.0  # recovery: how soon a dead worker's instances are due again
    waiting_instances: int = 10_000  # memory: instances brought to a signal wait
    check_steps: int = 650  # check: about 2,000 plan nodes
    starts: int = 1000  # start: df.start calls in a row, for starts per second
    dbos_instances: int = 100  # DBOS's throughput, at least (it runs ~100 steps/s, not 1,000s)
    dbos_repeats: int = 3


QUICK = Sizes(
    instances=60,
    steps=11,
    concurrency=(1, 8),
    pgbench_seconds=1,
    sequential_steps=50,
    repeats=2,
    branches=50,
    iterations=100,
    map_rows=200,
    recovery_instances=300,
    recovery_steps=3,
    recovery_concurrency=8,
    lease_seconds=2.0,
    waiting_instances=200,
    check_steps=100,
    starts=50,
    dbos_instances=20,
    dbos_repeats=1,
)
"""Small sizes for a smoke run (``--quick``): every workload in well under a minute."""


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class Bench:
    """One run's context: ``url`` is the benchmark database, ``server_url`` the server's
    maintenance database (for workloads that make databases of their own)."""

    url: str
    server_url: str
    sizes: Sizes
    say: Callable[[str], None] = field(default=_say)


Workload = Callable[[Bench], Iterator[Figure]]
"""A workload yields its figures one by one, so that those measured before a failure count."""
