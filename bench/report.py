"""Figures, the one table they are printed in, and its JSON form.

A `Figure` is one measured value with what it was measured under. Its ``key`` is stable across
runs (``dfc.throughput.p1.c8``, ``pgbench.tps.c8``, ``dbos.latency.sql``...), so that
comparisons between figures (`compare`) and between runs (the JSON) can find it.

This module imports neither dfc nor psycopg: the DBOS side, which runs in a process of its own,
uses `steady_rate` too.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeAlias

Condition: TypeAlias = str | int | float
"""A condition's value: ``"1 × 8"``, ``1000``, ``"on"``..."""

NOT_INSTALLED = "not installed"


@dataclass(frozen=True, slots=True, kw_only=True)
class Figure:
    """One measured value, or why there is none.

    ``conditions`` are the figure's own (worker processes × concurrency, sizes); the server's
    (PostgreSQL version, fsync, ...) are added by `with_server` before printing. ``error`` is
    set when the measurement failed, ``missing`` when it could not run (an optional package is
    not installed); ``value`` is None in both cases. ``vs`` holds comparisons with other figures
    of the same run, filled in by `compare`.
    """

    key: str
    workload: str
    figure: str
    value: float | None
    unit: str
    conditions: Mapping[str, Condition] = field(default_factory=dict)
    error: str | None = None
    missing: str | None = None
    vs: Mapping[str, float] = field(default_factory=dict)

    def with_server(self, server: Mapping[str, Condition]) -> Figure:
        """This figure with the server's conditions first, then its own."""
        return replace(self, conditions={**server, **self.conditions})

    def to_dict(self) -> dict[str, object]:
        """The figure as JSON: every field, ``value`` null when it failed or could not run."""
        return {
            "key": self.key,
            "workload": self.workload,
            "figure": self.figure,
            "value": self.value,
            "unit": self.unit,
            "conditions": dict(self.conditions),
            "vs": dict(self.vs),
            "error": self.error,
            "missing": self.missing,
        }


def failed(key: str, workload: str, figure: str, unit: str, error: BaseException) -> Figure:
    """The figure of a measurement that raised ``error``: its first line stands in the table."""
    text = str(error).strip().splitlines()
    message = f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")
    return Figure(key=key, workload=workload, figure=figure, value=None, unit=unit, error=message)


def steady_rate(completions: Sequence[float], steps_each: int) -> float:
    """Steps per second between the 10th and the 90th percentile of completion times.

    ``completions`` are the times (seconds, any origin) at which each instance finished, each
    instance having run ``steps_each`` steps. Cutting both tails leaves out the worker's start
    (connections, imports) and the last stragglers, when fewer instances than the concurrency
    are left: what remains is the steady state.
    """
    times = sorted(completions)
    if len(times) < 10:
        raise ValueError(f"{len(times)} completions are too few for a steady-state rate")
    first = len(times) // 10
    last = len(times) - 1 - len(times) // 10
    seconds = times[last] - times[first]
    if seconds <= 0:
        raise ValueError("every measured completion has the same time stamp")
    return (last - first) * steps_each / seconds


def median(values: Iterable[float]) -> float:
    """The median; a separate name so that every workload reads the same."""
    return statistics.median(list(values))


# -- comparisons ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Comparison:
    """``figure`` compared with ``reference``: ``label`` names the ratio in the table.

    ``higher_is_better`` says which way the ratio is taken, so that a ratio above 1 always means
    dfc does better: rates are divided by the reference's, times divide the reference's.
    """

    label: str
    reference: str
    higher_is_better: bool


def comparisons(figure: Figure) -> list[Comparison]:
    """What a dfc figure is compared with, by its key (none for the other figures)."""
    parts = figure.key.split(".")
    match parts:
        case ["dfc", "throughput", p, c]:
            clients = int(p[1:]) * int(c[1:])
            return [
                Comparison("pgbench", f"pgbench.tps.c{clients}", higher_is_better=True),
                Comparison("DBOS", f"dbos.throughput.c{clients}", higher_is_better=True),
            ]
        case ["dfc", "latency", "sql"]:
            return [Comparison("DBOS", "dbos.latency.sql", higher_is_better=False)]
        case ["dfc", "latency", "sleep0"]:
            return [Comparison("DBOS", "dbos.latency.noop", higher_is_better=False)]
        case _:
            return []


def compare(figures: Sequence[Figure]) -> list[Figure]:
    """The figures with ``vs`` filled in where both sides of a comparison were measured."""
    values = {f.key: f.value for f in figures if f.value is not None}
    out = []
    for f in figures:
        vs: dict[str, float] = {}
        for c in comparisons(f):
            ref = values.get(c.reference)
            if f.value is None or not ref:
                continue
            vs[c.label] = f.value / ref if c.higher_is_better else ref / f.value
        out.append(replace(f, vs=vs))
    return out


def vs_text(figure: Figure) -> str:
    """The ratios as the table shows them: ``0.42× pgbench, 27× DBOS``."""
    return ", ".join(f"{_ratio(r)}× {label}" for label, r in figure.vs.items())


def _ratio(r: float) -> str:
    return f"{r:.2f}" if r < 10 else f"{r:.0f}"


# -- the table -----------------------------------------------------------------------------------

_HEADERS = ("workload", "figure", "value", "unit", "vs", "conditions")


def value_text(figure: Figure) -> str:
    """The value column: the number, or the error, or what is missing."""
    if figure.missing is not None:
        return figure.missing
    if figure.error is not None:
        return f"error: {figure.error}"
    assert figure.value is not None
    v = figure.value
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.3f}".rstrip("0").rstrip(".") if v >= 1 else f"{v:.3g}"


def conditions_text(conditions: Mapping[str, Condition], skip: Iterable[str] = ()) -> str:
    """``key=value`` pairs, numbers with thousands separators, minus ``skip``."""
    hidden = set(skip)
    return ", ".join(
        f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}"
        for k, v in conditions.items()
        if k not in hidden
    )


def render(
    figures: Sequence[Figure], server: Mapping[str, Condition], *, markdown: bool = False
) -> str:
    """The table as text (or as a Markdown table): the server's conditions on top (they hold
    for every row), then one row per figure with its own conditions."""
    rows = [
        (
            f.workload,
            f.figure,
            value_text(f),
            f.unit,
            vs_text(f),
            conditions_text(f.conditions, skip=server),
        )
        for f in figures
    ]
    head = f"conditions: {conditions_text(server)}"
    if markdown:
        rule = ("---", "---", "--:", "---", "---", "---")
        body = [_HEADERS, rule, *rows]
        return "\n".join([head, "", *("| " + " | ".join(r) + " |" for r in body)])
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(_HEADERS)]
    right = {2}  # values align on the right

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule_line = "  ".join("-" * w for w in widths)
    return "\n".join([head, "", line(_HEADERS), rule_line, *(line(r) for r in rows)])


def write_json(
    path: Path,
    figures: Sequence[Figure],
    server: Mapping[str, Condition],
    run: Mapping[str, object],
) -> None:
    """Write the run as JSON: ``run`` (date, command, load), the server's conditions, and every
    figure with its full conditions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "run": dict(run),
        "conditions": dict(server),
        "figures": [f.with_server(server).to_dict() for f in figures],
    }
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
