"""Small traversal helpers shared by the passes.

Sequences can be thousands of steps long and the parser builds them as left-deep trees, so the
helpers here are iterative: no pass recurses along a chain of ``~>``.
"""

from __future__ import annotations

from typing import assert_never

from dfc import ast
from dfc.references import rows_reference
from dfc.source import TextMap


def seq_items(e: ast.Expr) -> list[ast.Expr]:
    """The steps of a sequence in order, however its ``Seq`` nodes are nested."""
    out: list[ast.Expr] = []
    stack = [e]
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Seq):
            stack.append(n.right)
            stack.append(n.left)
        else:
            out.append(n)
    return out


def result_step(e: ast.Expr) -> ast.Expr:
    """The node whose result is ``e``'s: a sequence's last step, the node inside a wrapper
    (binding, retry, timeout, compensation), repeatedly; ``e`` itself for any other node."""
    while True:
        if isinstance(e, ast.Seq):
            e = e.right
        elif isinstance(e, ast.Wrapper):
            e = e.node
        else:
            return e


def texts(n: ast.Expr) -> list[tuple[str, ast.Str]]:
    """The literals of a node whose text may contain references, with their role.

    Roles: ``sql``, ``url``, ``body``, ``headers``, ``parts``, ``break``, ``arg`` (a parameter
    passed to a child workflow). A SQL expression (``--grammar pg``) counts with its text as
    written: its value replaces a literal, and the references that its string literals carry
    into that value are substituted as a literal's.
    """
    out: list[tuple[str, ast.Str]] = []

    def add(role: str, v: ast.LitArg | None) -> None:
        if isinstance(v, ast.Str):
            out.append((role, v))
        elif isinstance(v, ast.SqlExpr):
            at = TextMap(((0, v.span.start),), len(v.text))  # the text is the source's
            out.append((role, ast.Str(value=v.text, span=v.span, text_map=at)))

    match n:
        case ast.Sql(query=q):
            add("sql", q)
        case ast.Http(url=u, body=b, headers=h):
            add("url", u)
            add("body", b)
            add("headers", h)
        case ast.HttpMultipart(url=u, parts=p, headers=h):
            add("url", u)
            add("parts", p)
            add("headers", h)
        case ast.Break(value=v):
            add("break", v)
        case ast.Call(args=passed):
            for a in passed:
                add("arg", a.value)
        case ast.Leaf() | ast.Wrapper() | ast.Seq() | ast.Join() | ast.Race():
            pass
        case ast.If() | ast.IfRows() | ast.Loop() | ast.TemplateCall():
            pass
        case ast.Map():
            pass
        case _:
            assert_never(n)
    return out


def map_source(m: ast.Map) -> str | None:
    """The result name a ``df.map`` reads its rows from when its rows argument is one
    reference (``'$orders.*'``); None when the rows come from a step it runs."""
    rows = m.rows
    if isinstance(rows, ast.Sql) and isinstance(rows.query, ast.Str):
        return rows_reference(rows.query.value)
    return None
