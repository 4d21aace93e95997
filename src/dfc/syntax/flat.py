"""Operator precedence (SPEC §1.2) and pg_durable's flat reading of the same text.

Inside PostgreSQL the operators are user-defined, so pg_durable reads them with one shared
precedence, left to right, and ``@>`` binds only the operand right after it. `alike_in_flat`
says where an operand written bare (without parentheses around it) is grouped alike by both
readings; the printer parenthesises every other operand, and the parser reads a body with the
flat grammar too (`with_pg_readings`) only when one of its written operands is not alike. The
checker compares the two readings (SPEC §1.2, DFC420).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import assert_never

from dfc import ast
from dfc.syntax.lexer import Lexed, end_of, start_of

PRECEDENCE: dict[type, int] = {
    ast.Compensate: 1,
    ast.Bind: 2,
    ast.Join: 3,
    ast.Race: 4,
    ast.Seq: 5,
    ast.If: 6,
    ast.Loop: 7,
}
"""Binding strength of the operators, 1 the tightest (``<->``), 7 the loosest (prefix ``@>``)."""


def alike_in_flat(parent: type, index: int, child: type) -> bool:
    """Whether operand ``index`` of the operator ``parent``, itself an operator ``child`` written
    without parentheses around it, behaves the same under pg_durable's flat reading.

    A left operand of a looser operator (or of the same left-associative one) is grouped alike.
    A loop as a right operand is too: ``@>`` takes its body along, and the body is an operand of
    the loop, looked at on its own. A binding or compensation as the right operand of a sequence
    is grouped differently (``a ~> (b |=> 'n')`` against ``(a ~> b) |=> 'n'``) but behaves the
    same, because a sequence's result and completion are its last step's.
    """
    prec, cprec = PRECEDENCE[parent], PRECEDENCE[child]
    if index == 0 and parent is not ast.Loop:
        return cprec < prec or (cprec == prec and parent is not ast.If)
    if child is ast.Loop:
        return True
    return parent is ast.Seq and child in (ast.Bind, ast.Compensate)


def is_operator(e: ast.Expr) -> bool:
    """Whether ``e`` was written as an operator expression (not a leaf, not a call)."""
    match e:
        case (
            ast.Seq(spelling=s)
            | ast.Bind(spelling=s)
            | ast.Join(spelling=s)
            | ast.Race(spelling=s)
            | ast.If(spelling=s)
            | ast.Loop(spelling=s)
            | ast.Compensate(spelling=s)
        ):
            return s == "operator"
        case ast.Leaf() | ast.Retry() | ast.Timeout() | ast.IfRows() | ast.TemplateCall():
            return False
        case ast.Map():
            return False
    assert_never(e)


def could_differ(body: ast.Expr, parenthesised: Callable[[ast.Expr], bool]) -> bool:
    """Whether the flat reading could group some written operand of ``body`` differently."""
    for p in ast.preorder(body):
        if not is_operator(p):
            continue
        for i, c in enumerate(ast.children(p)):
            if is_operator(c) and not alike_in_flat(type(p), i, type(c)) and not parenthesised(c):
                return True
    return False


def with_pg_readings(
    module: ast.Module, lexed: Lexed, read_flat: Callable[[str], ast.Expr | None]
) -> ast.Module:
    """``module`` with the pg_durable reading of each body that could read differently.

    ``read_flat`` parses a body's text with the flat grammar (None when pg_durable could not
    parse it). ``lexed`` holds the tokens of the module's file, which tell where parentheses
    were written.
    """
    toks = lexed.tokens

    @functools.cache
    def parens() -> tuple[frozenset[int], frozenset[int]]:
        """Offsets where a token follows a `(`, and where one ends before a `)`."""
        n = len(toks)
        after = frozenset(start_of(toks[i + 1]) for i in range(n - 1) if toks[i].type == "_LPAR")
        before = frozenset(end_of(toks[i - 1]) for i in range(1, n) if toks[i].type == "_RPAR")
        return after, before

    def parenthesised(e: ast.Expr) -> bool:
        # A node's tokens are balanced, so a `(` right before it and a `)` right after it pair up.
        after_open, before_close = parens()
        return e.span.start in after_open and e.span.end in before_close

    def reading(body: ast.Expr) -> ast.Expr | None:
        return read_flat(body.span.text) if could_differ(body, parenthesised) else None

    decls = tuple(
        dataclasses.replace(d, pg_reading=reading(d.body)) if isinstance(d, ast.Def) else d
        for d in module.decls
    )
    wf = module.workflow
    if wf is not None:
        wf = dataclasses.replace(wf, pg_reading=reading(wf.body))
    return dataclasses.replace(module, decls=decls, workflow=wf)
