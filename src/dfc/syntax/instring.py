"""A string holding a graph in place of a node, for ``--grammar pg`` (pg_durable's SQL).

pg_durable's builders return the graph as JSON text, and every node parameter takes text: a
script may keep a graph in a variable, a table or a literal and pass it where a node goes
(``'{"node_type": "SQL", "query": "SELECT 1"}' ~> 'SELECT 2'``). In a file read with the pg
grammar such a string is that graph. pg_durable's JSON graph is read by `dfc.syntax.graph` (handed to the builder by `dfc.syntax.parse`); the
nodes it gives have no place in this file, so each gets the position of the string.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from dfc import ast
from dfc.diagnostics import Diagnostic
from dfc.source import Span, TextMap

GraphReader = Callable[[str], tuple[ast.Expr | None, list[Diagnostic]]]


def holds_graph(value: str) -> bool:
    """Whether a string looks like a graph object (cheap: its JSON is read only if so)."""
    head = value.lstrip(" \t\r\n")
    return head.startswith("{") and ('"node_type"' in value or '"_partial_if"' in value)


def relocated(body: ast.Expr, span: Span) -> ast.Expr:
    """``body`` with every node and literal placed at ``span`` (the string it was read from)."""
    text_map = TextMap(((0, span.start),), 0)  # every character of a value at the string
    done: dict[int, Any] = {}

    def moved(v: Any) -> Any:
        if isinstance(v, tuple):
            return tuple(moved(x) for x in v)
        if isinstance(v, ast.Arg):
            return dataclasses.replace(v, value=moved(v.value), span=span)
        if id(v) in done:
            return done[id(v)]
        if isinstance(v, ast.Str):
            return dataclasses.replace(v, span=span, text_map=text_map, joins=())
        if isinstance(v, ast.Num | ast.Null | ast.Bool | ast.SqlExpr):
            return dataclasses.replace(v, span=span)
        return v

    # Children first, without recursion: a graph nests as deeply as its sequence is long.
    for n in reversed(list(ast.preorder(body))):
        changes = {
            f.name: moved(getattr(n, f.name)) for f in dataclasses.fields(n) if f.name != "span"
        }
        done[id(n)] = type(n)(span=span, **changes)
    result: ast.Expr = done[id(body)]
    return result
