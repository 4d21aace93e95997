"""How the printer lays nodes out: chains of one binary operator, and calls with their arguments.

The printer (`dfc.syntax.printer`) and the comment attacher (`dfc.syntax.comments`) both read
this, so that a comment is attached to a place where the printer puts a line of its own.
"""

from __future__ import annotations

from typing import Any, TypeGuard, assert_never

from dfc import ast

OPS: dict[type, str] = {
    ast.Seq: "~>",
    ast.Race: "|",
    ast.Join: "&",
    ast.Bind: "|=>",
    ast.Compensate: "<->",
}

CallParts = tuple[str, list[tuple[str | None, Any]], bool]


_Binary = ast.Seq | ast.Join | ast.Race | ast.Bind | ast.Compensate


def chain_elements(node: object) -> list[Any] | None:
    """The operands of a left-nested chain of one binary operator (``a ~> b ~> c`` → [a, b, c]).

    None when ``node`` is not printed as a binary operator (an n-ary join is a call). The
    operands of a ``|=>`` chain after the first are the result names.
    """
    if not _binary(node):
        return None
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


def call_parts(node: ast.Expr | ast.Workflow) -> CallParts | None:
    """How a node prints as a call: (callee, [(name or None, value)], is_template); None otherwise."""
    match node:
        case ast.Sql(query=ast.Name() as q):
            return "df.sql", [(None, q)], False
        case ast.Join(branches=bs) if len(bs) != 2:
            return "df.join", [(None, b) for b in bs], False
        case ast.Race(branches=bs) if len(bs) != 2:
            return "df.race", [(None, b) for b in bs], False
        case ast.IfRows(name=n, then=t, orelse=e):
            return "df.if_rows", [(None, n), (None, t), (None, e)], False
        case ast.Loop(body=b, cond=c) if c is not None:
            return "df.loop", [(None, b), (None, c)], False
        case ast.Break(value=v):
            return "df.break", [] if v is None else [(None, v)], False
        case ast.Sleep(seconds=s):
            return "df.sleep", [(None, s)], False
        case ast.WaitSchedule(cron=c):
            return "df.wait_for_schedule", [(None, c)], False
        case ast.WaitSignal(name=n, timeout=t):
            return "df.wait_for_signal", _optional(("name", "timeout"), (n, t)), False
        case ast.Http(url=u, method=m, body=b, headers=h, timeout=t):
            return (
                "df.http",
                _optional(("url", "method", "body", "headers", "timeout"), (u, m, b, h, t)),
                False,
            )
        case ast.HttpMultipart(url=u, method=m, parts=p, headers=h, timeout=t):
            return (
                "df.http_multipart",
                _optional(("url", "method", "parts", "headers", "timeout"), (u, m, p, h, t)),
                False,
            )
        case ast.Retry(node=n):
            opts = [
                (k, getattr(node, k))
                for k in ("attempts", "backoff", "factor", "max_backoff", "jitter")
            ]
            return "df.retry", [(None, n), *((k, v) for k, v in opts if v is not None)], False
        case ast.Timeout(node=n, seconds=s):
            return "df.timeout", [(None, n), (None, s)], False
        case ast.TemplateCall(name=name, args=targs):
            return name, [(a.name, a.value) for a in targs], True
        case ast.Workflow(body=b, label=label, options=opts) if label is not None or opts:
            start: list[tuple[str | None, Any]] = [(None, b)]
            if label is not None:
                start.append((None, label))
            start.extend((o.name, o.value) for o in opts)
            return "df.start", start, False
        case (
            ast.Sql()
            | ast.Seq()
            | ast.Bind()
            | ast.Join()
            | ast.Race()
            | ast.If()
            | ast.Loop()
            | ast.Compensate()
            | ast.Name()
            | ast.Invalid()
            | ast.Workflow()
        ):
            return None
    assert_never(node)
