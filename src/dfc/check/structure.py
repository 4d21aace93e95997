"""Structure rules (SPEC §3): breaks, unreachable steps, hot loops, `?>` without `!>`, depth."""

from __future__ import annotations

from typing import assert_never

from dfc import ast
from dfc.check import codes
from dfc.check.report import Reporter
from dfc.check.walk import seq_items

_CHAINS = (ast.Seq, ast.Join, ast.Race)


def check_depth(body: ast.Expr, rep: Reporter) -> bool:
    """Report nesting deeper than `ast.MAX_DEPTH`; False when it is (later passes recurse).

    A chain of one operator (``a ~> b ~> c``, ``a & b & c``) is one level however long it is;
    every other nested construct adds a level.
    """
    stack: list[tuple[ast.Expr, int]] = [(body, 1)]
    while stack:
        n, depth = stack.pop()
        if depth > ast.MAX_DEPTH:
            rep.error(
                codes.TOO_DEEP,
                f"constructs are nested more than {ast.MAX_DEPTH} levels deep here",
                n.span,
                node=n,
                help="split the workflow into templates, or flatten the nesting",
            )
            return False
        for k in ast.children(n):
            same = isinstance(n, _CHAINS) and type(k) is type(n)
            stack.append((k, depth if same else depth + 1))
    return True


def check_structure(body: ast.Expr, rep: Reporter, *, in_template: bool = False) -> None:
    """Break placement, unreachable steps, hot loops and conditionals without else.

    ``in_template`` is for a template body checked on its own: it may be used inside a loop, so
    a break there is not misplaced.
    """
    _breaks(body, rep, in_template)
    ending: dict[int, str | None] = {}
    chained: set[int] = set()  # inner Seq nodes of a chain already looked at
    for n in ast.preorder(body):
        match n:
            case ast.If(orelse=None):
                rep.error(
                    codes.IF_WITHOUT_ELSE,
                    "`?>` without `!>`: this conditional has no else arm",
                    n.span,
                    node=n,
                    help="add `!> step`; a no-op else can be `!> 'SELECT 1'`",
                )
            case ast.Loop(cond=None, body=b) if not _waits_or_breaks(b):
                rep.warning(
                    codes.HOT_LOOP,
                    "this loop never waits and never ends: it repeats as fast as the database allows",
                    n.span,
                    node=n,
                    help="add df.sleep(...) or df.wait_for_schedule(...) to the body, or a df.break",
                )
            case ast.Seq() if id(n) not in chained:
                # One chain is looked at once, from its outermost Seq (else quadratic).
                stack: list[ast.Expr] = [n]
                while stack:
                    cur = stack.pop()
                    if isinstance(cur, ast.Seq):
                        chained.add(id(cur))
                        stack += (cur.left, cur.right)
                _unreachable(n, rep, ending)
            case (
                ast.Sql()
                | ast.Seq()  # inside a chain already looked at
                | ast.Bind()
                | ast.Join()
                | ast.Race()
                | ast.If()
                | ast.IfRows()
                | ast.Loop()
                | ast.Break()
                | ast.Sleep()
                | ast.WaitSchedule()
                | ast.WaitSignal()
                | ast.Http()
                | ast.HttpMultipart()
                | ast.Retry()
                | ast.Timeout()
                | ast.Compensate()
                | ast.TemplateCall()
                | ast.Name()
                | ast.Invalid()
            ):
                pass
            case _:
                assert_never(n)


def _breaks(body: ast.Expr, rep: Reporter, in_template: bool) -> None:
    stack: list[tuple[ast.Expr, bool]] = [(body, in_template)]
    while stack:
        n, in_loop = stack.pop()
        match n:
            case ast.Break() if not in_loop:
                rep.error(
                    codes.BREAK_OUTSIDE_LOOP,
                    "df.break is not inside a loop",
                    n.span,
                    node=n,
                    help="df.break ends the nearest enclosing @> or df.loop",
                )
            case ast.Loop(body=b, cond=c):
                stack.append((b, True))
                if c is not None:
                    stack.append((c, True))
            case ast.Compensate(node=x, undo=u):
                stack.append((x, in_loop))
                stack.append((u, False))  # undo runs after the failure, outside any loop
            case (
                ast.Sql()
                | ast.Seq()
                | ast.Bind()
                | ast.Join()
                | ast.Race()
                | ast.If()
                | ast.IfRows()
                | ast.Break()
                | ast.Sleep()
                | ast.WaitSchedule()
                | ast.WaitSignal()
                | ast.Http()
                | ast.HttpMultipart()
                | ast.Retry()
                | ast.Timeout()
                | ast.TemplateCall()
                | ast.Name()
                | ast.Invalid()
            ):
                stack.extend((k, in_loop) for k in ast.children(n))
            case _:
                assert_never(n)


def _waits_or_breaks(body: ast.Expr) -> bool:
    """True when the loop body waits somewhere or contains a break of this loop."""
    stack: list[tuple[ast.Expr, bool]] = [(body, True)]
    while stack:
        n, own = stack.pop()
        match n:
            case ast.Sleep() | ast.WaitSchedule() | ast.WaitSignal():
                return True
            case ast.Break() if own:
                return True
            case ast.Loop():
                stack.extend((k, False) for k in ast.children(n))  # its breaks are its own
            case ast.Compensate(node=x):
                stack.append((x, own))  # the undo runs only after a failure
            case (
                ast.Sql()
                | ast.Seq()
                | ast.Bind()
                | ast.Join()
                | ast.Race()
                | ast.If()
                | ast.IfRows()
                | ast.Break()
                | ast.Http()
                | ast.HttpMultipart()
                | ast.Retry()
                | ast.Timeout()
                | ast.TemplateCall()
                | ast.Name()
                | ast.Invalid()
            ):
                stack.extend((k, own) for k in ast.children(n))
            case _:
                assert_never(n)
    return False


def _unreachable(seq: ast.Seq, rep: Reporter, memo: dict[int, str | None]) -> None:
    items = seq_items(seq)
    for i, item in enumerate(items[:-1]):
        why = _never_completes(item, memo)
        if why is None:
            continue
        rest = items[i + 1 :]
        span = rest[0].span.cover(rest[-1].span)
        cause = (
            "the step before always leaves the loop with df.break"
            if why == "break"
            else "the loop before never ends"
        )
        rep.warning(
            codes.UNREACHABLE,
            f"unreachable: {cause}",
            span,
            node=rest[0],
            help="remove these steps or move them before the break"
            if why == "break"
            else "give the loop a condition or a df.break",
        )
        return


def _never_completes(e: ast.Expr, memo: dict[int, str | None]) -> str | None:
    """ "break" when ``e`` always leaves a loop, "forever" when it never ends, else None."""
    if id(e) in memo:
        return memo[id(e)]
    result: str | None = None
    match e:
        case ast.Break():
            result = "break"
        case ast.Seq():
            for item in seq_items(e):
                result = _never_completes(item, memo)
                if result is not None:
                    break
        case ast.If(then=t, orelse=o) if o is not None:
            a, b = _never_completes(t, memo), _never_completes(o, memo)
            result = a if a is not None and b is not None else None
        case ast.IfRows(then=t, orelse=o):
            a, b = _never_completes(t, memo), _never_completes(o, memo)
            result = a if a is not None and b is not None else None
        case ast.Bind(node=x) | ast.Retry(node=x) | ast.Timeout(node=x) | ast.Compensate(node=x):
            result = _never_completes(x, memo)
        case ast.Join(branches=bs):
            result = next((r for r in (_never_completes(b, memo) for b in bs) if r), None)
        case ast.Race(branches=bs):
            rs = [_never_completes(b, memo) for b in bs]
            result = rs[0] if all(rs) else None
        case ast.Loop(cond=None, body=b) if not _has_own_break(b):
            result = "forever"
        case (
            ast.Sql()
            | ast.If()  # without else: reported on its own
            | ast.Loop()
            | ast.Sleep()
            | ast.WaitSchedule()
            | ast.WaitSignal()
            | ast.Http()
            | ast.HttpMultipart()
            | ast.TemplateCall()
            | ast.Name()
            | ast.Invalid()
        ):
            result = None
        case _:
            assert_never(e)
    memo[id(e)] = result
    return result


def _has_own_break(body: ast.Expr) -> bool:
    """Whether the loop body holds a break that leaves this loop (not a nested one's)."""
    stack = [body]
    while stack:
        n = stack.pop()
        match n:
            case ast.Break():
                return True
            case ast.Loop():
                pass  # its breaks are its own
            case ast.Compensate(node=x):
                stack.append(x)  # the undo runs only after a failure
            case (
                ast.Sql()
                | ast.Seq()
                | ast.Bind()
                | ast.Join()
                | ast.Race()
                | ast.If()
                | ast.IfRows()
                | ast.Sleep()
                | ast.WaitSchedule()
                | ast.WaitSignal()
                | ast.Http()
                | ast.HttpMultipart()
                | ast.Retry()
                | ast.Timeout()
                | ast.TemplateCall()
                | ast.Name()
                | ast.Invalid()
            ):
                stack.extend(ast.children(n))
            case _:
                assert_never(n)
    return False
