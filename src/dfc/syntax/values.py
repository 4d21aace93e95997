"""Intermediate values of the AST builder, and the rules for literal arguments.

While the parse tree is turned into AST nodes bottom-up, a value is either an AST expression, a
literal (`dfc.ast.Lit`), or one of the markers below, which only their consumer can resolve (a
``name => value`` argument, a ``df.start(...)`` that only the workflow statement may unwrap).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, assert_never

from dfc import ast
from dfc.source import Span
from dfc.syntax.builtins import CAST_KINDS, Kind

_INT_RE = re.compile(r"\s*[+-]?\d+\s*")
_FLOAT_RE = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*")
_PG_BOOLS = {"t", "f", "true", "false", "y", "n", "yes", "no", "on", "off", "1", "0"}
LIT_TYPES = (ast.Str, ast.Num, ast.Null, ast.Bool)


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


def describe(raw: ast.Expr | ast.Lit | StartCall) -> str:
    """How a raw value is named in a message ("the number 5", "df.sql(...)")."""
    match raw:
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
        case ast.Retry():
            return "df.retry(...)"
        case ast.Timeout():
            return "df.timeout(...)"
    assert_never(raw)


@dataclass(frozen=True, slots=True)
class Word:
    text: str


def casts(kids: list[Any]) -> str | None:
    parts = [k for k in kids if isinstance(k, str)]
    return "::".join(parts) if parts else None


def kind_problem(lit: ast.Lit, kind: Kind, required: bool) -> str | None:
    """What a literal should have been for a parameter of ``kind``, or None when it fits."""
    if kind == "any":
        return None
    want = {"text": "text", "int": "an integer", "numeric": "a number", "bool": "TRUE or FALSE"}[
        kind
    ]
    if isinstance(lit, ast.Null):
        return want if required else None
    cast_kind = CAST_KINDS.get(lit.cast) if lit.cast else None
    if lit.cast and cast_kind is None:
        return None  # a type we do not know: PostgreSQL would decide
    natural: Kind
    if isinstance(lit, ast.Str):
        natural = "text"
    elif isinstance(lit, ast.Num):
        natural = "int" if lit.is_integer else "numeric"
    else:
        natural = "bool"
    actual = cast_kind or natural
    if kind == "text":
        return None if actual == "text" or cast_kind == "text" else want
    if isinstance(lit, ast.Str) and cast_kind in (None, kind, "int" if kind == "numeric" else kind):
        # An untyped string literal is converted by PostgreSQL: check that it would convert.
        check = {"int": _INT_RE, "numeric": _FLOAT_RE}.get(kind)
        if check is not None:
            return None if check.fullmatch(lit.value) else want
        return None if lit.value.strip().lower() in _PG_BOOLS else want
    if kind == "numeric":
        return None if actual in ("int", "numeric") else want
    return None if actual == kind else want
