"""Per-step SQL checks: report the findings of `dfc.check.sql` at file positions, record facts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import pairwise

from dfc import ast
from dfc.check import codes
from dfc.check.report import Reporter
from dfc.check.result import SqlFacts
from dfc.check.sql import analyze, is_complete_statement
from dfc.diagnostics import Severity
from dfc.source import Span


def check_sql_steps(
    nodes: Iterable[ast.Expr], rep: Reporter, var_types: Mapping[str, str | None]
) -> dict[int, SqlFacts]:
    """Check every SQL step among ``nodes``; returns the facts keyed by ``id(node)``."""
    facts: dict[int, SqlFacts] = {}
    for n in nodes:
        if isinstance(n, ast.Sql) and isinstance(n.query, ast.Str):
            facts[id(n)] = check_sql(n, n.query, rep, var_types)
    return facts


def check_sql(
    node: ast.Expr, s: ast.Str, rep: Reporter, var_types: Mapping[str, str | None]
) -> SqlFacts:
    """Report the problems of one SQL step and return its facts."""
    a = analyze(s.value, var_types)
    glued = _concatenated_statements(node, s, rep)
    file = s.span.file
    for issue in a.issues:
        if glued and issue.code == codes.SQL_UNPARSED:
            continue  # explained better by the concatenation warning
        empty = issue.start == issue.end or not s.text_map.runs
        span = s.span if empty else s.text_map.span(file, issue.start, issue.end)
        rep.emit(issue.severity, issue.code, issue.message, span, node=node, help=issue.help)
    return a.facts


def concatenation_points(s: ast.Str) -> list[tuple[int, Span]]:
    """Where newline-separated literals were joined: (value index, span of the quotes between)."""
    out: list[tuple[int, Span]] = []
    text = s.span.file.text
    for (v0, f0), (v1, f1) in pairwise(s.text_map.runs):
        gap_start = f0 + (v1 - v0)
        gap = text[gap_start:f1]
        if "\n" in gap and ("'" in gap):
            out.append((v1, s.span.at(gap_start, f1)))
    return out


def _concatenated_statements(node: ast.Expr, s: ast.Str, rep: Reporter) -> bool:
    """Warn when joined literals are each a complete statement (a forgotten ``~>``)."""
    points = concatenation_points(s)
    if not points:
        return False
    cuts = [0, *(v for v, _ in points), len(s.value)]
    parts = [s.value[a:b] for a, b in pairwise(cuts)]
    if any(not p.strip() for p in parts):
        return False
    if any(p.rstrip().endswith(";") for p in parts[:-1]):
        return False  # statements separated on purpose
    if not all(is_complete_statement(p) for p in parts):
        return False
    _, span = points[0]
    rep.emit(
        Severity.WARNING,
        codes.CONCATENATED_STATEMENTS,
        f"these {len(parts)} string literals are joined into one SQL text, but each is a "
        "complete statement",
        span,
        node=node,
        help="separate the steps with `~>` (or end each statement with `;` to keep one step)",
    )
    return True
