"""Parse and format a generated workflow of ~3,000 nodes and print the times (SPEC §9).

Not a test (pytest does not collect ``bench_*`` files): run ``python tests/unit/syntax/bench_syntax_parse.py``.
"""

from __future__ import annotations

import random
import time

from dfc import ast
from dfc.syntax import format_module, parse_text
from dfc.syntax.parser import lark_parser


def generate(steps: int, seed: int = 1) -> str:
    """A realistic long workflow: SQL steps with bindings, sleeps, joins, HTTP calls, ifs."""
    rnd = random.Random(seed)
    parts = []
    for i in range(steps):
        r = rnd.random()
        if r < 0.5:
            parts.append(f"'SELECT {i} AS n' |=> 'r{i}'")
        elif r < 0.7:
            parts.append(f"df.sleep({i % 7})")
        elif r < 0.85:
            parts.append(f"('SELECT $r{i - 1}?' & df.http('{{api}}/x/{i}', 'GET'))")
        else:
            parts.append(f"df.if('SELECT true', 'SELECT 1', df.wait_for_signal('s{i}', 30))")
    return "param api text = 'http://x';\ndf.start(\n    " + "\n    ~> ".join(parts) + ",\n    'perf'\n);\n"


def count(node: ast.Expr) -> int:
    n, stack = 0, [node]
    while stack:
        x = stack.pop()
        n += 1
        stack.extend(ast.children(x))
    return n


def main() -> None:
    t0 = time.perf_counter()
    lark_parser()
    print(f"grammar build (once per process): {(time.perf_counter() - t0) * 1000:.0f} ms")
    src = generate(1000)
    best = float("inf")
    module = None
    for _ in range(5):
        t0 = time.perf_counter()
        module, diags = parse_text(src, "perf.df")
        best = min(best, time.perf_counter() - t0)
        assert not diags
    assert module is not None and module.workflow is not None
    print(f"parse: {count(module.workflow.body)} nodes, {len(src)} chars: {best * 1000:.0f} ms (best of 5)")
    t0 = time.perf_counter()
    format_module(module)
    print(f"format: {(time.perf_counter() - t0) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
