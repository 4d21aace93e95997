"""Per-step SQL checks: report the findings of `dfc.check.sql` at file positions, record facts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dfc import ast
from dfc.check import codes
from dfc.check.report import Reporter
from dfc.check.result import SqlFacts
from dfc.check.sql import analyze, ends_statements, is_complete_statement, starts_statement
from dfc.check.walk import map_source
from dfc.diagnostics import Label, Severity


def check_sql_steps(
    nodes: Iterable[ast.Expr], rep: Reporter, var_types: Mapping[str, str | None]
) -> dict[int, SqlFacts]:
    """Check every SQL step among ``nodes``; returns the facts keyed by ``id(node)``."""
    facts: dict[int, SqlFacts] = {}
    sources: set[int] = set()  # rows of a df.map written as a reference: not a statement
    for n in nodes:
        if isinstance(n, ast.Map) and map_source(n) is not None:
            sources.add(id(n.rows))
        elif isinstance(n, ast.Sql) and isinstance(n.query, ast.Str) and id(n) not in sources:
            facts[id(n)] = check_sql(n, n.query, rep, var_types)
    return facts


def check_sql(
    node: ast.Expr, s: ast.Str, rep: Reporter, var_types: Mapping[str, str | None]
) -> SqlFacts:
    """Report the problems of one SQL step and return its facts."""
    a = analyze(s.value, var_types)
    glued = _forgotten_sequences(node, s, rep)
    file = s.span.file
    for issue in a.issues:
        if glued and issue.code == codes.SQL_UNPARSED:
            continue  # explained better by the concatenation warning
        empty = issue.start == issue.end or not s.text_map.runs
        span = s.span if empty else s.text_map.span(file, issue.start, issue.end)
        rep.emit(issue.severity, issue.code, issue.message, span, node=node, help=issue.help)
    return a.facts


def _forgotten_sequences(node: ast.Expr, s: ast.Str, rep: Reporter) -> bool:
    """Warn at each literal that PostgreSQL's line-break rule joins to the text before it when
    that text ends a statement and the literal starts another: two steps meant to be joined by
    ``~>``. Literals that split one statement (``'SELECT a '`` / ``'FROM t'``) or that keep
    several statements in one step on purpose (the first ends in ``;``) are left alone.
    Returns whether it warned."""
    value = s.value
    cuts = [at for at, _ in s.joins]
    start = 0  # where the statement before the next join begins
    warned = False
    for k, (at, literal) in enumerate(s.joins):
        after = value[at:]
        if not (starts_statement(after) and ends_statements(value[start:at])):
            continue
        ends = [*cuts[k + 1 :], len(value)]
        if not any(is_complete_statement(value[at:end]) for end in ends):
            continue
        rep.emit(
            Severity.WARNING,
            codes.CONCATENATED_STATEMENTS,
            "this string literal starts a new statement, but the line break joins it to the "
            "statement above into one SQL text",
            literal,
            node=node,
            labels=(Label(s.text_map.span(s.span.file, start, at), "a complete statement"),),
            help="insert `~>` before this literal to run the two as steps in sequence (or end "
            "the statement above with `;` to keep both in one step)",
        )
        start, warned = at, True
    return warned
