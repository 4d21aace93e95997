"""The abstract syntax of dfc files (SPEC §2): one frozen dataclass per construct.

Every node has a ``span``. Spans (and text maps) are excluded from equality, so
``parse(fmt(ast)) == ast`` compares meaning, not layout. The AST does not record which of two
equivalent spellings was used (``a ~> b`` or ``df.seq(a, b)``); the printer picks the canonical one.

Literal arguments of built-ins (seconds, cron, URL, ...) are `Lit` values; inside a template body
they may also be a `Name` standing for a template parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from dfc.source import Span, TextMap

# --------------------------------------------------------------------------------------------
# Literals


@dataclass(frozen=True, slots=True, kw_only=True)
class Str:
    """A string literal (any PostgreSQL form, adjacent literals already concatenated).

    ``value`` is the decoded text; ``text_map`` maps each character of it back to the file.
    ``cast`` is a kept ``::type`` suffix (``'{}'::jsonb`` has cast ``jsonb``).
    """

    value: str
    cast: str | None = None
    span: Span = field(compare=False, repr=False)
    text_map: TextMap = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Num:
    """A numeric literal; ``text`` keeps the digits as written (``1.50`` stays ``1.50``)."""

    text: str
    cast: str | None = None
    span: Span = field(compare=False, repr=False)

    @property
    def is_integer(self) -> bool:
        return self.text.lstrip("-").isdigit()


@dataclass(frozen=True, slots=True, kw_only=True)
class Null:
    """``NULL``."""

    cast: str | None = None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Bool:
    """``TRUE`` or ``FALSE``."""

    value: bool
    cast: str | None = None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Name:
    """A bare identifier: a template parameter inside a ``def`` body."""

    name: str
    span: Span = field(compare=False, repr=False)


Lit: TypeAlias = Str | Num | Null | Bool
LitArg: TypeAlias = Str | Num | Null | Bool | Name

# --------------------------------------------------------------------------------------------
# Workflow expressions (nodes)


@dataclass(frozen=True, slots=True, kw_only=True)
class Sql:
    """A SQL step: a bare string in node position or ``df.sql('...')``."""

    query: Str | Name
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Seq:
    """``left ~> right`` / ``df.seq(left, right)``: run left, then right."""

    left: Expr
    right: Expr
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Bind:
    """``node |=> 'name'`` / ``df.as(node, 'name')``: bind node's result to ``$name``."""

    node: Expr
    name: Str | Name
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Join:
    """Parallel join. ``a & b`` has two branches; ``df.join(a, b, c)`` / ``df.join3`` has n."""

    branches: tuple[Expr, ...]
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Race:
    """``a | b`` / ``df.race(a, b)``: first branch to finish wins."""

    branches: tuple[Expr, ...]
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class If:
    """``cond ?> then !> else`` / ``df.if(cond, then, else)``.

    ``orelse`` is None only for ``cond ?> then`` without ``!>``, which the parser accepts so the
    checker can report it with a precise message; such a workflow never compiles.
    """

    cond: Expr
    then: Expr
    orelse: Expr | None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class IfRows:
    """``df.if_rows('name', then, else)``: branch on whether ``$name`` has at least one row."""

    name: Str | Name
    then: Expr
    orelse: Expr
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Loop:
    """``@> body`` / ``df.loop(body)`` (forever) or ``df.loop(body, cond)`` (do-while)."""

    body: Expr
    cond: Expr | None = None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Break:
    """``df.break([value])``: leave the nearest loop with value as its result."""

    value: LitArg | None = None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Sleep:
    """``df.sleep(seconds)``: a durable timer."""

    seconds: LitArg
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitSchedule:
    """``df.wait_for_schedule(cron)``: wait for the next minute matching a 5-field cron."""

    cron: LitArg
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitSignal:
    """``df.wait_for_signal(name [, timeout])``."""

    name: LitArg
    timeout: LitArg | None = None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Http:
    """``df.http(url [, method [, body [, headers [, timeout]]]])``; omitted arguments are None."""

    url: LitArg
    method: LitArg | None = None
    body: LitArg | None = None
    headers: LitArg | None = None
    timeout: LitArg | None = None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpMultipart:
    """``df.http_multipart(url [, method [, parts [, headers [, timeout]]]])``."""

    url: LitArg
    method: LitArg | None = None
    parts: LitArg | None = None
    headers: LitArg | None = None
    timeout: LitArg | None = None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Retry:
    """``df.retry(node, attempts => n, backoff => s, factor => f, max_backoff => s, jitter => b)``."""

    node: Expr
    attempts: LitArg | None = None
    backoff: LitArg | None = None
    factor: LitArg | None = None
    max_backoff: LitArg | None = None
    jitter: LitArg | None = None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeout:
    """``df.timeout(node, seconds)``."""

    node: Expr
    seconds: LitArg
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Compensate:
    """``node <-> undo`` / ``df.with_undo(node, undo)``: undo runs if the instance fails later."""

    node: Expr
    undo: Expr
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Arg:
    """An argument of a template call: positional (``name`` None) or ``name => value``."""

    value: Expr | LitArg
    name: str | None = None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class TemplateCall:
    """``name(args)``: a call of a template defined with ``def`` (expanded by the checker)."""

    name: str
    args: tuple[Arg, ...]
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Invalid:
    """Stands where the parser could not build a node (an error was already reported)."""

    span: Span = field(compare=False, repr=False)


Expr: TypeAlias = (
    Sql
    | Seq
    | Bind
    | Join
    | Race
    | If
    | IfRows
    | Loop
    | Break
    | Sleep
    | WaitSchedule
    | WaitSignal
    | Http
    | HttpMultipart
    | Retry
    | Timeout
    | Compensate
    | TemplateCall
    | Name
    | Invalid
)

# --------------------------------------------------------------------------------------------
# Declarations and files

ParamType = Literal["text", "int", "numeric", "bool", "json", "ident"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Param:
    """``param NAME [TYPE] [= default];``."""

    name: str
    type: ParamType = "text"
    default: Lit | None = None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class DefParam:
    """A template parameter, with an optional default (a node or a literal)."""

    name: str
    default: Expr | Lit | None = None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Def:
    """``def NAME(p1, p2 = default) = expr;``."""

    name: str
    params: tuple[DefParam, ...]
    body: Expr
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Import:
    """``import 'std/NAME';`` or ``import './file.df';``."""

    path: Str
    span: Span = field(compare=False, repr=False)


Decl: TypeAlias = Param | Def | Import


@dataclass(frozen=True, slots=True, kw_only=True)
class Option:
    """A named option of ``df.start``: ``database => 'x'``, ``transaction_mode => 'new'``."""

    name: str
    value: Lit
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Workflow:
    """The workflow of a file: a bare expression or ``[SELECT] df.start(expr, label, opts...)``."""

    body: Expr
    label: Str | None = None
    options: tuple[Option, ...] = ()
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Module:
    """A whole file: declarations, then at most one workflow (None for a module of templates)."""

    decls: tuple[Decl, ...]
    workflow: Workflow | None
    span: Span = field(compare=False, repr=False)


Node: TypeAlias = Expr | Lit | Decl | Arg | DefParam | Option | Workflow | Module


def children(node: Expr) -> tuple[Expr, ...]:
    """The node-valued children of an expression, in source order."""
    match node:
        case Seq(left=a, right=b):
            return (a, b)
        case Bind(node=a) | Retry(node=a) | Timeout(node=a):
            return (a,)
        case Join(branches=bs) | Race(branches=bs):
            return bs
        case If(cond=c, then=t, orelse=e):
            return (c, t) if e is None else (c, t, e)
        case IfRows(then=t, orelse=e):
            return (t, e)
        case Loop(body=b, cond=c):
            return (b,) if c is None else (b, c)
        case Compensate(node=a, undo=u):
            return (a, u)
        case TemplateCall(args=args):
            return tuple(a.value for a in args if not isinstance(a.value, Str | Num | Null | Bool))
        case (
            Sql()
            | Break()
            | Sleep()
            | WaitSchedule()
            | WaitSignal()
            | Http()
            | HttpMultipart()
            | Name()
            | Invalid()
        ):
            return ()
    raise AssertionError(f"unknown node {node!r}")
