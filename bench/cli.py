"""``python -m bench``: run the workloads, print one table, write it as JSON."""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bench import check, dbos_side, fanout, latency, recovery, starts, throughput
from bench import map as map_rows
from bench.context import QUICK, Bench, Sizes, Workload
from bench.report import Figure, compare, failed, render, value_text, write_json
from bench.server import DATABASE, prepare, server_conditions, server_url
from dfc.diagnostics import DfcError

WORKLOADS: dict[str, Workload] = {
    "throughput": throughput.throughput,
    "pgbench": throughput.pgbench,
    "latency": latency.latency,
    "fanout": fanout.fanout,
    "map": map_rows.fan_out,
    "recovery": recovery.recovery,
    "memory": recovery.memory,
    "check": check.check,
    "start": starts.start,
    "dbos": dbos_side.dbos,
}
"""Every workload, in the order a run measures them."""

DEFAULT_JSON = Path(__file__).parent / "results" / "latest.json"


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of numbers") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must list numbers of at least 1")
    return values


def _names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown workload {', '.join(unknown) or '(none)'}; choose from {', '.join(WORKLOADS)}"
        )
    return names


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run dfc's benchmarks (SPEC §9) and print one table of figures with the "
        f"conditions they were measured under. Runs in database {DATABASE} on the server.",
    )
    ap.add_argument(
        "--db",
        metavar="URL",
        help="the server (default: DFC_DATABASE_URL, else the embedded server); "
        f"the benchmark works in its own database {DATABASE} there",
    )
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument(
        "--only", type=_names, metavar="NAME,...", help=f"run these: {', '.join(WORKLOADS)}"
    )
    ap.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        metavar="PATH",
        help="where to write the figures as JSON (default: %(default)s)",
    )
    ap.add_argument(
        "--markdown", action="store_true", help="print the table in Markdown (for the docs)"
    )
    full = Sizes()

    def listed(values: tuple[int, ...]) -> str:
        return ",".join(map(str, values))

    ap.add_argument(
        "--instances", type=int, metavar="N", help=f"throughput: instances ({full.instances})"
    )
    ap.add_argument("--steps", type=int, metavar="K", help=f"throughput: steps each ({full.steps})")
    ap.add_argument(
        "--concurrency",
        type=_ints,
        metavar="N,...",
        help=f"throughput: each worker's concurrency ({listed(full.concurrency)})",
    )
    ap.add_argument(
        "--processes",
        type=_ints,
        metavar="N,...",
        help=f"throughput: worker processes ({listed(full.processes)})",
    )
    ap.add_argument(
        "--pgbench-seconds",
        type=int,
        metavar="S",
        help=f"pgbench: seconds per client count ({full.pgbench_seconds})",
    )
    ap.add_argument(
        "--repeats",
        type=int,
        metavar="R",
        help=f"latency: runs, the median counts ({full.repeats})",
    )
    return ap


def sizes_from(args: argparse.Namespace) -> Sizes:
    """The quick or the full sizes, with what the options override."""
    sizes = QUICK if args.quick else Sizes()
    overrides = {
        name: getattr(args, name)
        for name in ("instances", "steps", "concurrency", "processes", "pgbench_seconds", "repeats")
        if getattr(args, name) is not None
    }
    return replace(sizes, **overrides)


def run(names: Sequence[str], bench: Bench) -> list[Figure]:
    """Run the workloads ``names``; one that fails leaves an error row and the rest run on."""
    figures: list[Figure] = []
    for name in names:
        bench.say(f"-- {name}")
        started = time.monotonic()
        try:
            for f in WORKLOADS[name](bench):
                figures.append(f)
                bench.say(f"   {f.figure}: {value_text(f)} {f.unit}")
        except Exception as e:
            figures.append(failed(f"{name}.error", name, "(workload)", "", e))
            bench.say(f"   failed: {figures[-1].error}")
        bench.say(f"   ({time.monotonic() - started:.0f} s)")
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    names = args.only or tuple(WORKLOADS)
    try:
        base, where = server_url(args.db)
        url = prepare(base)
    except DfcError as e:
        print(
            f"python -m bench: {e.message}" + (f"\n  {e.hint}" if e.hint else ""), file=sys.stderr
        )
        return 2
    bench = Bench(url=url, server_url=base, sizes=sizes_from(args))
    server = server_conditions(url, where)
    load_before = os.getloadavg()
    started = datetime.datetime.now(datetime.UTC)
    figures = compare(run(names, bench))
    load_after = os.getloadavg()
    run_info = {
        "date": started.isoformat(timespec="seconds"),
        "seconds": round((datetime.datetime.now(datetime.UTC) - started).total_seconds()),
        "command": " ".join(["python -m bench", *(sys.argv[1:] if argv is None else argv)]),
        "quick": args.quick,
        "workloads": list(names),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
    }
    server_line = {
        **server,
        "load average": f"{load_before[0]:.2f} before, {load_after[0]:.2f} after",
    }
    print(render(figures, server_line, markdown=args.markdown))
    write_json(args.json, figures, server, run_info)
    print(f"\nwritten to {args.json}")
    return 1 if any(f.error for f in figures) else 0
