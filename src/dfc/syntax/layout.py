"""How the printer lays nodes out: chains of one binary operator, calls with their arguments,
conditionals, loops and literals (`form`, the one place that decides it for each node kind).

The printer (`dfc.syntax.printer`) and the comment attacher (`dfc.syntax.comments`) both read
this, so that a comment is attached to a place where the printer puts a line of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias, TypeGuard, assert_never

from dfc import ast

OPS: dict[type, str] = {
    ast.Seq: "~>",
    ast.Race: "|",
    ast.Join: "&",
    ast.Bind: "|=>",
    ast.Compensate: "<->",
}


@dataclass(frozen=True, slots=True)
class Chain:
    """A left-nested chain of one binary operator, printed operand by operand (``a ~> b ~> c``).

    After the first, the operands of a ``|=>`` chain are the result names.
    """

    elements: list[Any]


@dataclass(frozen=True, slots=True)
class Call:
    """A node printed as a call, ``callee(args)``: each argument a (name or None, value) pair.

    ``template`` for a call of a template, whose bare string arguments stay literals.
    """

    callee: str
    args: list[tuple[str | None, Any]]
    template: bool = False


Form: TypeAlias = Chain | Call | ast.If | ast.Loop | ast.Str | ast.Name | ast.Invalid
"""How an expression is printed: a chain of one operator, a call, a conditional (``?> !>``),
a loop without a condition (``@> body``), a SQL step's string literal, a template parameter's
name, or nothing (`ast.Invalid` cannot be printed)."""


_Binary = ast.Seq | ast.Join | ast.Race | ast.Bind | ast.Compensate


def chain_elements(node: object) -> list[Any] | None:
    """The operands of a left-nested chain of one binary operator (``a ~> b ~> c`` → [a, b, c]).

    None when ``node`` is not printed as a binary operator (an n-ary join is a call). The
    operands of a ``|=>`` chain after the first are the result names.
    """
    return _chain(node) if _binary(node) else None


def _chain(node: _Binary) -> list[Any]:
    cls = type(node)
    rights: list[Any] = []
    x: object = node
    while type(x) is cls and _binary(x):
        x, right = _operands(x)
        rights.append(right)
    rights.append(x)
    rights.reverse()
    return rights


def _binary(node: object) -> TypeGuard[_Binary]:
    """Whether ``node`` prints as a binary operator."""
    if isinstance(node, ast.Join | ast.Race):
        return len(node.branches) == 2
    return type(node) in OPS


def _operands(x: _Binary) -> tuple[Any, Any]:
    match x:
        case ast.Seq(left=a, right=b) | ast.Bind(node=a, name=b) | ast.Compensate(node=a, undo=b):
            return a, b
        case ast.Join(branches=bs) | ast.Race(branches=bs):
            return bs[0], bs[1]
    assert_never(x)


def _optional(names: tuple[str, ...], values: tuple[Any, ...]) -> list[tuple[str | None, Any]]:
    """Positional arguments until the first omitted one, named after it."""
    out: list[tuple[str | None, Any]] = []
    named = False
    for name, v in zip(names, values, strict=True):
        if v is None:
            named = True
            continue
        out.append((name if named else None, v))
    return out


def form(node: ast.Expr) -> Form:
    """How ``node`` is printed; the printer and the comment attacher both follow it."""
    match node:
        case ast.Seq() | ast.Bind() | ast.Compensate():
            return Chain(_chain(node))
        case ast.Join(branches=bs) | ast.Race(branches=bs) if len(bs) == 2:
            return Chain(_chain(node))
        case ast.Join(branches=bs):
            return Call("df.join", [(None, b) for b in bs])
        case ast.Race(branches=bs):
            return Call("df.race", [(None, b) for b in bs])
        case ast.Sql(query=ast.Str() as q):
            return q
        case ast.Sql(query=q):
            return Call("df.sql", [(None, q)])
        case ast.If() | ast.Loop(cond=None) | ast.Name() | ast.Invalid():
            return node
        case ast.Loop(body=b, cond=c):
            return Call("df.loop", [(None, b), (None, c)])
        case ast.IfRows(name=n, then=t, orelse=e):
            return Call("df.if_rows", [(None, n), (None, t), (None, e)])
        case ast.Break(value=v):
            return Call("df.break", [] if v is None else [(None, v)])
        case ast.Sleep(seconds=s):
            return Call("df.sleep", [(None, s)])
        case ast.WaitSchedule(cron=c):
            return Call("df.wait_for_schedule", [(None, c)])
        case ast.WaitSignal(name=n, timeout=t):
            return Call("df.wait_for_signal", _optional(("name", "timeout"), (n, t)))
        case ast.Http(url=u, method=m, body=b, headers=h, timeout=t):
            names = ("url", "method", "body", "headers", "timeout")
            return Call("df.http", _optional(names, (u, m, b, h, t)))
        case ast.HttpMultipart(url=u, method=m, parts=p, headers=h, timeout=t):
            names = ("url", "method", "parts", "headers", "timeout")
            return Call("df.http_multipart", _optional(names, (u, m, p, h, t)))
        case ast.Call(workflow=w, version=v, args=passed, wait=wait):
            callee = [(None, w), *([("version", v)] if v is not None else [])]
            return Call(
                "df.call" if wait else "df.spawn", callee + [(a.name, a.value) for a in passed]
            )
        case ast.Retry(node=n):
            opts = [
                (k, getattr(node, k))
                for k in ("attempts", "backoff", "factor", "max_backoff", "jitter")
            ]
            return Call("df.retry", [(None, n), *((k, v) for k, v in opts if v is not None)])
        case ast.Timeout(node=n, seconds=s):
            return Call("df.timeout", [(None, n), (None, s)])
        case ast.Map(rows=r, body=b):
            opts = [(k, getattr(node, k)) for k in ("concurrency", "on_error", "item")]
            return Call(
                "df.map", [(None, r), (None, b), *((k, v) for k, v in opts if v is not None)]
            )
        case ast.TemplateCall(name=name, args=targs):
            return Call(name, [(a.name, a.value) for a in targs], template=True)
    assert_never(node)


def start_call(wf: ast.Workflow) -> Call | None:
    """The ``df.start(body, label, options...)`` call of a workflow with a label or options;
    None for a bare body."""
    if wf.label is None and not wf.options:
        return None
    args: list[tuple[str | None, Any]] = [(None, wf.body)]
    if wf.label is not None:
        args.append((None, wf.label))
    args.extend((o.name, o.value) for o in wf.options)
    return Call("df.start", args)
