"""The abstract syntax of dfc files (SPEC §2): one frozen dataclass per construct.

Every node has a ``span``. Spans, text maps and the other *layout* fields (how a construct was
spelled, the pg_durable reading of a body) are excluded from equality, so
``parse(fmt(ast)) == ast`` compares meaning, not layout. The printer ignores the layout and picks
the canonical spelling; the checker reads it to quote the user's own text back.

Every expression class declares in ``NODE_FIELDS`` which of its fields hold nodes (a node, an
optional node, or a tuple of them; a `Leaf` inherits the empty declaration); all other fields
hold literal arguments. `children` and every pass that walks fields generically read that one
declaration, and mypy reports a new class of the `Expr` union that lacks it. `Leaf` and `Wrapper`
name the kinds that many passes treat alike.

Literal arguments of built-ins (seconds, cron, URL, ...) are `Lit` values; inside a template body
they may also be a `Name` standing for a template parameter.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import ClassVar, Literal, TypeAlias, assert_never

from dfc.json_types import JSON
from dfc.scheduling import CatchupPolicy, OverlapPolicy
from dfc.source import Span, TextMap

# --------------------------------------------------------------------------------------------
# Kinds of expression nodes shared by many classes


class Leaf:
    """An expression node that holds no node: a step (SQL, wait, HTTP), ``df.break``, a template
    parameter `Name`, or `Invalid`.

    A pass that treats every leaf alike matches ``case ast.Leaf():`` (or tests
    ``isinstance(n, ast.Leaf)``) and mypy narrows as for the classes one by one, so a match that
    ends in `assert_never` still lists a new node kind that is not a leaf.
    """

    __slots__ = ()
    NODE_FIELDS: ClassVar[tuple[str, ...]] = ()


class Wrapper:
    """An expression node that runs one inner ``node`` and has that node's result: a binding, a
    retry, a timeout, a compensation (whose ``undo`` runs only after a later failure)."""

    __slots__ = ()


# --------------------------------------------------------------------------------------------
# Literals


@dataclass(frozen=True, slots=True, kw_only=True)
class Str:
    """A string literal (any PostgreSQL form, adjacent literals already concatenated).

    ``value`` is the decoded text; ``text_map`` maps each character of it back to the file.
    ``cast`` is a kept ``::type`` suffix (``'{}'::jsonb`` has cast ``jsonb``). Layout:
    ``joins`` has, for each literal after the first of newline-separated literals, the index in
    ``value`` where its text begins and its span (a forgotten ``~>`` looks like that, DFC306).
    """

    value: str
    cast: str | None = None
    span: Span = field(compare=False, repr=False)
    text_map: TextMap = field(compare=False, repr=False)
    joins: tuple[tuple[int, Span], ...] = field(default=(), compare=False, repr=False)


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
class Name(Leaf):
    """A bare identifier: a template parameter inside a ``def`` body."""

    name: str
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class SqlExpr:
    """A SQL expression where a built-in takes a literal (``--grammar pg`` files only):
    ``jsonb_build_array(...)``, ``now()::text``. In pg_durable every argument is SQL, evaluated
    once by PostgreSQL when ``df.start`` builds the graph; dfc evaluates it once, by the
    database, when the instance starts, and uses its text as the literal's. ``text`` is the
    expression as written."""

    text: str
    span: Span = field(compare=False, repr=False)


Lit: TypeAlias = Str | Num | Null | Bool
LitArg: TypeAlias = Str | Num | Null | Bool | Name | SqlExpr

MAX_DEPTH = 256
"""How deeply constructs may nest (SPEC §3); a chain of one operator (``a ~> b ~> c``) is one
level. The parser refuses deeper text (DFC140), the checker deeper expanded templates (DFC405)."""

Spelling: TypeAlias = Literal["operator", "call"]
"""How a construct with two spellings was written: ``a ~> b`` ("operator") or ``df.seq(a, b)``."""

# --------------------------------------------------------------------------------------------
# Workflow expressions (nodes)


@dataclass(frozen=True, slots=True, kw_only=True)
class Sql(Leaf):
    """A SQL step: a bare string in node position or ``df.sql('...')``."""

    query: Str | Name
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Seq:
    """``left ~> right`` / ``df.seq(left, right)``: run left, then right."""

    NODE_FIELDS: ClassVar[tuple[str, ...]] = ("left", "right")

    left: Expr
    right: Expr
    spelling: Spelling = field(default="operator", compare=False, repr=False)
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Bind(Wrapper):
    """``node |=> 'name'`` / ``df.as(node, 'name')``: bind node's result to ``$name``."""

    NODE_FIELDS: ClassVar[tuple[str, ...]] = ("node",)

    node: Expr
    name: Str | Name
    spelling: Spelling = field(default="operator", compare=False, repr=False)
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Join:
    """Parallel join. ``a & b`` has two branches; ``df.join(a, b, c)`` / ``df.join3`` has n."""

    NODE_FIELDS: ClassVar[tuple[str, ...]] = ("branches",)

    branches: tuple[Expr, ...]
    spelling: Spelling = field(default="operator", compare=False, repr=False)
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Race:
    """``a | b`` / ``df.race(a, b)``: first branch to finish wins."""

    NODE_FIELDS: ClassVar[tuple[str, ...]] = ("branches",)

    branches: tuple[Expr, ...]
    spelling: Spelling = field(default="operator", compare=False, repr=False)
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class If:
    """``cond ?> then !> else`` / ``df.if(cond, then, else)``.

    ``orelse`` is None only for ``cond ?> then`` without ``!>``, which the parser accepts so the
    checker can report it with a precise message; such a workflow never compiles.
    """

    NODE_FIELDS: ClassVar[tuple[str, ...]] = ("cond", "then", "orelse")

    cond: Expr
    then: Expr
    orelse: Expr | None
    spelling: Spelling = field(default="operator", compare=False, repr=False)
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class IfRows:
    """``df.if_rows('name', then, else)``: branch on whether ``$name`` has at least one row."""

    NODE_FIELDS: ClassVar[tuple[str, ...]] = ("then", "orelse")

    name: Str | Name
    then: Expr
    orelse: Expr
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Loop:
    """``@> body`` / ``df.loop(body)`` (forever) or ``df.loop(body, cond)`` (do-while)."""

    NODE_FIELDS: ClassVar[tuple[str, ...]] = ("body", "cond")

    body: Expr
    cond: Expr | None = None
    spelling: Spelling = field(default="operator", compare=False, repr=False)
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Break(Leaf):
    """``df.break([value])``: leave the nearest loop with value as its result."""

    value: LitArg | None = None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Sleep(Leaf):
    """``df.sleep(seconds)``: a durable timer."""

    seconds: LitArg
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitSchedule(Leaf):
    """``df.wait_for_schedule(cron)``: wait for the next minute matching a 5-field cron."""

    cron: LitArg
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitSignal(Leaf):
    """``df.wait_for_signal(name [, timeout])``."""

    name: LitArg
    timeout: LitArg | None = None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Http(Leaf):
    """``df.http(url [, method [, body [, headers [, timeout]]]])``; omitted arguments are None."""

    url: LitArg
    method: LitArg | None = None
    body: LitArg | None = None
    headers: LitArg | None = None
    timeout: LitArg | None = None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpMultipart(Leaf):
    """``df.http_multipart(url [, method [, parts [, headers [, timeout]]]])``."""

    url: LitArg
    method: LitArg | None = None
    parts: LitArg | None = None
    headers: LitArg | None = None
    timeout: LitArg | None = None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallArg:
    """A parameter of the called workflow given to ``df.call``/``df.spawn``: ``name => value``."""

    name: str
    value: LitArg
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Call(Leaf):
    """``df.call('workflow' [, version => n], param => value, ...)``: start an instance of a
    deployed workflow and wait for its result; ``df.spawn(...)`` (``wait`` false) starts it and
    goes on with its id. ``args`` are the callee's parameters, in the order written."""

    workflow: LitArg
    version: LitArg | None = None
    args: tuple[CallArg, ...] = ()
    wait: bool = True
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Retry(Wrapper):
    """``df.retry(node, attempts => n, backoff => s, factor => f, max_backoff => s, jitter => b)``."""

    NODE_FIELDS: ClassVar[tuple[str, ...]] = ("node",)

    node: Expr
    attempts: LitArg | None = None
    backoff: LitArg | None = None
    factor: LitArg | None = None
    max_backoff: LitArg | None = None
    jitter: LitArg | None = None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeout(Wrapper):
    """``df.timeout(node, seconds)``."""

    NODE_FIELDS: ClassVar[tuple[str, ...]] = ("node",)

    node: Expr
    seconds: LitArg
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Compensate(Wrapper):
    """``node <-> undo`` / ``df.with_undo(node, undo)``: undo runs if the instance fails later."""

    NODE_FIELDS: ClassVar[tuple[str, ...]] = ("node", "undo")

    node: Expr
    undo: Expr
    spelling: Spelling = field(default="operator", compare=False, repr=False)
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Map:
    """``df.map(rows, body, concurrency => n, on_error => 'fail', item => 'item')``: run
    ``body`` once per row of ``rows``, at most ``concurrency`` at a time, with ``$item`` bound
    to the row; the result is the array of the branches' results in row order.

    ``rows`` is a node run once (a SQL step), or a SQL step whose whole text is one reference
    (``'$orders.*'``, ``'$orders'``): then no step runs and the rows are those of the bound
    result (`dfc.references.rows_reference`). Omitted options are None.
    """

    NODE_FIELDS: ClassVar[tuple[str, ...]] = ("rows", "body")

    rows: Expr
    body: Expr
    concurrency: LitArg | None = None
    on_error: LitArg | None = None
    item: LitArg | None = None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Arg:
    """An argument of a template call: positional (``name`` None) or ``name => value``."""

    value: Expr | Lit
    name: str | None = None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class TemplateCall:
    """``name(args)``: a call of a template defined with ``def`` (expanded by the checker)."""

    NODE_FIELDS: ClassVar[tuple[str, ...]] = ("args",)

    name: str
    args: tuple[Arg, ...]
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Invalid(Leaf):
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
    | Call
    | Retry
    | Timeout
    | Compensate
    | Map
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
    """``def NAME(p1, p2 = default) = expr;``.

    Layout: ``name_span`` is where the name is written; ``pg_reading`` is the body as
    pg_durable's flat precedence reads it (see `Workflow`).
    """

    name: str
    params: tuple[DefParam, ...]
    body: Expr
    name_span: Span | None = field(default=None, compare=False, repr=False)
    pg_reading: Expr | None = field(default=None, compare=False, repr=False)
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Import:
    """``import 'std/NAME';`` or ``import './file.df';``."""

    path: Str
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """``schedule 'cron' [timezone 'Zone'] [overlap skip|queue|allow] [catchup none|latest|all];``.

    Options not written are None here (the printer leaves them out); the plan fills in the
    defaults of `dfc.scheduling`.
    """

    cron: Str
    timezone: Str | None = None
    overlap: OverlapPolicy | None = None
    catchup: CatchupPolicy | None = None
    span: Span = field(compare=False, repr=False)


Decl: TypeAlias = Param | Def | Import | Schedule


@dataclass(frozen=True, slots=True, kw_only=True)
class Option:
    """A named option of ``df.start``: ``database => 'x'``, ``transaction_mode => 'new'``."""

    name: str
    value: Lit
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Workflow:
    """The workflow of a file: a bare expression or ``[SELECT] df.start(expr, label, opts...)``.

    ``pg_reading`` is layout: the body as pg_durable's flat precedence (one precedence, left to
    right) reads the same text. The parser sets it only where the two readings could group
    operators differently, and only when pg_durable can parse the text at all; the checker
    compares the two (SPEC §1.2).
    """

    body: Expr
    label: Str | None = None
    options: tuple[Option, ...] = ()
    pg_reading: Expr | None = field(default=None, compare=False, repr=False)
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Module:
    """A whole file: declarations, then at most one workflow (None for a module of templates)."""

    decls: tuple[Decl, ...]
    workflow: Workflow | None
    span: Span = field(compare=False, repr=False)


Node: TypeAlias = (
    Expr | Lit | SqlExpr | Decl | Arg | CallArg | DefParam | Option | Workflow | Module
)


def children(node: Expr) -> tuple[Expr, ...]:
    """The node-valued children of an expression, in source order (from its ``NODE_FIELDS``).

    A template call's children are its arguments that are not literals (a `Name` is a node).
    """
    # Every pass walks the tree through here: leaves return at once, and the literal check
    # takes a tuple of classes (a union of them is twice as slow to test against).
    names = node.NODE_FIELDS
    if not names:
        return ()
    out: list[Expr] = []
    for name in names:
        value = getattr(node, name)
        for v in value if isinstance(value, tuple) else (value,):
            item = v.value if isinstance(v, Arg) else v
            if item is not None and not isinstance(item, _LITERALS):
                out.append(item)
    return tuple(out)


_LITERALS = (Str, Num, Null, Bool, SqlExpr)


def with_children(node: Expr, kids: Sequence[Expr]) -> Expr:
    """``node`` with its node children replaced by ``kids``, given in `children` order.

    Not for template calls (their children are arguments): expand templates first.
    """
    if isinstance(node, TemplateCall):
        raise ValueError("a template call's children are its arguments; expand it first")
    it = iter(kids)
    changes: dict[str, object] = {}
    for name in node.NODE_FIELDS:
        value = getattr(node, name)
        if isinstance(value, tuple):
            changes[name] = tuple(next(it) for _ in value)
        elif value is not None:
            changes[name] = next(it)
    return replace(node, **changes) if changes else node  # type: ignore[arg-type]


def rebuild(body: Expr, visit: Callable[[Expr], Expr]) -> Expr:
    """``body`` rebuilt bottom-up: every node, its children already rebuilt, is replaced by
    ``visit(node)``. Iterative, so a chain of thousands of steps is fine."""
    done: dict[int, Expr] = {}
    for n in reversed(list(preorder(body))):
        kids = children(n)
        node = with_children(n, [done.pop(id(k)) for k in kids]) if kids else n
        done[id(n)] = visit(node)
    return done[id(body)]


def literal_value(lit: LitArg | None) -> JSON:
    """The JSON value a literal argument stands for, as the plan stores it (an omitted one,
    None, is null). A template parameter has none: templates are expanded before this is asked."""
    match lit:
        case None | Null():
            return None
        case Str(value=v):
            return v
        case Num(text=t):
            return int(t) if lit.is_integer else float(t)
        case Bool(value=b):
            return b
        case Name(name=n):
            raise AssertionError(f"template parameter {n} left in a checked workflow")
        case SqlExpr():
            # Its value exists only once an instance starts: the emitter names it instead.
            raise AssertionError("a SQL expression has no value before the instance starts")
    assert_never(lit)


def preorder(e: Expr) -> Iterator[Expr]:
    """Every node of the tree, parents before children, left to right (iterative: chains of
    ``~>`` can be thousands of steps long)."""
    stack = [e]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(children(n)))


_RECURSION_LIMIT = 20_000


@contextmanager
def deep_recursion() -> Iterator[None]:
    """Room for a pass that recurses once per nesting level (never along a chain).

    Nesting is at most `MAX_DEPTH` levels in text the parser accepts (deeper only in trees the
    checker rejects), and a level may take a few dozen Python frames: more than Python's default
    limit of 1,000.
    """
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, _RECURSION_LIMIT))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)
