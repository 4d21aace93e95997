"""Workload 6a: ``dfc check`` of a generated workflow of about 2,000 plan nodes (SPEC §9: well
under a second).

The file mixes SQL steps with bindings, sleeps, joins, HTTP calls and branches. Figures: the
wall time of the ``dfc check`` command (interpreter start and imports included), best of 3,
and the time of the check in-process (parse, templates, bindings, SQL, literals, precedence):
the first check in a fresh process, imports done, best of 3 processes. The checker caches each
statement's analysis for the life of the process, so a second check of the same file in one
process would measure the cache rather than the checker. No database is involved.
"""

from __future__ import annotations

import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator

from bench.context import Bench
from bench.report import Figure
from dfc.compiler import compile_source
from dfc.source import SourceFile


def generate(steps: int, seed: int = 1) -> str:
    """A long workflow of ``steps`` parts (650 give about 2,000 plan nodes)."""
    rnd = random.Random(seed)
    parts = ["'SELECT 0 AS n' |=> 'r0'"]
    for i in range(1, steps):
        r = rnd.random()
        if r < 0.5:
            parts.append(f"'SELECT $r{i - 1}? AS n, {i} AS m' |=> 'r{i}'")
        elif r < 0.7:
            parts.append(f"(df.sleep({i % 7}) ~> 'SELECT {i} AS n' |=> 'r{i}')")
        elif r < 0.85:
            parts.append(f"('SELECT {i} AS n' |=> 'r{i}' & df.http('{{api}}/x/{i}', 'GET'))")
        else:
            parts.append(
                f"df.if('SELECT true', 'SELECT {i} AS n', df.wait_for_signal('s{i}', 30)) |=> 'r{i}'"
            )
    parts.append(f"'SELECT $r{steps - 1}?'")
    return (
        "param api text = 'http://x';\ndf.start(\n    "
        + "\n    ~> ".join(parts)
        + ",\n    'perf'\n);\n"
    )


def best(fn: Callable[[], object], runs: int) -> float:
    """The shortest of ``runs`` timings of ``fn``, in seconds."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def check(bench: Bench) -> Iterator[Figure]:
    """ms for ``dfc check`` of the file, as a command and in-process."""
    text = generate(bench.sizes.check_steps)
    source = SourceFile("perf.df", text)
    comp = compile_source(source)
    if comp.plan is None:
        errors = [d.message for d in comp.sorted_diagnostics if d.is_error]
        raise RuntimeError(f"the generated workflow does not compile: {errors[:3]}")
    conditions = {"plan nodes": len(comp.plan.nodes), "bytes": len(text)}
    with tempfile.NamedTemporaryFile("w", suffix=".df", prefix="dfc-bench-") as f:
        f.write(text)
        f.flush()
        command = [sys.executable, "-m", "dfc", "check", f.name]
        wall = best(lambda: subprocess.run(command, check=True, capture_output=True), 3)
        cold = min(_first_check(f.name) for _ in range(3))
    yield Figure(
        key="dfc.check.command",
        workload="check",
        figure="`dfc check` of the file (command)",
        value=wall * 1000,
        unit="ms",
        conditions={**conditions, "timing": "best of 3, process start included"},
    )
    yield Figure(
        key="dfc.check.in_process",
        workload="check",
        figure="check of the file (in-process)",
        value=cold * 1000,
        unit="ms",
        conditions={**conditions, "timing": "first check in a fresh process, best of 3"},
    )


_FIRST_CHECK = """
import sys, time
from dfc.compiler import check_source
from dfc.source import SourceFile
source = SourceFile(sys.argv[1], open(sys.argv[1], encoding="utf-8").read())
t = time.perf_counter()
check_source(source)
print(time.perf_counter() - t)
"""


def _first_check(path: str) -> float:
    """Seconds of the first `check_source` of ``path`` in a new interpreter (imports excluded)."""
    out = subprocess.run(
        [sys.executable, "-c", _FIRST_CHECK, path], check=True, capture_output=True, text=True
    )
    return float(out.stdout.strip().splitlines()[-1])
