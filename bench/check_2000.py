"""`dfc check` on a generated workflow of about 2,000 nodes (SPEC §9: well under a second).

Run: ``python bench/check_2000.py [STEPS]``. Prints the node count and the best-of-5 times of
parsing, checking (parse + templates + bindings + SQL + literals + precedence) and compiling
in-process, and the wall time of the ``dfc check`` command (which adds interpreter start-up and
imports).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time

from dfc.compiler import check_source, compile_source
from dfc.source import SourceFile
from dfc.syntax import parse_text


def generate(steps: int, seed: int = 1) -> str:
    """A long workflow mixing SQL steps with bindings, sleeps, joins, HTTP calls and branches."""
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


def best(fn, runs: int = 5) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 650  # about 2,000 plan nodes
    text = generate(steps)
    source = SourceFile("perf.df", text)
    comp = compile_source(source)
    assert comp.plan is not None, [d.message for d in comp.sorted_diagnostics if d.is_error][:5]
    nodes = len(comp.plan.nodes)
    print(f"generated workflow: {steps} steps, {nodes} plan nodes, {len(text):,} bytes")
    print(f"  parse            {best(lambda: parse_text(text, 'perf.df')) * 1000:7.1f} ms")
    print(f"  parse + check    {best(lambda: check_source(source)) * 1000:7.1f} ms")
    print(f"  compile to plan  {best(lambda: compile_source(source)) * 1000:7.1f} ms")
    with tempfile.NamedTemporaryFile("w", suffix=".df", delete=False) as f:
        f.write(text)
    try:
        exe = os.path.join(os.path.dirname(sys.executable), "dfc")
        wall = best(
            lambda: subprocess.run([exe, "check", f.name], check=True, capture_output=True), 3
        )
        print(f"  `dfc check` wall {wall * 1000:7.1f} ms (process start and imports included)")
    finally:
        os.unlink(f.name)
    print(
        f"conditions: Python {sys.version.split()[0]}, {os.cpu_count()} cores, best of 5 (CLI: 3)"
    )


if __name__ == "__main__":
    main()
