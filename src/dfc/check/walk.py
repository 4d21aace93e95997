"""Small traversal helpers shared by the passes.

Sequences can be thousands of steps long and the parser builds them as left-deep trees, so the
helpers here are iterative: no pass recurses along a chain of ``~>``.
"""

from __future__ import annotations

from collections.abc import Iterator

from dfc import ast
from dfc.sqllex import tokenize  # the DSL follows PostgreSQL's lexical rules

# Fields of built-in nodes that hold nodes; all others hold literal arguments.
NODE_FIELDS: dict[type, frozenset[str]] = {
    ast.Seq: frozenset({"left", "right"}),
    ast.Bind: frozenset({"node"}),
    ast.Join: frozenset({"branches"}),
    ast.Race: frozenset({"branches"}),
    ast.If: frozenset({"cond", "then", "orelse"}),
    ast.IfRows: frozenset({"then", "orelse"}),
    ast.Loop: frozenset({"body", "cond"}),
    ast.Retry: frozenset({"node"}),
    ast.Timeout: frozenset({"node"}),
    ast.Compensate: frozenset({"node", "undo"}),
}


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


def preorder(e: ast.Expr) -> Iterator[ast.Expr]:
    """Every node of the tree, parents before children, left to right."""
    stack = [e]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(ast.children(n)))


def texts(n: ast.Expr) -> list[tuple[str, ast.Str]]:
    """The literals of a node whose text may contain references, with their role.

    Roles: ``sql``, ``url``, ``body``, ``headers``, ``parts``, ``break``.
    """
    out: list[tuple[str, ast.Str]] = []

    def add(role: str, v: ast.LitArg | None) -> None:
        if isinstance(v, ast.Str):
            out.append((role, v))

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
        case _:
            pass
    return out


def is_function_form(e: ast.Expr) -> bool:
    """True when the node was written as a call (``df.seq(a, b)``), not with an operator.

    The node's text is then ``df.NAME( ... )`` with the parenthesis opened after the name closed
    by the node's last character (``df.http(...) |=> 'r'`` is a binding written as operator).
    """
    file_text, start = e.span.file.text, e.span.start
    if file_text[start : start + 3].lower() != "df.":  # spans start at a token
        return False
    text = e.span.text
    depth = 0
    tokens = tokenize(text)
    for k, t in enumerate(tokens):
        if t.kind != "punct" or t.text not in "()":
            continue
        depth += 1 if t.text == "(" else -1
        if depth == 0:
            return k == len(tokens) - 1
    return False
