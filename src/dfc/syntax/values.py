"""Intermediate values of the AST builder, and how values are named in messages.

While the parse tree is turned into AST nodes bottom-up, a value is either an AST expression, a
literal (`dfc.ast.Lit`), or one of the markers below, which only their consumer can resolve (a
``name => value`` argument, a ``df.start(...)`` that only the workflow statement may unwrap).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, assert_never

from dfc import ast
from dfc.source import Span

LIT_TYPES = (ast.Str, ast.Num, ast.Null, ast.Bool)
ARG_TYPES = (*LIT_TYPES, ast.SqlExpr)  # what a built-in's literal parameter may hold


@dataclass(frozen=True, slots=True)
class Named:
    """``name => value`` in an argument list."""

    name: str
    value: Any
    span: Span


@dataclass(frozen=True, slots=True)
class StartCall:
    """A ``df.start(...)`` call; only the workflow statement may unwrap it."""

    args: list[Any]
    span: Span


@dataclass(frozen=True, slots=True)
class BadStmt:
    """A statement the parser skipped; ``decl`` when it began with a declaration keyword."""

    span: Span
    decl: bool


def describe(raw: ast.Expr | ast.Lit | ast.SqlExpr | StartCall) -> str:
    """How a raw value is named in a message ("the number 5", "df.sql(...)")."""
    match raw:
        case ast.SqlExpr():
            return "a SQL expression"
        case ast.Str(value=v):
            return f"the string {v!r}" if len(v) <= 30 else "a string"
        case ast.Num(text=t):
            return f"the number {t}"
        case ast.Null():
            return "NULL"
        case ast.Bool(value=v):
            return "TRUE" if v else "FALSE"
        case ast.Name(name=n):
            return f"the name {n}"
        case StartCall():
            return "df.start(...)"
        case ast.Sql():
            return "a SQL step"
        case ast.TemplateCall(name=n):
            return f"{n}(...)"
        case ast.Seq():
            return "a sequence (~>)"
        case ast.Bind():
            return "a binding (|=>)"
        case ast.Join():
            return "a join (&)"
        case ast.Race():
            return "a race (|)"
        case ast.If(orelse=None):
            return "an incomplete conditional (?>)"
        case ast.If():
            return "a complete conditional (?> !>)"
        case ast.Loop():
            return "a loop"
        case ast.Compensate():
            return "a step with compensation (<->)"
        case ast.Invalid():
            return "an invalid expression"
        case ast.IfRows():
            return "df.if_rows(...)"
        case ast.Break():
            return "df.break(...)"
        case ast.Sleep():
            return "df.sleep(...)"
        case ast.WaitSchedule():
            return "df.wait_for_schedule(...)"
        case ast.WaitSignal():
            return "df.wait_for_signal(...)"
        case ast.Http():
            return "df.http(...)"
        case ast.HttpMultipart():
            return "df.http_multipart(...)"
        case ast.Call(wait=wait):
            return "df.call(...)" if wait else "df.spawn(...)"
        case ast.Retry():
            return "df.retry(...)"
        case ast.Timeout():
            return "df.timeout(...)"
        case ast.Map():
            return "df.map(...)"
    assert_never(raw)


@dataclass(frozen=True, slots=True)
class Word:
    text: str


def casts(kids: list[Any]) -> str | None:
    parts = [k for k in kids if isinstance(k, str)]
    return "::".join(parts) if parts else None
